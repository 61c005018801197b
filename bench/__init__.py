"""Benchmarks: `make bench` runs every module listed here and prints one JSON document."""
