"""Analysis of results: tables, paired statistics and the verdict, plots."""
