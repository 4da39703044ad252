"""Benchmarks of the matcher and of the whole stack; outside the test run, started by `make bench`."""
