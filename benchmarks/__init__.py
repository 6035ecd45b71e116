"""Benchmarks: import throughput, report latency and refresh after a day of changes, side by
side with the alternatives.

Run `uv run python -m benchmarks.import_throughput --help`,
`uv run python -m benchmarks.report_latency --help` and
`uv run python -m benchmarks.refresh --help`; `nox -s bench` runs all three at sizes that
finish in minutes. Results go to `bench-results/` (ignored by git).
"""
