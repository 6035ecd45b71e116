"""Import throughput: olapsync against the ways one could otherwise move the same rows.

    uv run python -m benchmarks.import_throughput [--rows N] [--repeat K] [--json PATH]

Builds (or reuses) an embedded PostgreSQL with N events and 10,000 users from the demo
generator, then runs each variant K times, alternating (every other round in reverse order),
each in a fresh process and a fresh ClickHouse folder, and prints medians: seconds, rows/s,
peak RSS, and ratios to olapsync.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RESULTS,
    add_docs_argument,
    add_source_arguments,
    bar_chart,
    median,
    mermaid_bar_chart,
    publish,
    ratio,
    run_cli,
    run_header,
    run_isolated,
    server_cpu_seconds,
    start_source,
    verdict,
    write_json,
)
from olapsync.demo import DemoSource

ALL = [
    "copy_binary",
    "copy_binary_2",
    "connectorx_read",
    "extract_only",
    "clickhouse_postgresql",
    "naive_pandas",
    "olapsync",
]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.import_throughput", description=__doc__.split("\n\n")[0]
    )
    add_source_arguments(parser)
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (default 3)")
    parser.add_argument("--variants", default=",".join(ALL), help="comma-separated subset")
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=1_000_000,
        help="also run olapsync alone on this many events, to compare its peak RSS "
        "(default 1M; 0: skip)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write results (default bench-results/import_N.json)",
    )
    add_docs_argument(parser)
    args = parser.parse_args(argv)
    names = [n for n in args.variants.split(",") if n]
    if unknown := sorted(set(names) - set(ALL)):
        parser.error(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(ALL)}")
    out = args.json or RESULTS / f"import_{args.rows}.json"

    source = start_source(args.rows, args.users, args.data_dir.resolve())
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    try:
        for round_ in range(args.repeat):
            # Every other round in reverse order: a steady drift of this shared machine's
            # speed during a round (about a minute) then favours no variant over another.
            for name in names if round_ % 2 == 0 else names[::-1]:
                runs[name].append(run_variant(source, name, args, f"round {round_ + 1}"))
    finally:
        source.server.stop()
    baseline = None
    if "olapsync" in names and 0 < args.baseline_rows < args.rows:
        baseline = rss_baseline(args)

    results = {
        name: {
            "seconds": median([r["seconds"] for r in rs]),
            "rows_per_s": args.rows / median([r["seconds"] for r in rs]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in rs]),
            "cpu_seconds": median([r["cpu_seconds"] for r in rs]),
            "source_cpu_seconds": median([r["source_cpu_seconds"] for r in rs]),
            "runs": [round(r["seconds"], 3) for r in rs],
        }
        for name, rs in runs.items()
    }
    report = {"rows": args.rows, "users": args.users, "repeat": args.repeat, "results": results}
    if baseline is not None:
        report["olapsync_baseline"] = baseline
    write_json(out, report)
    print_table(report)
    chart = (
        f"Import of {args.rows:,} events (median of {args.repeat})",
        list(results),
        [r["seconds"] for r in results.values()],
        "seconds (lower is better)",
    )
    bar_chart(out.with_suffix(".png"), *chart)
    table = markdown(report)
    out.with_suffix(".md").write_text(table + "\n" + mermaid_bar_chart(*chart) + "\n")
    print(f"\nwrote {out} and its chart as .png and .md", file=sys.stderr)
    header = run_header("benchmarks.import_throughput", argv)
    publish(
        args.docs_root,
        "import_throughput",
        full=f"{header}\n\n{table}\n{mermaid_bar_chart(*chart)}",
        summary=f"{header}\n\n{table}",
    )
    return report


def run_variant(
    source: DemoSource,
    name: str,
    args: argparse.Namespace,
    label: str,
    *,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One run of one variant in a fresh process and ClickHouse folder, with the CPU the
    PostgreSQL server spent meanwhile. `extra`: more arguments for `benchmarks.variants`."""
    server_cpu = server_cpu_seconds(source.server.data_dir)
    result = run_isolated(
        "benchmarks.variants",
        name,
        "--crm-url",
        source.crm_url,
        "--telemetry-url",
        source.telemetry_url,
        "--folder",
        str((args.data_dir / "ch-bench").resolve()),
        "--rows",
        str(source.generated.events),
        "--batch-size",
        str(args.batch_size),
        *extra,
        env=env,
    )
    if result["rows"] != source.generated.events:
        raise RuntimeError(f"{name} moved {result['rows']:,} rows, not {source.generated.events:,}")
    time.sleep(0.2)  # let the last backend exit and be counted
    result["source_cpu_seconds"] = server_cpu_seconds(source.server.data_dir) - server_cpu
    print(
        f"{label} {name:22} {result['seconds']:7.2f}s "
        f"{result['peak_rss_mb']:7.0f} MB  CPU {result['cpu_seconds']:5.2f}"
        f" + {result['source_cpu_seconds']:5.2f} s",
        file=sys.stderr,
    )
    return result


def rss_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """olapsync alone on `--baseline-rows` events (its own source, same users), for the
    target that its peak RSS stays flat as the table grows."""
    rows = args.baseline_rows
    source = start_source(rows, args.users, (args.data_dir / "baseline").resolve())
    try:
        rs = [run_variant(source, "olapsync", args, f"{rows:,} rows") for _ in range(args.repeat)]
    finally:
        source.server.stop()
    return {
        "rows": rows,
        "seconds": median([r["seconds"] for r in rs]),
        "peak_rss_mb": median([r["peak_rss_mb"] for r in rs]),
        "runs": [round(r["seconds"], 3) for r in rs],
    }


def print_table(report: dict[str, Any]) -> None:
    results = report["results"]
    base = results.get("olapsync", {}).get("seconds")
    print(f"\nImport of {report['rows']:,} events, median of {report['repeat']} runs")
    print(
        f"{'variant':24}{'seconds':>9}{'rows/s':>12}{'peak RSS MB':>13}{'÷ olapsync':>12}"
        f"{'CPU s':>8}{'+ PG CPU s':>12}"
    )
    for name, r in results.items():
        ratio = f"{r['seconds'] / base:.2f}" if base else "-"
        print(
            f"{name:24}{r['seconds']:9.2f}{r['rows_per_s']:12,.0f}{r['peak_rss_mb']:13.0f}"
            f"{ratio:>12}{r.get('cpu_seconds', 0):8.2f}{r.get('source_cpu_seconds', 0):12.2f}"
        )
    print(
        "CPU s: the variant's own process, all threads; PG CPU s: the PostgreSQL server's, "
        "in the same interval. Both share the same cores."
    )
    if base:
        print()
        for line in target_lines(report):
            print(line)


def markdown(report: dict[str, Any]) -> str:
    """The table and the target lines as Markdown, as the README shows them."""
    results = report["results"]
    base = results.get("olapsync", {}).get("seconds")
    lines = [
        f"{report['rows']:,} events, {report['users']:,} users, median of {report['repeat']}:",
        "",
        "| variant | seconds | rows/s | peak RSS MB | ÷ olapsync | CPU s | + PostgreSQL CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        label = f"**`{name}`**" if name == "olapsync" else f"`{name}`"
        ratio = f"{r['seconds'] / base:.2f}" if base else "-"
        lines.append(
            f"| {label} | {r['seconds']:.2f} | {r['rows_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} "
            f"| {ratio} | {r.get('cpu_seconds', 0):.2f} | {r.get('source_cpu_seconds', 0):.2f} |"
        )
    if base:
        lines += ["", *(f"- {line.strip()}" for line in target_lines(report))]
    return "\n".join(lines) + "\n"


def target_lines(report: dict[str, Any]) -> list[str]:
    """The issue's targets, each as PASS/MISS with the ratio as the target states it."""
    results = report["results"]
    mine = results["olapsync"]
    lines = []

    def check(ok: bool, text: str) -> None:
        lines.append(verdict(ok, text))

    if "clickhouse_postgresql" in results:
        r, text = ratio(results, "clickhouse_postgresql", "olapsync")
        check(r >= 1.1, f"{text}  (target >= 1.1)")
    if "connectorx_read" in results:
        r, text = ratio(results, "olapsync", "connectorx_read")
        check(r <= 1.3, f"{text}  (target <= 1.3)")
    if "naive_pandas" in results:
        r, text = ratio(results, "naive_pandas", "olapsync")
        check(r >= 5, f"{text}  (target >= 5)")
    rss = mine["peak_rss_mb"]
    check(rss <= 700, f"olapsync peak RSS = {rss:.0f} MB  (target <= 700)")
    if "olapsync_baseline" in report:
        base = report["olapsync_baseline"]
        r = rss / base["peak_rss_mb"]
        check(
            r <= 1.3,
            f"olapsync peak RSS at {report['rows']:,} / at {base['rows']:,} events = {r:.2f}"
            f"  ({base['peak_rss_mb']:.0f} MB; target <= 1.3)",
        )
    if "extract_only" in results:
        _, text = ratio(results, "olapsync", "extract_only")
        lines.append(f"  info  {text}  (its own read alone)")
    return lines


if __name__ == "__main__":
    run_cli(main)
