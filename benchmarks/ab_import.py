"""A/B: two ways of running the olapsync import, interleaved, on the same source.

    uv run python -m benchmarks.ab_import --a read_partitions=2 --b read_partitions=1
    uv run python -m benchmarks.ab_import --b-code ../old-worktree   # code vs code
    uv run python -m benchmarks.ab_import --b-env POLARS_MAX_THREADS=1

On a shared, noisy machine one run of each tells nothing, and a block of A runs followed by a
block of B runs measures the machine's drift as much as the change. This runs A and B in
turn, `--pairs` times, each in a fresh process and ClickHouse folder (the `olapsync` variant of
`import_throughput`), and prints the medians and ranges of wall time, the process's CPU, the
PostgreSQL server's CPU and peak RSS, with B / A.

A side is any mix of Config fields (`--a name=value`, repeatable), environment variables
(`--a-env NAME=value`) and a source tree to import olapsync from (`--a-code PATH`, e.g. a
`git worktree` of another commit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RESULTS,
    add_source_arguments,
    median,
    run_cli,
    start_source,
    write_json,
)
from benchmarks.import_throughput import run_variant
from benchmarks.variants import setting
from olapsync import Config
from olapsync.demo import DemoSource
from olapsync.errors import OlapsyncError

METRICS = {
    "seconds": "wall s",
    "cpu_seconds": "CPU s",
    "source_cpu_seconds": "PG CPU s",
    "peak_rss_mb": "peak RSS MB",
}


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"{what}: expected name=value, got {item!r}")
        out[name] = value
    return out


def _side(args: argparse.Namespace, side: str) -> tuple[tuple[str, ...], dict[str, str], str]:
    settings = getattr(args, side)
    env = _pairs(getattr(args, f"{side}_env"), f"--{side}-env")
    _pairs(settings, f"--{side}")
    try:  # checked here, applied by benchmarks.variants
        Config.from_env().with_(**dict(setting(s) for s in settings))
    except (OlapsyncError, TypeError) as exc:
        raise SystemExit(f"--{side}: {exc}") from None
    code = getattr(args, f"{side}_code")
    if code is not None:
        if not (code / "olapsync" / "__init__.py").is_file():
            raise SystemExit(f"--{side}-code {code}: no olapsync package there")
        env["PYTHONPATH"] = str(code.resolve())
    label = " ".join([*settings, *(f"{k}={v}" for k, v in env.items())]) or "defaults"
    return tuple(a for s in settings for a in ("--set", s)), env, label


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ab_import", description=__doc__.split("\n\n")[0]
    )
    add_source_arguments(parser)
    parser.add_argument("--pairs", type=int, default=5, help="A/B pairs (default 5)")
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS / "ab_import.json",
        help="where to write results (default bench-results/ab_import.json)",
    )
    repeatable = (
        ("", "FIELD=VALUE", "a Config field, e.g. read_partitions=1"),
        ("-env", "NAME=VALUE", "an environment variable"),
    )
    for side in ("a", "b"):
        for suffix, metavar, what in repeatable:
            parser.add_argument(
                f"--{side}{suffix}",
                action="append",
                default=[],
                metavar=metavar,
                help=f"{side.upper()}: {what} (repeatable)",
            )
        parser.add_argument(
            f"--{side}-code",
            type=Path,
            default=None,
            metavar="PATH",
            help=f"{side.upper()}: import olapsync from this source tree (e.g. a git worktree)",
        )
    args = parser.parse_args(argv)
    sides = {side: _side(args, side) for side in ("a", "b")}

    source: DemoSource = start_source(args.rows, args.users, args.data_dir.resolve())
    runs: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    try:
        for pair in range(args.pairs):
            for side, (extra, env, _) in sides.items():
                label = f"pair {pair + 1} {side.upper()}"  # run_variant checks the rows
                runs[side].append(
                    run_variant(source, "olapsync", args, label, extra=extra, env=env)
                )
    finally:
        source.server.stop()

    report: dict[str, Any] = {"rows": args.rows, "pairs": args.pairs, "sides": {}}
    for side, (_, _, label) in sides.items():
        report["sides"][side] = {"label": label} | {
            key: {
                "median": median([r[key] for r in runs[side]]),
                "min": min(r[key] for r in runs[side]),
                "max": max(r[key] for r in runs[side]),
            }
            for key in METRICS
        }
    write_json(args.json, report)
    a, b = report["sides"]["a"], report["sides"]["b"]
    print(f"\nolapsync import of {args.rows:,} events, {args.pairs} interleaved pairs")
    print(f"  A: {a['label']}\n  B: {b['label']}")
    print(f"{'':14}{'A median':>10}{'A range':>16}{'B median':>10}{'B range':>16}{'B / A':>8}")
    for key, name in METRICS.items():
        ma, mb = a[key]["median"], b[key]["median"]
        print(
            f"{name:14}{ma:10.2f}{a[key]['min']:8.2f}-{a[key]['max']:<7.2f}"
            f"{mb:10.2f}{b[key]['min']:8.2f}-{b[key]['max']:<7.2f}{mb / ma:8.3f}"
        )
    print(f"\nwrote {args.json}", file=sys.stderr)
    return report


if __name__ == "__main__":
    run_cli(main)
