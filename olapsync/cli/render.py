"""How the commands print what the library returns: rich tables on stdout, or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any, Protocol, TypeVar

import click
import polars as pl
from rich.console import Console
from rich.table import Table

from olapsync import words
from olapsync.partitions import NO_TIME
from olapsync.queries import UserReport
from olapsync.results import ImportPlan, ImportResult, Status, SyncPlan
from olapsync.specs import USERS
from olapsync.verify import VerifyReport

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)
for _console in (err_console, out_console):
    if not _console.is_terminal:
        # In a pipe or a log, rich would assume 80 columns and squeeze the tables.
        _console.width = 160


class _Record(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=_Record)


def print_json(data: Any) -> None:
    """`data` as indented JSON on stdout; datetimes and other values as their `str`."""
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def show(record: R, printer: Callable[[R], None], *, as_json: bool) -> None:
    """A library result on stdout: its `to_dict()` as JSON, or as `printer` draws it."""
    if as_json:
        print_json(record.to_dict())
    else:
        printer(record)


def hint(text: str) -> None:
    """A line on stderr that is a command to copy: never wrapped."""
    click.echo(text, err=True)


def print_result(result: ImportResult) -> None:
    """An import's or a sync's result: the counts, then, for a sync, each month it changed."""
    is_sync = result.kind == "sync"
    title = f"olapsync {result.kind} {result.run_id}: {result.status}"
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        *([] if is_sync else [("window", result.window.describe())]),
        ("users loaded", f"{result.users_loaded:,} (was {result.users_before:,})"),
        ("events loaded", f"{result.events_loaded:,}"),
        ("events rejected", f"{result.events_rejected:,}"),
        ("events skipped (user gone)", f"{result.events_skipped_orphans:,}"),
        ("orphans removed elsewhere", f"{result.orphans_removed:,}"),
        *([] if is_sync else [("rows kept outside the window", f"{result.edge_rows_kept:,}")]),
        ("partitions replaced", ", ".join(result.partitions_replaced) or "-"),
        ("partitions dropped", ", ".join(result.partitions_dropped) or "-"),
        *([("partitions appended", ", ".join(result.partitions_appended) or "-")] * is_sync),
        ("partitions cleaned", ", ".join(result.partitions_cleaned) or "-"),
        *([("watermark", _utc(result.watermark))] * is_sync),
        ("seconds", f"{result.seconds:.2f}"),
        ("rows/s", f"{result.events_loaded / max(result.seconds, 1e-9):,.0f}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    out_console.print(table)
    if is_sync:
        _print_sync_months(result)


def _print_sync_months(result: ImportResult) -> None:
    """Each month a sync changed: what it did, why, and its rows (read, appended, removed)."""
    appended = set(result.partitions_appended) | set(result.rows_appended)
    dropped, cleaned = set(result.partitions_dropped), set(result.partitions_cleaned)
    months = sorted(
        set(result.months) | set(result.partitions_replaced) | appended | dropped | cleaned,
        key=_month_order,
    )
    if not months:
        out_console.print(
            "Nothing changed since the last run: no month was rebuilt or appended to."
        )
        return
    table = Table("month", "done", "why", "rows", title="Months changed", title_justify="left")
    table.columns[-1].justify = "right"
    for pid in months:
        done = (
            "dropped"
            if pid in dropped
            else "appended"
            if pid in appended
            else "cleaned"
            if pid in cleaned
            else "rebuilt"
        )
        why = ", ".join(result.months.get(pid, []))
        read = result.rows_per_partition.get(pid)
        if not why:
            # The ledger names a reason only for months picked by what changed; the rest
            # were read whole by a first (full) sync, or kept with rows taken out of them.
            why = "full import" if read is not None else "rows removed (users gone, repeated ids)"
        table.add_row(_month(pid), done, why, _month_rows(result, pid))
    out_console.print(table)


def _month_rows(result: ImportResult, pid: str) -> str:
    """What a sync did to a month's rows: read (rebuilt), new and removed (kept)."""
    parts = []
    if pid in result.rows_per_partition:
        parts.append(f"{result.rows_per_partition[pid]:,} read")
    if pid in result.rows_appended:
        parts.append(f"{result.rows_appended[pid]:,} new")
    if result.rows_removed.get(pid):
        parts.append(f"{result.rows_removed[pid]:,} removed")
    return ", ".join(parts) or ("none left" if pid in result.partitions_dropped else "-")


def print_sync_plan(plan: SyncPlan, *, source_table: str, watermark_column: str) -> None:
    """What a sync would do (`sync --dry-run`): where it would read from, whether
    PostgreSQL finds those rows through an index, and each month's action and why."""
    out_console.print("[bold]Dry run[/bold]: nothing changed.")
    if plan.full:
        out_console.print(
            "No sync or full import has run on this target yet: the first sync will be a full "
            "import (every month read and replaced)."
        )
    else:
        since = _utc(plan.since)
        out_console.print(
            f"It would read the rows of {source_table} saved since {since} "
            f"({watermark_column} >= the last run's watermark minus --lag): "
            f"{_rows(plan.candidates)} now."
        )
        if plan.access == "scan":
            out_console.print(
                f"[yellow]PostgreSQL would scan the whole {source_table} table to find them[/]: "
                "a sequential scan reads every row, at every sync."
            )
            out_console.print(
                f"  To read only the new rows, index the column (or, with an index already "
                f"there, PostgreSQL judged that most rows match):\n"
                f"  CREATE INDEX ON {source_table} ({watermark_column});"
            )
        elif plan.access == "index":
            out_console.print(
                f"PostgreSQL would find them through an index on {watermark_column}: the cost "
                "follows the new rows, not the table."
            )
    out_console.print(f"users: {plan.users_current:,} now -> {plan.users_source:,} from the CRM")
    if plan.full:
        return
    if not plan.months:
        out_console.print("No month would be rebuilt, appended to or cleaned.")
        return
    table = Table("month", "action", "why", "rows")
    table.columns[-1].justify = "right"
    for pid, month in sorted(plan.months.items(), key=lambda kv: _month_order(kv[0])):
        action = month["action"]
        rows = [] if action != "rebuild" else ["the whole month read"]
        rows += [f"{month['rows']:,} new"] * (action == "append")
        if month.get("removed"):
            rows.append(f"{month['removed']:,} removed")
        table.add_row(_month(pid), str(action), ", ".join(month["reasons"]), ", ".join(rows))
    out_console.print(table)
    if plan.orphans_removed:
        cleaned = sum(1 for m in plan.months.values() if m.get("removed"))
        out_console.print(
            f"orphans removed elsewhere: {plan.orphans_removed:,} events of users no longer in "
            f"the CRM, from {words.count(cleaned, 'month')} kept"
        )


_STATUS_STYLE = {"ok": "", "unverified": "yellow"}
_NAMED = 6  # drifted months named in the summary line; the table lists them all


def print_verify(report: VerifyReport) -> None:
    """`verify`'s table, drifted months highlighted, a summary line, and, after `--repair`,
    the repair's result."""
    table = Table(title=f"olapsync verify: database {report.database}", title_justify="left")
    for name in ("month", "source rows", "in ClickHouse", "loaded", "rejected", "skipped"):
        table.add_column(name, justify="left" if name == "month" else "right")
    table.add_column("status")
    table.add_column("detail")
    for c in sorted(
        report.checks, key=lambda c: (c.table == USERS.name, _month_order(c.partition))
    ):
        month = "users (all)" if c.table == USERS.name else _month(c.partition)
        style = _STATUS_STYLE.get(c.status, "bold red")
        counts = (c.source_rows, c.target_rows, c.loaded, c.rejected, c.skipped)
        table.add_row(month, *(f"{n:,}" for n in counts), c.status, c.detail, style=style)
    out_console.print(table)
    for note in report.notes:
        out_console.print(note)
    months = sum(1 for c in report.checks if c.table != USERS.name)
    drifted = report.drifted
    if not drifted:
        out_console.print(
            f"[green]OK[/green]: all {months} months and the users match what their last load "
            f"recorded ({report.seconds:.1f}s)."
        )
        return
    names = ", ".join(
        f"{'users' if c.table == USERS.name else _month(c.partition)} ({c.status})"
        for c in drifted[:_NAMED]
    )
    if len(drifted) > _NAMED:
        names += f" and {len(drifted) - _NAMED} more"
    out_console.print(
        f"[bold red]DRIFT[/bold red]: {len(drifted)} of {len(report.checks)} checks differ: "
        f"{names} ({report.seconds:.1f}s)."
    )
    if report.repaired is None:
        out_console.print(
            "Rebuild them with `olapsync verify --repair` (or `olapsync sync --verify`)."
        )
        return
    rebuilt = ", ".join(sorted(report.repaired.months)) or "no month (the users reload)"
    out_console.print(f"[green]Repaired[/green] by sync {report.repaired.run_id}: {rebuilt}.")
    print_result(report.repaired)


def _month(pid: str) -> str:
    return "(no event time)" if pid == NO_TIME else pid


def _month_order(pid: str) -> tuple[bool, str]:
    return (pid != NO_TIME, pid)


def _rows(n: int) -> str:
    return words.count(n, "row")


def _utc(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def print_plan(plan: ImportPlan) -> None:
    out_console.print(f"[bold]Dry run[/bold] for window {plan.window.describe()}: nothing changed.")
    if plan.tables_to_create:
        out_console.print(f"Would create: {', '.join(plan.tables_to_create)}")
    users = f"users: {plan.users_current:,} now -> {plan.users_source:,} from the CRM"
    if plan.users_shrink_blocked:
        users += " [red](blocked by the shrink guard; --allow-shrink to accept)[/red]"
    out_console.print(users)
    table = Table("partition", "source rows", "action")
    for pid in sorted(set(plan.partitions_to_replace) | set(plan.partitions_to_drop)):
        action = "drop" if pid in plan.partitions_to_drop else "replace"
        if pid in plan.edge_partitions:
            action += " (keeps rows outside the window)"
        if pid in plan.months_reread:
            action += f" (read whole: {', '.join(plan.months_reread[pid])})"
        rows = plan.source_rows_per_partition.get(pid)
        shown = "-" if rows is None and pid in plan.months_reread else f"{rows or 0:,}"
        table.add_row(pid, shown, action)
    out_console.print(table)
    if plan.source_rows_unusable_time:
        unusable = plan.source_rows_unusable_time
        out_console.print(
            f"{words.count(unusable, 'source row')} {'has' if unusable == 1 else 'have'} no usable "
            "event time (NULL, infinite, or outside ClickHouse's DateTime range "
            "1970-01-01..2106-02-07) and would be rejected."
        )
    out_console.print(
        f"events skipped (user gone): {plan.events_skipped_orphans:,} "
        "(the window's rows whose user is not in the CRM)"
    )
    out_console.print(
        f"orphans removed elsewhere: {plan.orphans_removed:,} "
        "(events in ClickHouse outside the window whose user is not in the CRM)"
    )


def print_status(st: Status) -> None:
    out_console.print(f"[bold]{st.clickhouse_url}[/bold] database [bold]{st.database}[/bold]")
    tables = Table("table", "rows")
    for name, count in st.tables.items():
        tables.add_row(name, f"{count:,}")
    out_console.print(tables if st.tables else "No tables yet: run `olapsync import`.")
    if st.partitions:
        parts = Table("partition", "rows")
        for pid, count in st.partitions.items():
            parts.add_row(pid, f"{count:,}")
        out_console.print(parts)
    if st.runs:
        ledger = Table("run", "status", "started (UTC)", "seconds", "events", "rejected", "error")
        for run in st.runs:
            ledger.add_row(
                run.run_id,
                run.status,
                f"{run.started_at:%Y-%m-%d %H:%M:%S}",
                f"{run.seconds:.1f}",
                f"{run.events_loaded:,}",
                f"{run.events_rejected:,}",
                run.error[:60],
            )
        out_console.print(ledger)


def print_report(report: UserReport) -> None:
    out_console.print(
        f"[bold]{report.user_name}[/bold] <{report.user_email}>: "
        f"{report.total_events:,} events, total duration {report.total_duration:,} ms"
    )
    if report.prosthesis_stats:
        stats = pl.DataFrame([asdict(s) for s in report.prosthesis_stats])
        print_frame("By prosthesis type", stats)


def print_frame(title: str, frame: pl.DataFrame) -> None:
    table = Table(*frame.columns, title=title, title_justify="left", title_style="bold")
    for row in frame.iter_rows():
        table.add_row(*(_cell(v) for v in row))
    out_console.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    return "" if value is None else str(value)
