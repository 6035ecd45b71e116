"""`python -m benchmarks` (what `nox -s bench` runs): the three benchmarks at sizes that
finish in about a quarter of an hour on 2 cores. Pass `--full` for the issues' sizes (5M
import, 1M and 20M reports, 10M refresh)."""

from __future__ import annotations

import argparse

from benchmarks import import_throughput, refresh, report_latency
from benchmarks.common import run_cli


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Import throughput (2M events, 2 rounds), report latency (1M and 4M "
        "events, 5 s per cell) and refresh after a day of changes (2M events, 2 rounds), about "
        "a quarter of an hour on 2 cores; results in bench-results/. Each benchmark also runs "
        "alone, with more options: python -m benchmarks.import_throughput --help, python -m "
        "benchmarks.report_latency --help, python -m benchmarks.refresh --help.",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="the issues' sizes instead: a 5M import, 3 rounds; reports at 1M and 20M events, "
        "10 s per cell; refresh of 10M events, 3 rounds (about an hour from a fresh clone)",
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
    refresh.main(["--rows", "10000000" if full else "2000000", "--repeat", "3" if full else "2"])


if __name__ == "__main__":
    run_cli(main)
