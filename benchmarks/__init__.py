"""Benchmarks: import throughput and report latency, side by side with the alternatives.

Run `uv run python -m benchmarks.import_throughput --help` and
`uv run python -m benchmarks.report_latency --help`; `nox -s bench` runs both at a size that
finishes in minutes. Results go to `bench-results/` (ignored by git).
"""
