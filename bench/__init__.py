"""Benchmark harness (not tests): `python -m bench.<name>`; each prints a table."""
