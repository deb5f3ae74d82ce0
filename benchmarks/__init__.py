"""Benchmarks: `python -m benchmarks [speed compression aid] [--quick]` (or `make bench`)."""
