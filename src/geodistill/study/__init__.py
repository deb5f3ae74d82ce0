"""Studies: teachers, then students x objectives x seeds, planned once and executed by one executor."""
