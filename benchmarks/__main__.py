"""`python -m benchmarks` (what `nox -s bench` runs): both benchmarks at sizes that finish in
about ten minutes on 2 cores. Pass `--full` for the issue's sizes (5M import, 1M and 20M
reports)."""

from __future__ import annotations

import sys

from benchmarks import import_throughput, report_latency
from benchmarks.common import run_cli


def main() -> None:
    full = "--full" in sys.argv[1:]
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
