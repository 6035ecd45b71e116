"""The `olapsync` command: parses options, builds the config, calls the library and renders
the result. Errors become one line on stderr and a non-zero exit, never a traceback
(unless -v), and never a password.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import polars as pl
from rich.console import Console
from rich.live import Live
from rich.table import Table

from olapsync import api
from olapsync.config import DEFAULT_DATA_DIR, Config
from olapsync.errors import OlapsyncError
from olapsync.importer import ImportResult
from olapsync.progress import ProgressEvent
from olapsync.queries import Reports
from olapsync.redact import SecretFilter, guard_handlers, scrub
from olapsync.window import parse_ts

F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)
for _console in (err_console, out_console):
    if not _console.is_terminal:
        # In a pipe or a log, rich would assume 80 columns and squeeze the tables.
        _console.width = 160


class Timestamp(click.ParamType):  # type: ignore[type-arg]
    name = "TS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return parse_ts(str(value), name=param.opts[0] if param else "timestamp")
        except OlapsyncError as exc:
            self.fail(str(exc), param, ctx)


TS = Timestamp()


def connection_options(func: F) -> F:
    """--crm-url, --telemetry-url, --clickhouse-url, --database and -v on a command."""
    options = [
        click.option("--crm-url", metavar="URL", help="CRM PostgreSQL URL [env OLAPSYNC_CRM_URL]."),
        click.option(
            "--telemetry-url",
            metavar="URL",
            help="Telemetry PostgreSQL URL [env OLAPSYNC_TELEMETRY_URL].",
        ),
        click.option(
            "--clickhouse-url",
            metavar="URL",
            help="http(s)://user:pass@host:8123 or chdb:///abs/path "
            "[env OLAPSYNC_CLICKHOUSE_URL; default chdb://./olapsync-data/clickhouse].",
        ),
        click.option(
            "--database",
            metavar="NAME",
            help="ClickHouse database [env OLAPSYNC_CLICKHOUSE_DATABASE; default olap].",
        ),
        click.option("-v", "--verbose", is_flag=True, help="Log each step; show tracebacks."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# Removes the passwords of the command's config from every log record it prints.
_LOG_SECRETS = SecretFilter()


def _config(kw: dict[str, Any]) -> Config:
    config = Config.from_env(
        crm_url=kw.pop("crm_url", None),
        telemetry_url=kw.pop("telemetry_url", None),
        clickhouse_url=kw.pop("clickhouse_url", None),
        database=kw.pop("database", None),
    )
    _LOG_SECRETS.add(config.secrets())
    return config


def _fail(exc: BaseException, config: Config | None, verbose: bool) -> None:
    secrets = config.secrets() if config is not None else ()
    if verbose:
        click.echo(scrub("".join(traceback.format_exception(exc)), secrets), err=True)
    if isinstance(exc, OlapsyncError):
        message = str(exc)
    else:
        message = f"unexpected {type(exc).__name__}: {exc} (rerun with -v for details)"
    click.echo(f"error: {scrub(message, secrets)}", err=True)
    sys.exit(1)


def _setup_logging(verbose: bool) -> None:
    # Without -v, a handler like logging's last resort (warnings, bare), which takes no
    # filter; with or without, every record passes the secret filter.
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s" if verbose else "%(message)s",
        stream=sys.stderr,
    )
    guard_handlers(_LOG_SECRETS)


class _ImportDisplay:
    """A live table: one line per partition with rows, rows/s and what happened to it."""

    def __init__(self) -> None:
        # On a terminal, a live table; in a log (cron, CI), one plain line per step.
        self.interactive = err_console.is_terminal
        self.logged_at = 0.0
        self.live = Live(console=err_console, refresh_per_second=4, transient=False)
        self.last: ProgressEvent | None = None
        self.extract_started: float | None = None
        self.extract_seconds = 0.0
        self.rows: dict[str, int] = {}
        self.state: dict[str, str] = {}

    def __enter__(self) -> _ImportDisplay:
        if self.interactive:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.interactive:
            self.live.__exit__(*exc)

    def __call__(self, event: ProgressEvent) -> None:
        if event.phase == "extract":
            if self.extract_started is None:
                self.extract_started = event.seconds
            self.extract_seconds = max(event.seconds - self.extract_started, 1e-3)
            self.rows.update(event.partitions)
            for pid in event.partitions:
                self.state.setdefault(pid, "reading")
        if event.partition is not None:
            self.state[event.partition] = event.message
            if event.phase == "publish" and event.rows:
                self.rows[event.partition] = event.rows
        self.last = event
        if self.interactive:
            self.live.update(self._render())
        elif event.phase != "extract" or event.seconds - self.logged_at >= 5:
            self.logged_at = event.seconds
            where = f"{event.partition}: " if event.partition else ""
            rows = f" ({event.rows:,} rows)" if event.rows and event.phase == "publish" else ""
            click.echo(
                f"[{event.seconds:6.1f}s] {event.phase}: {where}{event.message}{rows}", err=True
            )

    def _render(self) -> Table:
        event = self.last
        table = Table(box=None, header_style="bold")
        for name in ("partition", "rows", "rows/s", "state"):
            table.add_column(name, justify="left" if name in ("partition", "state") else "right")
        if event is None:
            return table
        span = self.extract_seconds or 1e-3
        for pid in sorted(self.state):
            rows = self.rows.get(pid, 0)
            table.add_row(pid, f"{rows:,}", f"{rows / span:,.0f}", self.state[pid])
        total = sum(self.rows.values())
        table.add_row("[bold]all[/bold]", f"{total:,}", f"{total / span:,.0f}", "")
        table.caption = f"{event.phase}: {event.message}  ({event.seconds:.1f}s)"
        return table


def _print_result(result: ImportResult) -> None:
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


def _show_result(result: ImportResult | api.ImportPlan, as_json: bool) -> None:
    assert isinstance(result, ImportResult)
    if as_json:
        click.echo(_to_json(result.to_dict()))
    else:
        _print_result(result)


def _print_plan(plan: api.ImportPlan) -> None:
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


def _hint(text: str) -> None:
    # Commands to copy: never wrapped.
    click.echo(text, err=True)


def _to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, ensure_ascii=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="olapsync")
def main() -> None:
    """Move CRM users and telemetry events from PostgreSQL into ClickHouse, atomically.

    Start with `olapsync demo`: it needs nothing installed. Against real servers set
    OLAPSYNC_CRM_URL, OLAPSYNC_TELEMETRY_URL and OLAPSYNC_CLICKHOUSE_URL (or pass the options)
    and run `olapsync import`.

    Exit status: 0 success, 1 a failed run, 2 a usage error.
    """


@main.command()
@connection_options
def init(verbose: bool, **kw: Any) -> None:
    """Create the ClickHouse database and tables (idempotent)."""
    _setup_logging(verbose)
    config = None
    try:
        config = _config(kw)
        created = api.init(config)
    except Exception as exc:
        _fail(exc, config, verbose)
    out_console.print(f"Created: {', '.join(created)}" if created else "Everything already exists.")


@main.command(name="import")
@click.option(
    "--telemetry-start-ts",
    "--telemetry_start_ts",
    "start",
    type=TS,
    help="Replace events from this time on (inclusive): YYYY-MM-DD[ HH:MM:SS] or ISO-8601; "
    "naive times are UTC.",
)
@click.option(
    "--telemetry-end-ts",
    "--telemetry_end_ts",
    "end",
    type=TS,
    help="Replace events before this time (exclusive).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option(
    "--allow-shrink", is_flag=True, help="Accept a users table less than half its current size."
)
@click.option(
    "--max-rejected-ratio",
    type=click.FloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="Fail, publishing nothing, when a larger share of the window's rows is rejected.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@connection_options
def import_(
    start: datetime | None,
    end: datetime | None,
    dry_run: bool,
    allow_shrink: bool,
    max_rejected_ratio: float,
    as_json: bool,
    verbose: bool,
    **kw: Any,
) -> None:
    """Import users (full reload) and the telemetry window [START, END) into ClickHouse.

    Without a window every partition is replaced and partitions the source no longer has are
    dropped. With one, only the months it touches are rebuilt; rows of those months outside
    the window are kept. Readers see each table entirely old or entirely new.
    """
    _setup_logging(verbose)
    config = None
    try:
        config = _config(kw)
        if dry_run:
            plan = api.import_olap_data(start, end, config=config, dry_run=True)
            assert isinstance(plan, api.ImportPlan)
            if as_json:
                click.echo(_to_json(plan.to_dict()))
            else:
                _print_plan(plan)
            return
        with _ImportDisplay() as display:
            result = api.import_olap_data(
                start,
                end,
                config=config,
                allow_shrink=allow_shrink,
                max_rejected_ratio=max_rejected_ratio,
                on_progress=display,
            )
    except Exception as exc:
        _fail(exc, config, verbose)
    _show_result(result, as_json)


@main.command()
@click.option("--runs", default=5, show_default=True, help="How many recent runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON on stdout.")
@connection_options
def status(runs: int, as_json: bool, verbose: bool, **kw: Any) -> None:
    """Show the tables, their row counts and partitions, and the last runs."""
    _setup_logging(verbose)
    config = None
    try:
        config = _config(kw)
        st = api.status(config, last_runs=runs)
    except Exception as exc:
        _fail(exc, config, verbose)
    if as_json:
        click.echo(_to_json(st.to_dict()))
        return
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
                run["run_id"],
                run["status"],
                f"{run['started_at']:%Y-%m-%d %H:%M:%S}",
                f"{run['seconds']:.1f}",
                f"{run['events_loaded']:,}",
                f"{run['events_rejected']:,}",
                str(run["error"])[:60],
            )
        out_console.print(ledger)


def _print_frame(title: str, frame: pl.DataFrame) -> None:
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


@main.command()
@click.argument("user_id", type=click.IntRange(-(2**31), 2**31 - 1))
@click.option("--start-ts", "start", type=TS, help="From this time on (inclusive).")
@click.option("--end-ts", "end", type=TS, help="Up to this time (inclusive).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (as POST /report).")
@connection_options
def report(
    user_id: int,
    start: datetime | None,
    end: datetime | None,
    as_json: bool,
    verbose: bool,
    **kw: Any,
) -> None:
    """One user's events per prosthesis type, start_ts <= event_timestamp <= end_ts."""
    _setup_logging(verbose)
    config = None
    try:
        config = _config(kw)
        with Reports(config) as reports:
            result = reports.user_report(user_id, start, end)
    except Exception as exc:
        _fail(exc, config, verbose)
    if as_json:
        click.echo(_to_json(result.to_dict()))
        return
    out_console.print(
        f"[bold]{result.user_name}[/bold] <{result.user_email}>: "
        f"{result.total_events:,} events, total duration {result.total_duration:,} ms"
    )
    stats = (
        pl.DataFrame([asdict(s) for s in result.prosthesis_stats])
        if result.prosthesis_stats
        else None
    )
    if stats is not None:
        _print_frame("By prosthesis type", stats)


@main.command()
@click.option("--user-id", default=1, show_default=True, help="The user of examples 3 and 6.")
@click.option("--top", default=10, show_default=True, help="How many users example 7 lists.")
@click.option("--json", "as_json", is_flag=True, help="Print all results as JSON.")
@connection_options
def examples(user_id: int, top: int, as_json: bool, verbose: bool, **kw: Any) -> None:
    """Run the seed's eight example queries and print them as tables."""
    _setup_logging(verbose)
    config = None
    try:
        config = _config(kw)
        with Reports(config) as reports:
            results = reports.examples(user_id=user_id, top=top)
    except Exception as exc:
        _fail(exc, config, verbose)
    if as_json:
        click.echo(_to_json({title: frame.to_dicts() for title, frame in results.items()}))
        return
    for title, frame in results.items():
        _print_frame(title, frame)


@main.command()
@click.option("--users", default=1000, show_default=True, help="Users to generate.")
@click.option("--events", default=1_000_000, show_default=True, help="Events to generate.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(DEFAULT_DATA_DIR),
    show_default=True,
    help="Where the embedded PostgreSQL and ClickHouse keep their data.",
)
@click.option("--telemetry-start-ts", "start", type=TS, help="Import only from this time on.")
@click.option("--telemetry-end-ts", "end", type=TS, help="Import only before this time.")
@click.option(
    "--keep-postgres",
    is_flag=True,
    help="Leave the embedded PostgreSQL running and print its URLs for `olapsync import`.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the import result as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Log each step; show tracebacks.")
def demo(
    users: int,
    events: int,
    data_dir: Path,
    start: datetime | None,
    end: datetime | None,
    keep_postgres: bool,
    as_json: bool,
    verbose: bool,
) -> None:
    """Run the whole job on generated data: nothing to install or configure.

    Starts an embedded PostgreSQL under DATA_DIR/postgres with `crm` and `telemetry`
    databases of seed-shaped data (a few bad rows and orphans included), imports them into
    the embedded ClickHouse under DATA_DIR/clickhouse and prints the summary. A second run
    reuses the data.
    """
    from olapsync.generate import ensure_databases, generate
    from olapsync.pgembed import EmbeddedPostgres

    _setup_logging(verbose)
    config = None
    data_dir = data_dir.resolve()
    try:
        pg = EmbeddedPostgres(data_dir / "postgres")
        err_console.print(f"Starting PostgreSQL in {pg.data_dir} …")
        pg.start()
        try:
            t0 = time.monotonic()
            ensure_databases(pg.url())
            gen = generate(pg.url("crm"), pg.url("telemetry"), users=users, events=events)
            verb = "Generated" if gen.created else "Reusing"
            err_console.print(
                f"{verb} {gen.users:,} users and {gen.events:,} events "
                f"(+{gen.bad_rows} bad rows, +{gen.orphan_events} orphan events)"
                + (f" in {time.monotonic() - t0:.1f}s" if gen.created else "")
            )
            config = Config(
                crm_url=pg.url("crm"),
                telemetry_url=pg.url("telemetry"),
                clickhouse_url="chdb://" + str(data_dir / "clickhouse"),
            )
            with _ImportDisplay() as display:
                result = api.import_olap_data(start, end, config=config, on_progress=display)
        finally:
            if not keep_postgres:
                pg.stop()
    except Exception as exc:
        _fail(exc, config, verbose)
    _show_result(result, as_json)
    default_dir = data_dir == Path(DEFAULT_DATA_DIR).resolve()
    ch = "" if default_dir else f" --clickhouse-url chdb://{data_dir / 'clickhouse'}"
    _hint("\nNext:")
    _hint(f"  uv run olapsync status{ch}            # tables, partitions, runs")
    _hint(f"  uv run olapsync examples{ch}          # the seed's eight example queries")
    if default_dir:
        _hint("  uv run python -m reports          # POST /report on 127.0.0.1:3003")
    _hint(
        "  uv run olapsync demo --telemetry-start-ts 2026-01-01 --telemetry-end-ts 2026-02-01"
        "   # rerun one month"
    )
    if keep_postgres:
        _hint("  PostgreSQL is still running; for `olapsync import` set:")
        _hint(f"    export OLAPSYNC_CRM_URL={pg.url('crm')}")
        _hint(f"    export OLAPSYNC_TELEMETRY_URL={pg.url('telemetry')}")
        as_user = f"runuser -u {pg.user} -- " if pg.user else ""
        _hint(f"  stop it with: {as_user}{pg.bin / 'pg_ctl'} -D {pg.data_dir} stop")
    _hint(
        "  Query from Python: clickhouse_connect.get_client(dsn="
        f"'chdb://{data_dir / 'clickhouse'}').query('SELECT count() FROM olap.telemetry_events')"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
