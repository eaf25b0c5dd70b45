"""Benchmarks for CADLINK Analytics: `python -m bench [NAME ...]`; results in docs/benchmarks.md."""
