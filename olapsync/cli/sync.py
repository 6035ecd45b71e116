"""`olapsync sync` and `olapsync verify`: the commands a scheduler runs to keep ClickHouse in
step with PostgreSQL, and to prove it is (issue 17). `commands` adds them to the group."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import click

from olapsync import api
from olapsync.cli import render
from olapsync.cli.exits import ExitStatus
from olapsync.cli.exits import describe as describe_exits
from olapsync.cli.group import LAG, CliState, F, connection_options, run_options
from olapsync.cli.live import ImportDisplay
from olapsync.results import SyncPlan
from olapsync.specs import telemetry_spec
from olapsync.verify import verify as verify_target

_SYNC_EXITS = describe_exits(ExitStatus.OK, ExitStatus.FAILURE, ExitStatus.USAGE, ExitStatus.LOCKED)
_VERIFY_EXITS = describe_exits(*ExitStatus)


def _lag_option(help_text: str) -> Callable[[F], F]:
    return click.option("--lag", type=LAG, default="15m", show_default=True, help=help_text)


@click.command(
    name="sync",
    help=f"""Bring ClickHouse up to date with what changed in PostgreSQL: the command for cron.

    One atomic run with an import's guarantees (users reloaded, events of users gone removed,
    staging, EXCHANGE, the ledger) that rebuilds only the months that need it:

    \b
    - months holding rows saved since the last run (saved_ts >= its
      watermark minus --lag): new rows, and late rows of old months; a month
      whose new rows all have new ids gets them appended, not read again;
    - months where such a row changed or moved, and months of users who
      came back;
    - with --verify, also every month whose fingerprint changed since its
      last load: updates and deletes that left saved_ts alone.

    Plain sync costs what changed (one query for the rows saved since the watermark, which
    an index on saved_ts serves); --verify adds one pass over the source table and the
    ClickHouse table. The first sync on an empty target is a full import. --dry-run prints
    what the sync would do, as the sync reports it: each month it would rebuild, append to
    or clean of the events of users gone, why, and its rows; and whether PostgreSQL will
    use an index or scan the table.

    \b
    Examples:
      olapsync sync                  # every 15 minutes, from cron or a timer
      olapsync sync --dry-run        # what it would do and why; changes nothing
      olapsync sync --verify --json  # nightly: updates and deletes too

    {_SYNC_EXITS} docs/operations.md has a cron line and a systemd timer.
    """,
)
@_lag_option(
    "Read again the rows saved this long before the last run's watermark, for transactions "
    "that commit late: 15m, 90s, 1h30m, 0."
)
@click.option(
    "--verify",
    is_flag=True,
    help="Also rebuild the months whose fingerprints changed since their last load "
    "(one pass over both tables).",
)
@click.option(
    "--dry-run", is_flag=True, help="Print each month it would change and why; change nothing."
)
@run_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@connection_options
def sync(
    state: CliState,
    lag: timedelta,
    verify: bool,
    dry_run: bool,
    allow_shrink: bool,
    max_rejected_ratio: float,
    as_json: bool,
) -> None:
    config = state.config()
    if dry_run:
        plan = api.sync(config, lag=lag, verify=verify, dry_run=True)
        spec = telemetry_spec()

        def printer(p: SyncPlan) -> None:
            render.print_sync_plan(
                p, source_table=spec.source_table, watermark_column=spec.watermark or ""
            )

        render.show(plan, printer, as_json=as_json)
        return
    with ImportDisplay() as display:
        result = api.sync(
            config,
            lag=lag,
            verify=verify,
            allow_shrink=allow_shrink,
            max_rejected_ratio=max_rejected_ratio,
            on_progress=display,
        )
    render.show(result, render.print_result, as_json=as_json)


@click.command(
    name="verify",
    help=f"""Check, month by month, that ClickHouse still holds what PostgreSQL holds: for
    monitoring.

    For every month of the events, and for the users as a whole, it compares the source
    fingerprint now with the one recorded when the month was last loaded ("changed in
    source": updates and deletes that left saved_ts alone, rows moved to another month) and
    ClickHouse's now with what that load wrote ("changed in ClickHouse": a partition altered
    behind olapsync's back). A month on one side only, with no load recorded, is "missing";
    a month a window import loaded only in part is "unverified". It reads only: one pass
    over each source table and each ClickHouse table. While a run holds the lock it exits 75.

    --repair then runs a sync that rebuilds the drifted months (and takes in whatever new
    rows arrived), and exits 0 when that run succeeds: the table shows what had drifted, the
    run's result what was rebuilt. Run verify again to see every month ok.

    \b
    Examples:
      olapsync verify                # hourly, from a timer: exit 3 alerts
      olapsync verify --json         # for a monitoring system
      olapsync verify --repair       # rebuild what drifted

    {_VERIFY_EXITS}
    """,
)
@_lag_option("With --repair: the sync's --lag (see `olapsync sync -h`).")
@click.option(
    "--repair", is_flag=True, help="Rebuild the drifted months with a sync; exit 0 if it succeeds."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@connection_options
def verify(state: CliState, lag: timedelta, repair: bool, as_json: bool) -> None:
    config = state.config()
    with ImportDisplay() as display:
        # `verify` takes the lag as text; parse_lag gives whole seconds.
        report = verify_target(
            config, repair=repair, lag=f"{int(lag.total_seconds())}s", on_progress=display
        )
    render.show(report, render.print_verify, as_json=as_json)
    if not report.ok and report.repaired is None:
        click.get_current_context().exit(ExitStatus.DRIFT)
