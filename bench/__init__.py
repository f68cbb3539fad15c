"""Benchmarks and data generators. Never run by the test suite; see bench/README.md."""
