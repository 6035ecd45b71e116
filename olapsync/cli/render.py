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

from olapsync.queries import UserReport
from olapsync.results import ImportPlan, ImportResult, Status

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
    table = Table(title=f"olapsync import {result.run_id}: {result.status}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("window", result.window.describe()),
        ("users loaded", f"{result.users_loaded:,} (was {result.users_before:,})"),
        ("events loaded", f"{result.events_loaded:,}"),
        ("events rejected", f"{result.events_rejected:,}"),
        ("events skipped (user gone)", f"{result.events_skipped_orphans:,}"),
        ("orphans removed elsewhere", f"{result.orphans_removed:,}"),
        ("rows kept outside the window", f"{result.edge_rows_kept:,}"),
        ("partitions replaced", ", ".join(result.partitions_replaced) or "-"),
        ("partitions dropped", ", ".join(result.partitions_dropped) or "-"),
        ("seconds", f"{result.seconds:.2f}"),
        ("rows/s", f"{result.events_loaded / max(result.seconds, 1e-9):,.0f}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    out_console.print(table)


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
        table.add_row(pid, f"{plan.source_rows_per_partition.get(pid, 0):,}", action)
    out_console.print(table)
    if plan.source_rows_unusable_time:
        out_console.print(
            f"{plan.source_rows_unusable_time:,} source rows have no usable event time "
            "and will be rejected."
        )
    out_console.print(f"events of users no longer in the CRM: {plan.orphans_in_target:,}")


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
