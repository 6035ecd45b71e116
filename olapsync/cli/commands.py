"""The commands: each parses its options, calls the function a notebook would call, and
prints what it returns. Errors are left to the group (`olapsync.cli.group`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from olapsync import api
from olapsync.cli import render
from olapsync.cli.exits import describe as describe_exits
from olapsync.cli.group import (
    TS,
    CliState,
    F,
    OlapsyncGroup,
    connection_options,
    run_options,
    verbose_option,
)
from olapsync.cli.live import ImportDisplay
from olapsync.cli.sync import sync, verify
from olapsync.config import DEFAULT_DATA_DIR
from olapsync.queries import Reports, user_report
from olapsync.service import OPTIONS
from olapsync.window import import_window


@click.group(
    cls=OlapsyncGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help=f"""Move CRM users and telemetry events from PostgreSQL into ClickHouse, atomically.

    Start with `olapsync demo`: it needs nothing installed. Against real servers set
    OLAPSYNC_CRM_URL, OLAPSYNC_TELEMETRY_URL and OLAPSYNC_CLICKHOUSE_URL (or pass the options)
    and run `olapsync import`; on a schedule, `olapsync sync`, and `olapsync verify` to
    check.

    {describe_exits()}
    """,
)
@click.version_option(package_name="olapsync")
def main() -> None:
    pass


main.add_command(sync)
main.add_command(verify)


@main.command()
@connection_options
def init(state: CliState) -> None:
    """Create the ClickHouse database and tables (idempotent)."""
    created = api.init(state.config())
    render.out_console.print(
        f"Created: {', '.join(created)}" if created else "Everything already exists."
    )


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
@run_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@connection_options
def import_(
    state: CliState,
    start: datetime | None,
    end: datetime | None,
    dry_run: bool,
    allow_shrink: bool,
    max_rejected_ratio: float,
    as_json: bool,
) -> None:
    """Import users (full reload) and the telemetry window [START, END) into ClickHouse.

    Without a window every partition is replaced and partitions the source no longer has are
    dropped. With one, only the months it touches are rebuilt; rows of those months outside
    the window are kept. Readers see each table entirely old or entirely new.
    """
    config = state.config()
    if dry_run:
        plan = api.plan_import(start, end, config=config, allow_shrink=allow_shrink)
        render.show(plan, render.print_plan, as_json=as_json)
        return
    with ImportDisplay() as display:
        result = api.import_olap_data(
            start,
            end,
            config=config,
            allow_shrink=allow_shrink,
            max_rejected_ratio=max_rejected_ratio,
            on_progress=display,
        )
    render.show(result, render.print_result, as_json=as_json)


@main.command()
@click.option("--runs", default=5, show_default=True, help="How many recent runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON on stdout.")
@connection_options
def status(state: CliState, runs: int, as_json: bool) -> None:
    """Show the tables, their row counts and partitions, and the last runs."""
    render.show(api.status(state.config(), last_runs=runs), render.print_status, as_json=as_json)


@main.command()
@click.argument("user_id", type=click.IntRange(-(2**31), 2**31 - 1))
@click.option("--start-ts", "start", type=TS, help="From this time on (inclusive).")
@click.option("--end-ts", "end", type=TS, help="Up to this time (inclusive).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (as POST /report).")
@connection_options
def report(
    state: CliState, user_id: int, start: datetime | None, end: datetime | None, as_json: bool
) -> None:
    """One user's events per prosthesis type, start_ts <= event_timestamp <= end_ts."""
    result = user_report(user_id, start, end, config=state.config())
    render.show(result, render.print_report, as_json=as_json)


@main.command()
@click.option("--user-id", default=1, show_default=True, help="The user of examples 3 and 6.")
@click.option("--top", default=10, show_default=True, help="How many users example 7 lists.")
@click.option("--json", "as_json", is_flag=True, help="Print all results as JSON.")
@connection_options
def examples(state: CliState, user_id: int, top: int, as_json: bool) -> None:
    """Run the seed's eight example queries and print them as tables."""
    with Reports(state.config()) as reports:
        results = reports.examples(user_id=user_id, top=top)
    if as_json:
        render.print_json({title: frame.to_dicts() for title, frame in results.items()})
        return
    for title, frame in results.items():
        render.print_frame(title, frame)


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
@verbose_option
def demo(
    users: int,
    events: int,
    data_dir: Path,
    start: datetime | None,
    end: datetime | None,
    keep_postgres: bool,
    as_json: bool,
) -> None:
    """Run the whole job on generated data: nothing to install or configure.

    Starts an embedded PostgreSQL under DATA_DIR/postgres with `crm` and `telemetry`
    databases of seed-shaped data (a few bad rows and orphans included), imports them into
    the embedded ClickHouse under DATA_DIR/clickhouse and prints the summary.

    The data is generated once and kept. A later run with the same --users and --events
    reuses it as it is, your edits included (it says so when the row counts changed), so
    an edit shows in the next import. Other sizes replace it: the run first says, in one
    line, what the folder held and that it is generating the data again.
    """
    from olapsync.demo import run_demo

    data_dir = data_dir.resolve()
    with ImportDisplay() as display:
        done = run_demo(
            data_dir,
            users=users,
            events=events,
            window=import_window(start, end),
            keep_postgres=keep_postgres,
            on_progress=display,
        )
    render.show(done.result, render.print_result, as_json=as_json)
    folder = data_dir / "clickhouse"
    default_dir = data_dir == Path(DEFAULT_DATA_DIR).resolve()
    ch = "" if default_dir else f" --clickhouse-url chdb://{folder}"
    render.hint("\nNext:")
    render.hint(f"  uv run olapsync status{ch}            # tables, partitions, runs")
    render.hint(f"  uv run olapsync examples{ch}          # the seed's eight example queries")
    if default_dir:
        render.hint("  uv run olapsync serve              # POST /report on 127.0.0.1:3003")
    render.hint(
        "  uv run olapsync demo --telemetry-start-ts 2026-01-01 --telemetry-end-ts 2026-02-01"
        "   # rerun one month"
    )
    if keep_postgres:
        pg = done.source.server
        render.hint("  PostgreSQL is still running; for `olapsync import` set:")
        render.hint(f"    export OLAPSYNC_CRM_URL={done.source.crm_url}")
        render.hint(f"    export OLAPSYNC_TELEMETRY_URL={done.source.telemetry_url}")
        as_user = f"runuser -u {pg.user} -- " if pg.user else ""
        render.hint(f"  stop it with: {as_user}{pg.bin / 'pg_ctl'} -D {pg.data_dir} stop")
    render.hint(
        "  Query from Python: clickhouse_connect.get_client(dsn="
        f"'chdb://{folder}').query('SELECT count() FROM olap.telemetry_events')"
    )


def _service_options(func: F) -> F:
    """The service's options (`olapsync.service.OPTIONS`), as `python -m reports` has them."""
    kinds: dict[str, Any] = {"int": int, "float": float, "str": str, "list": str}
    for option in reversed(OPTIONS):
        text = (
            option.help[0].upper()
            + option.help[1:]
            + (f" [env {option.env}]" if option.env else "")
        )
        if option.kind == "flag":
            func = click.option(option.flag, option.field, is_flag=True, default=None, help=text)(
                func
            )
        else:
            func = click.option(
                option.flag, option.field, type=kinds[option.kind], default=None, help=text
            )(func)
    return func


@main.command()
@_service_options
@verbose_option
def serve(**options: Any) -> None:
    """Serve POST /report, GET /me/report, /health, /metrics and /openapi.json.

    ClickHouse is OLAPSYNC_CLICKHOUSE_URL and OLAPSYNC_CLICKHOUSE_DATABASE, as for every
    command. Without an OIDC issuer (--oidc-issuer, --oidc-audience) the service binds only
    to a loopback address; docs/service.md shows a Keycloak set-up. Needs the `service`
    extra (`uv run` installs it). The same as `python -m reports`.
    """
    from olapsync.service import serve as run_service

    if isinstance(options.get("cors_origins"), str):
        options["cors_origins"] = [
            o.strip() for o in options["cors_origins"].split(",") if o.strip()
        ]
    run_service(**options)
