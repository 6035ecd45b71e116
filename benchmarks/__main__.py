"""`python -m benchmarks` (what `nox -s bench` runs): both benchmarks at sizes that finish in
about ten minutes on 2 cores. Pass `--full` for the issue's sizes (5M import, 1M and 20M
reports)."""

from __future__ import annotations

import argparse

from benchmarks import import_throughput, report_latency
from benchmarks.common import run_cli


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Import throughput (2M events, 2 rounds) and report latency (1M and 4M "
        "events, 5 s per cell), about ten minutes on 2 cores; results in bench-results/. "
        "Each benchmark also runs alone, with more options: python -m "
        "benchmarks.import_throughput --help, python -m benchmarks.report_latency --help.",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="the issue's sizes instead: a 5M import, 3 rounds; reports at 1M and 20M events, "
        "10 s per cell (about 20 minutes from a fresh clone)",
    )
    full = parser.parse_args(argv).full
    import_throughput.main(
        ["--rows", "5000000" if full else "2000000", "--repeat", "3" if full else "2"]
    )
    report_latency.main(
        [
            "--rows",
            "1000000,20000000" if full else "1000000,4000000",
            "--seconds",
            "10" if full else "5",
        ]
    )


if __name__ == "__main__":
    run_cli(main)
