"""Refresh: what a scheduled run costs after a day of changes, against a full reload, and
whether ClickHouse then equals PostgreSQL (issue 17).

    uv run python -m benchmarks.refresh [--rows N] [--repeat K] [--json PATH]

Builds (or reuses) an embedded PostgreSQL with N events over 24 months and 10,000 users,
indexed on saved_ts and event_timestamp besides the primary key, imports it with
`olapsync import` (untimed: the before state) and applies a day of changes to copies of the
source: 1% new rows in the latest month, 500 late rows over the three months before it, 200
rows updated and 100 deleted in an old month without touching saved_ts, one user deleted.

Then, K rounds, each run in a fresh process from a copy of the imported ClickHouse folder
and a fresh copy of its source state, it times: ClickHouse's own pull as a full reload,
`olapsync import`, `sync`, `sync --verify`, `verify`, and `sync` after days of only new rows
(0.1%, 1%, 10%), with nothing new, and with one row of the latest month updated too (no
append possible). After each run it compares per-month row counts and checksums with
PostgreSQL. Last, it times the source-side queries: the watermark query with and without the
saved_ts index, and the per-month fingerprint query.

It prints the medians, the issue's targets (PASS/MISS with the range of the rounds' own
ratios) and the parity verdicts, and writes JSON and Markdown. Commands olapsync does not
have yet are reported as not available.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from benchmarks.common import (
    RESULTS,
    add_data_dir_argument,
    add_docs_argument,
    median,
    publish,
    run_cli,
    run_header,
    run_isolated,
    server_cpu_seconds,
    write_json,
)
from benchmarks.refresh_parity import Fingerprints, compare
from benchmarks.refresh_report import markdown, print_report, summary
from benchmarks.refresh_source import (
    INDEXES,
    MONTHS,
    RefreshSource,
    Scenario,
    make_scenario,
    reference,
    source_queries,
    start_refresh_source,
)

DAY = Scenario("day", new_share=0.01, day=True)
IDLE = Scenario("idle")
SYNC_LAG = timedelta(minutes=15)  # `olapsync sync`'s default --lag


@dataclass(frozen=True)
class Variant:
    """A timed run: the `benchmarks.refresh_run` step, the PostgreSQL state it reads and what
    ClickHouse should hold after it: "exact" (the source, parity exact), "sync" (exact, or
    exact but for the month changed without `saved_ts`, which only --verify must find) or
    "unchanged" (the imported state)."""

    name: str
    step: str
    scenario: Scenario
    expect: Literal["exact", "sync", "unchanged"] = "exact"
    group: str = ""


class States:
    """The source states timed runs start from, each made on first use (after the import of
    the before data) with its reference fingerprints: what ClickHouse should then hold."""

    def __init__(self, source: RefreshSource) -> None:
        self.source = source
        self.changes: dict[str, dict[str, Any]] = {}
        self.references: dict[str, Fingerprints] = {}

    def prepare(self, scenario: Scenario) -> Fingerprints:
        if scenario.name not in self.references:
            self.changes[scenario.name] = make_scenario(self.source, scenario)
            self.references[scenario.name] = reference(self.source, scenario)
        return self.references[scenario.name]

    def drop(self) -> None:
        """Drop the scenarios' databases and the working pair (the before pair stays)."""
        names = ["crm", "telemetry"]
        for name in self.changes:
            if name != IDLE.name:
                names += [Scenario(name).crm, Scenario(name).telemetry]
        for name in names:
            self.source.drop_database(name)


@dataclass
class Runs:
    rounds: list[dict[str, Any]] = field(default_factory=list)
    not_available: str = ""


def variants(new_rows: list[float]) -> list[Variant]:
    smallest = min(new_rows)
    out = [
        Variant("pull", "pull", DAY, group="pull"),
        Variant("import", "import", DAY, group="import"),
        Variant("sync", "sync", DAY, "sync", group="sync"),
        Variant("sync --verify", "sync_verify", DAY, group="sync_verify"),
        Variant("verify", "verify", DAY, "unchanged", group="verify"),
        Variant("sync, idle", "sync", IDLE, group="scaling"),
    ]
    for pct in new_rows:
        scenario = Scenario(f"new_{pct:g}".replace(".", "_"), new_share=pct / 100)
        out.append(Variant(f"sync, +{pct:g}% new", "sync", scenario, group="scaling"))
    rebuild = Scenario("rebuild", new_share=smallest / 100, touch_one=True)
    out.append(Variant(f"sync, +{smallest:g}% new, 1 updated", "sync", rebuild, group="scaling"))
    return out


GROUPS = ["pull", "import", "sync", "sync_verify", "verify", "scaling"]


def _percentages(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of percentages") from None
    if not values or any(not 0 < v <= 50 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: each share must be in (0, 50] percent")
    return sorted(values)


def _variant_groups(text: str) -> list[str]:
    names = [n for n in text.split(",") if n]
    if unknown := sorted(set(names) - set(GROUPS)):
        raise argparse.ArgumentTypeError(
            f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(GROUPS)}"
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.refresh",
        description="\n\n".join(p for p in __doc__.split("\n\n") if not p.startswith("    ")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=10_000_000,
        metavar="N",
        help="events before the changes (default 10M, the issue's size)",
    )
    parser.add_argument(
        "--users", type=int, default=10_000, metavar="U", help="users (default 10,000)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="K",
        help="rounds; each variant runs once a round, every other round in reverse order "
        "(default 3)",
    )
    parser.add_argument(
        "--new-rows",
        type=_percentages,
        default=[0.1, 1.0, 10.0],
        metavar="PCT,PCT,...",
        help="the append fast path's days: new rows in the latest month, in percent of the "
        "table (default 0.1,1,10)",
    )
    parser.add_argument(
        "--variants",
        type=_variant_groups,
        default=GROUPS,
        metavar="NAME,...",
        help=f"a subset of {','.join(GROUPS)} (default all)",
    )
    add_data_dir_argument(parser, "the generated PostgreSQL sources")
    add_docs_argument(parser)
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="where to write results (default bench-results/refresh_N.json, and .md beside it)",
    )
    args = parser.parse_args(argv)
    if args.rows < 1000 or args.repeat < 1:
        parser.error("--rows must be at least 1000 and --repeat at least 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = args.json or RESULTS / f"refresh_{args.rows}.json"
    data_dir = args.data_dir.resolve()
    imported, work = data_dir / "ch-refresh-imported", data_dir / "ch-refresh"
    chosen = [v for v in variants(args.new_rows) if v.group in args.variants]
    source = start_refresh_source(args.rows, args.users, data_dir)
    states = States(source)
    try:
        imported_at = import_before(source, imported)
        states.prepare(DAY)
        runs = {v.name: Runs() for v in chosen}
        missing: dict[str, str] = {}  # step -> why olapsync cannot run it (yet)
        for round_ in range(args.repeat):
            # Every other round in reverse order, so that a drift of this shared machine's
            # speed favours no variant.
            for v in chosen if round_ % 2 == 0 else chosen[::-1]:
                if v.step in missing:
                    runs[v.name].not_available = missing[v.step]
                    continue
                run_one(states, v, runs[v.name], imported, work, round_ + 1)
                if runs[v.name].not_available:
                    missing[v.step] = runs[v.name].not_available
        queries = source_queries(source, DAY.telemetry, imported_at - SYNC_LAG, args.repeat)
    finally:
        # Clean-up must not hide the error that interrupted the run.
        with contextlib.suppress(Exception):
            states.drop()
        source.pg.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(imported, ignore_errors=True)

    changes = states.changes
    report = {
        "rows": args.rows,
        "users": args.users,
        "months": MONTHS,
        "repeat": args.repeat,
        "indexes": ["telemetry_events_pkey (id)", *(f"{n} ({c})" for n, c in INDEXES.items())],
        "changes": changes[DAY.name],
        "scaling": {
            v.name: changes[v.scenario.name]
            for v in chosen
            if v.group == "scaling" and v.scenario.name in changes
        },
        "results": {
            v.name: summarize(v, runs[v.name], changes[DAY.name]["old_month"])
            for v in chosen
            if runs[v.name].rounds
        },
        "not_available": {n: r.not_available for n, r in runs.items() if r.not_available},
        "source_queries": queries,
    }
    write_json(out, report)
    print_report(report)
    out.with_suffix(".md").write_text(markdown(report))
    print(f"\nwrote {out} and {out.with_suffix('.md')}", file=sys.stderr)
    header = run_header("benchmarks.refresh", argv)
    publish(
        args.docs_root,
        "refresh",
        full=f"{header}\n\n{markdown(report)}",
        summary=f"{header}\n\n{summary(report)}",
    )
    return report


def _step(step: str, folder: Path, source: RefreshSource, crm: str, telemetry: str) -> Any:
    env = {
        "OLAPSYNC_CRM_URL": source.url(crm),
        "OLAPSYNC_TELEMETRY_URL": source.url(telemetry),
        "OLAPSYNC_CLICKHOUSE_URL": f"chdb://{folder}",
        "OLAPSYNC_CLICKHOUSE_DATABASE": "olap",
    }
    return run_isolated(
        "benchmarks.refresh_run",
        step,
        *("--folder", str(folder)),
        *("--crm-url", env["OLAPSYNC_CRM_URL"], "--telemetry-url", env["OLAPSYNC_TELEMETRY_URL"]),
        env=env,
    )


def import_before(source: RefreshSource, folder: Path) -> datetime:
    """The imported state every timed run starts from: `olapsync import` of the before data,
    each month then merged into one part (as ClickHouse leaves it a minute later). Returns
    when the import started (UTC, naive like the source's timestamps)."""
    shutil.rmtree(folder, ignore_errors=True)
    started = datetime.now(UTC).replace(tzinfo=None)
    began = time.monotonic()
    done = _step("import", folder, source, "crm_before", "telemetry_before")
    if done["exit_code"] != 0:
        raise RuntimeError(f"the import of the before data failed: {done['message']}")
    _step("optimize", folder, source, "crm_before", "telemetry_before")
    print(
        f"imported the before state ({source.rows:,} events) in {time.monotonic() - began:.0f}s",
        file=sys.stderr,
    )
    return started


def run_one(
    states: States, v: Variant, runs: Runs, imported: Path, work: Path, round_: int
) -> None:
    """One timed run of `v` from the imported state and `v`'s source state (both restored
    untimed), then its parity with PostgreSQL."""
    source, expected = states.source, states.prepare(v.scenario)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(imported, work, symlinks=True)
    source.use(v.scenario)
    server_cpu = server_cpu_seconds(source.pg.data_dir)
    result = _step(v.step, work, source, "crm", "telemetry")
    time.sleep(0.2)  # let the last backend exit and be counted
    result["source_cpu_seconds"] = server_cpu_seconds(source.pg.data_dir) - server_cpu
    if not result["available"]:
        reason = next(
            (line for line in result["message"].splitlines() if "Error:" in line),
            result["message"],
        )
        runs.not_available = f"not available: {reason.strip()}"
        print(f"round {round_} {v.name:32} {runs.not_available}", file=sys.stderr)
        return
    allowed = (0, 3) if v.step == "verify" else (0,)
    if result["exit_code"] not in allowed:
        raise RuntimeError(
            f"`olapsync {v.step}` exited {result['exit_code']}: {result['message'][-800:]}"
        )
    found = Fingerprints.from_dict(_step("checksum", work, source, "crm", "telemetry"))
    result["parity"] = compare(expected, found).to_dict()
    if v.expect == "unchanged":
        result["unchanged"] = compare(states.prepare(IDLE), found).exact
    runs.rounds.append(result)
    print(
        f"round {round_} {v.name:32} {result['seconds']:7.2f}s {result['peak_rss_mb']:6.0f} MB"
        f"  CPU {result['cpu_seconds']:5.2f} + {result['source_cpu_seconds']:5.2f} s"
        f"  exit {result['exit_code']}  parity "
        f"{'exact' if result['parity']['exact'] else 'NOT exact'}",
        file=sys.stderr,
    )


def _as_expected(v: Variant, result: dict[str, Any], old_month: int) -> bool:
    parity = result["parity"]
    if v.expect == "unchanged":
        return bool(result["unchanged"])
    if v.expect == "sync":
        # Without --verify, the month changed without saved_ts cannot be seen: it may alone
        # differ (or be rebuilt anyway, for another reason such as the new rows or orphans).
        return bool(parity["users_exact"] and parity["differ"] in ([], [old_month]))
    return bool(parity["exact"])


def summarize(v: Variant, runs: Runs, old_month: int) -> dict[str, Any]:
    rs = runs.rounds
    return {
        "step": v.step,
        "group": v.group,
        "scenario": v.scenario.name,
        "expect": v.expect,
        "seconds": median([r["seconds"] for r in rs]),
        "runs": [round(r["seconds"], 3) for r in rs],
        "cpu_seconds": median([r["cpu_seconds"] for r in rs]),
        "source_cpu_seconds": median([r["source_cpu_seconds"] for r in rs]),
        "peak_rss_mb": median([r["peak_rss_mb"] for r in rs]),
        "exit_codes": [r["exit_code"] for r in rs],
        "parity": [r["parity"] for r in rs],
        "as_expected": all(_as_expected(v, r, old_month) for r in rs),
        "output": rs[-1]["output"],
    }


if __name__ == "__main__":
    run_cli(main)
