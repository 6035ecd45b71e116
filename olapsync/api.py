"""The notebook API: `import_olap_data` (the seed's entry point), `plan_import`, `init` and
`status`. Each takes its settings as `config=` (default: `Config.from_env()`);
`import_olap_data` also takes the seed's URL keywords.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Literal, overload

from olapsync.clickhouse import open_target
from olapsync.config import Config
from olapsync.delta import parse_lag
from olapsync.importer import run, run_import
from olapsync.ledger import RUNS, read_runs
from olapsync.plan import build_plan, existing_tables
from olapsync.progress import ProgressCallback
from olapsync.results import ImportPlan, ImportResult, Status, SyncPlan
from olapsync.schema import ensure_schema
from olapsync.specs import DEFAULT_PROSTHESIS_TYPES, USERS, telemetry_spec
from olapsync.sync import dry_run as dry_run_sync
from olapsync.sync import planner
from olapsync.window import TimeBound, import_window


@overload
def import_olap_data(
    telemetry_start_ts: TimeBound | None = None,
    telemetry_end_ts: TimeBound | None = None,
    *,
    crm_url: str | None = None,
    telemetry_url: str | None = None,
    clickhouse_url: str | None = None,
    database: str | None = None,
    config: Config | None = None,
    dry_run: Literal[False] = False,
    allow_shrink: bool = False,
    max_rejected_ratio: float = 0.01,
    prosthesis_types: tuple[str, ...] = DEFAULT_PROSTHESIS_TYPES,
    on_progress: ProgressCallback | None = None,
) -> ImportResult: ...


@overload
def import_olap_data(
    telemetry_start_ts: TimeBound | None = None,
    telemetry_end_ts: TimeBound | None = None,
    *,
    crm_url: str | None = None,
    telemetry_url: str | None = None,
    clickhouse_url: str | None = None,
    database: str | None = None,
    config: Config | None = None,
    dry_run: Literal[True],
    allow_shrink: bool = False,
    max_rejected_ratio: float = 0.01,
    prosthesis_types: tuple[str, ...] = DEFAULT_PROSTHESIS_TYPES,
    on_progress: ProgressCallback | None = None,
) -> ImportPlan: ...


def import_olap_data(
    telemetry_start_ts: TimeBound | None = None,
    telemetry_end_ts: TimeBound | None = None,
    *,
    crm_url: str | None = None,
    telemetry_url: str | None = None,
    clickhouse_url: str | None = None,
    database: str | None = None,
    config: Config | None = None,
    dry_run: bool = False,
    allow_shrink: bool = False,
    max_rejected_ratio: float = 0.01,
    prosthesis_types: tuple[str, ...] = DEFAULT_PROSTHESIS_TYPES,
    on_progress: ProgressCallback | None = None,
) -> ImportResult | ImportPlan:
    """Import users and a telemetry window from PostgreSQL into ClickHouse, atomically.

    Args:
        telemetry_start_ts: first event time to replace (inclusive); None: from the start.
        telemetry_end_ts: event time the window ends before (exclusive); None: to the end.
            Each is a datetime (naive = UTC), a date (midnight UTC) or text as the CLI takes
            it: "2026-01-01", the seed's "2026-01-01 00:00:00", ISO-8601 with `Z` or an
            offset (`olapsync.window.as_utc`).
        crm_url, telemetry_url, clickhouse_url, database: the seed's keywords; each one
            given overrides `config` (else `OLAPSYNC_*` variables, else the defaults).
        config: the settings (`Config`); default `Config.from_env()`.
        dry_run: only work out the plan and return it (an `ImportPlan`, as `plan_import`
            does); change nothing.
        allow_shrink: accept a users table less than half its current size.
        max_rejected_ratio: fail, publishing nothing, when more than this share of the
            table's source rows would be rejected (0.01: 1%): the rows the run reads, and for
            the months it does not read, the rows their last load found.
        prosthesis_types: accepted `prosthesis_type` values.
        on_progress: called with a `ProgressEvent` at every step.

    Returns:
        `ImportResult`, or `ImportPlan` with `dry_run=True`.

    Raises:
        ConfigError: a bound is not a time, the start is after the end, or the window is
            empty; raised before anything is opened or recorded.
        SourceError, TargetError, DataError: see `olapsync.errors`;
        RunLockedError (a `TargetError`): another run holds the target.

    Example:
        >>> from datetime import datetime
        >>> from olapsync import import_olap_data
        >>> result = import_olap_data(datetime(2026, 1, 1), datetime(2026, 2, 1))  # doctest: +SKIP
        >>> result.partitions_replaced  # doctest: +SKIP
        ['202601']
        >>> import_olap_data("2026-01-01", "2026-02-01")  # the same  # doctest: +SKIP
    """
    window = import_window(telemetry_start_ts, telemetry_end_ts)
    urls = {
        "crm_url": crm_url,
        "telemetry_url": telemetry_url,
        "clickhouse_url": clickhouse_url,
        "database": database,
    }
    given = {k: v for k, v in urls.items() if v is not None}
    cfg = Config.from_env(None, **given) if config is None else config.with_(**given)
    if dry_run:
        return plan_import(
            telemetry_start_ts,
            telemetry_end_ts,
            config=cfg,
            allow_shrink=allow_shrink,
            prosthesis_types=prosthesis_types,
        )
    with open_target(cfg) as target:
        return run_import(
            target,
            cfg,
            telemetry_spec(tuple(prosthesis_types)),
            window,
            allow_shrink=allow_shrink,
            max_rejected_ratio=max_rejected_ratio,
            on_progress=on_progress,
        )


def plan_import(
    telemetry_start_ts: TimeBound | None = None,
    telemetry_end_ts: TimeBound | None = None,
    *,
    config: Config | None = None,
    allow_shrink: bool = False,
    prosthesis_types: tuple[str, ...] = DEFAULT_PROSTHESIS_TYPES,
) -> ImportPlan:
    """What `import_olap_data` would do with the same arguments; changes nothing.

    Reads the sources' row counts per month and user ids, and the target's partitions and
    users, without creating the database, a table or the chDB folder. The bounds take the
    forms `import_olap_data`'s do.

    Raises:
        ConfigError: as for `import_olap_data` (a bad or reversed bound, before any read).
        SourceError, TargetError: see `olapsync.errors`.
    """
    window = import_window(telemetry_start_ts, telemetry_end_ts)
    return build_plan(
        config or Config.from_env(),
        window,
        telemetry_spec(tuple(prosthesis_types)),
        allow_shrink=allow_shrink,
    )


def init(config: Config | None = None) -> list[str]:
    """Create the database and every table olapsync needs; return the tables created.

    Idempotent: tables that exist are left as they are (older ones get current settings).

    Raises:
        ConfigError, TargetError: see `olapsync.errors`.
    """
    with open_target(config or Config.from_env()) as target:
        return ensure_schema(target, [USERS, telemetry_spec()])


def status(config: Config | None = None, *, last_runs: int = 5) -> Status:
    """What the target holds now: row counts per table and per partition of the events
    table, and the `last_runs` latest runs. Only reads: creates neither the database nor
    the chDB folder (a read-only ClickHouse user will do); a database not created yet has
    no tables.

    Raises:
        ConfigError, TargetError: see `olapsync.errors`; TargetError too when the chDB
            folder does not exist.
    """
    cfg = config or Config.from_env()
    spec = telemetry_spec()
    with open_target(cfg, create_database=False) as target:
        existing = existing_tables(target)
        tables = {
            name: target.count(name)
            for name in sorted(existing)
            if not name.startswith("olapsync_lock")
        }
        parts = target.partitions(spec.name) if spec.name in existing else {}
        runs = read_runs(target, last_runs) if RUNS in existing else []
        # Rows written before errors were scrubbed may hold a password.
        runs = [replace(run, error=cfg.scrub(run.error)) for run in runs]
    return Status(target.url, cfg.database, tables, parts, runs)


@overload
def sync(
    config: Config | None = None,
    *,
    lag: str | timedelta = "15m",
    verify: bool = False,
    dry_run: Literal[False] = False,
    allow_shrink: bool = False,
    max_rejected_ratio: float = 0.01,
    prosthesis_types: tuple[str, ...] = DEFAULT_PROSTHESIS_TYPES,
    on_progress: ProgressCallback | None = None,
) -> ImportResult: ...


@overload
def sync(
    config: Config | None = None,
    *,
    lag: str | timedelta = "15m",
    verify: bool = False,
    dry_run: Literal[True],
    allow_shrink: bool = False,
    max_rejected_ratio: float = 0.01,
    prosthesis_types: tuple[str, ...] = DEFAULT_PROSTHESIS_TYPES,
    on_progress: ProgressCallback | None = None,
) -> SyncPlan: ...


def sync(
    config: Config | None = None,
    *,
    lag: str | timedelta = "15m",
    verify: bool = False,
    dry_run: bool = False,
    allow_shrink: bool = False,
    max_rejected_ratio: float = 0.01,
    prosthesis_types: tuple[str, ...] = DEFAULT_PROSTHESIS_TYPES,
    on_progress: ProgressCallback | None = None,
) -> ImportResult | SyncPlan:
    """Bring ClickHouse up to date with what changed since the last run: the command for cron.

    Rebuilds exactly the months that need it, in one atomic run with an import's guarantees
    (users reloaded, orphans removed, staging, EXCHANGE, ledger): the months holding rows
    saved since the last run's watermark minus `lag` (new and late rows; a month whose new
    rows are all inserts gets them appended without being read again), months whose
    orphaned users came back, and, with `verify`, every month whose fingerprints show a
    change since its last load. The first sync on an empty target is a full import.

    Args:
        config: the settings (`Config`); default `Config.from_env()`.
        lag: how far before the watermark to read again, for transactions that commit
            after rows saved later became visible: "15m", "90s", "0", or a timedelta.
        verify: also rebuild the months `olapsync.verify` finds drifted (one aggregate pass
            over the source and the target).
        dry_run: only work out what it would do and return it (a `SyncPlan`): each month
            and why, and whether PostgreSQL finds the new rows through an index.
        allow_shrink, max_rejected_ratio, prosthesis_types, on_progress: as for
            `import_olap_data`.

    Returns:
        `ImportResult`: `months` says which months changed and why (a `SyncPlan` with
        `dry_run=True`).

    Raises:
        RunLockedError: another run holds the target (the CLI exits 75).
        ConfigError, SourceError, TargetError, DataError: see `olapsync.errors`.

    Example:
        >>> from olapsync import sync
        >>> sync(lag="15m").months  # doctest: +SKIP
        {'202604': ['new rows'], '202601': ['late rows']}
    """
    cfg = config or Config.from_env()
    delay = lag if isinstance(lag, timedelta) else parse_lag(lag)
    spec = telemetry_spec(tuple(prosthesis_types))
    if dry_run:
        return dry_run_sync(cfg, spec, lag=delay, verify=verify)
    with open_target(cfg) as target:
        return run(
            target,
            cfg,
            spec,
            planner(lag=delay, verify=verify),
            kind="sync",
            allow_shrink=allow_shrink,
            max_rejected_ratio=max_rejected_ratio,
            on_progress=on_progress,
        )
