"""One run's results: the schema of results.json, written and read back as one type."""
