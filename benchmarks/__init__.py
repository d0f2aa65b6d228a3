"""Reproducible benchmarks (not tests): ``make bench`` / ``python -m benchmarks.run_all``."""
