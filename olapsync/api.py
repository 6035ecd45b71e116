"""The notebook API: `import_olap_data` (the seed's entry point), `plan_import` and
`status`."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from olapsync.clickhouse import Target, open_target
from olapsync.config import Config
from olapsync.importer import ImportResult, run_import
from olapsync.progress import ProgressCallback
from olapsync.schema import RUNS, ensure_schema
from olapsync.source import check_connection, count_by_month, read_arrow
from olapsync.specs import (
    DEFAULT_PROSTHESIS_TYPES,
    USERS,
    TableSpec,
    quote_ident,
    telemetry_spec,
)
from olapsync.window import Window, plan_partitions


def _config(config: Config | None, **overrides: Any) -> Config:
    if config is not None:
        return config.with_(**{k: v for k, v in overrides.items() if v is not None})
    return Config.from_env(**overrides)


def import_olap_data(
    telemetry_start_ts: datetime | None = None,
    telemetry_end_ts: datetime | None = None,
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
            Naive datetimes are UTC.
        crm_url, telemetry_url, clickhouse_url, database: override the configuration
            (else `OLAPSYNC_*` variables, else the defaults).
        config: a ready `Config` instead of the above.
        dry_run: only work out and return the plan (`ImportPlan`); change nothing.
        allow_shrink: accept a users table less than half its current size.
        max_rejected_ratio: fail, publishing nothing, when more of the window's rows than
            this are rejected.
        prosthesis_types: accepted `prosthesis_type` values.
        on_progress: called with a `ProgressEvent` at every step.

    Returns:
        `ImportResult` (or `ImportPlan` with `dry_run=True`).

    Raises:
        ConfigError, SourceError, TargetError, DataError: see `olapsync.errors`.

    Example:
        >>> from datetime import datetime
        >>> from olapsync import import_olap_data
        >>> result = import_olap_data(datetime(2026, 1, 1), datetime(2026, 2, 1))  # doctest: +SKIP
        >>> result.partitions_replaced  # doctest: +SKIP
        ['202601']
    """
    cfg = _config(
        config,
        crm_url=crm_url,
        telemetry_url=telemetry_url,
        clickhouse_url=clickhouse_url,
        database=database,
    )
    window = Window(telemetry_start_ts, telemetry_end_ts)
    spec = telemetry_spec(tuple(prosthesis_types))
    if dry_run:
        return plan_import(cfg, window, spec, allow_shrink=allow_shrink)
    with open_target(cfg) as target:
        return run_import(
            target,
            cfg,
            spec,
            window,
            allow_shrink=allow_shrink,
            max_rejected_ratio=max_rejected_ratio,
            on_progress=on_progress,
        )


@dataclass
class ImportPlan:
    """What an import would do; `import_olap_data(..., dry_run=True)` returns it."""

    status: str
    window: Window
    source_rows_per_partition: dict[str, int]
    source_rows_unusable_time: int
    partitions_to_replace: list[str]
    partitions_to_drop: list[str]
    edge_partitions: list[str]
    users_source: int
    users_current: int
    users_shrink_blocked: bool
    orphans_in_target: int
    tables_to_create: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["window"] = {"start": _iso(self.window.start), "end": _iso(self.window.end)}
        return out


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def plan_import(
    config: Config, window: Window, spec: TableSpec, *, allow_shrink: bool = False
) -> ImportPlan:
    """Work out an import's plan from the sources and the target; change nothing."""
    for url in dict.fromkeys((config.crm_url, config.telemetry_url)):
        check_connection(url)
    by_month = count_by_month(config.telemetry_url, spec, window)
    unusable = by_month.pop(None, 0)
    source_rows = {str(k): v for k, v in sorted(by_month.items())}
    users = read_arrow(
        config.crm_url,
        f"SELECT {quote_ident(USERS.key)} FROM {quote_ident(USERS.source_table)}",
        what="read user ids",
    )
    user_ids = pl.from_arrow(users.column(0))
    assert isinstance(user_ids, pl.Series)

    target_parts: dict[str, int] = {}
    users_current = 0
    orphans = 0
    missing = [USERS.name, USERS.staging, spec.name, spec.staging, spec.rejected, RUNS]
    chdb = config.chdb_path
    if chdb is None or os.path.isdir(chdb):
        with open_target(config, create_database=False) as target:
            existing = _existing_tables(target)
            missing = [m for m in missing if m not in existing]
            if spec.name in existing:
                target_parts = target.partitions(spec.name)
                per_user = target.rows(
                    f"SELECT {spec.parent[1] if spec.parent else spec.key}, count() "
                    f"FROM {target.t(spec.name)} GROUP BY 1"
                )
                known = set(user_ids.to_list())
                orphans = sum(int(n) for u, n in per_user if u not in known)
            if USERS.name in existing:
                users_current = target.count(USERS.name)
    plan = plan_partitions(window, set(target_parts), set(source_rows))
    return ImportPlan(
        status="dry-run",
        window=window,
        source_rows_per_partition=source_rows,
        source_rows_unusable_time=unusable,
        partitions_to_replace=list(plan.replace),
        partitions_to_drop=[p for p in plan.drop if p not in plan.edge],
        edge_partitions=list(plan.edge),
        users_source=user_ids.len(),
        users_current=users_current,
        users_shrink_blocked=bool(
            users_current and user_ids.len() < users_current / 2 and not allow_shrink
        ),
        orphans_in_target=orphans,
        tables_to_create=missing,
    )


def _existing_tables(target: Target) -> set[str]:
    exists = target.scalar(
        "SELECT count() FROM system.databases WHERE name = {db:String}", {"db": target.database}
    )
    return target.tables() if exists else set()


def init(config: Config | None = None, **overrides: Any) -> list[str]:
    """Create the database and every table olapsync needs; return the tables created."""
    cfg = _config(config, **overrides)
    with open_target(cfg) as target:
        return ensure_schema(target, [USERS, telemetry_spec()])


@dataclass
class Status:
    """The target's tables, their row counts, partitions and the last runs."""

    clickhouse_url: str
    database: str
    tables: dict[str, int]
    partitions: dict[str, int]
    runs: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def status(config: Config | None = None, *, last_runs: int = 5, **overrides: Any) -> Status:
    """Describe what the target holds now."""
    cfg = _config(config, **overrides)
    spec = telemetry_spec()
    with open_target(cfg, create_database=False) as target:
        existing = _existing_tables(target)
        tables = {
            name: target.count(name)
            for name in sorted(existing)
            if not name.startswith("olapsync_lock")
        }
        parts = target.partitions(spec.name) if spec.name in existing else {}
        runs: list[dict[str, Any]] = []
        if RUNS in existing:
            cols = [
                "run_id",
                "status",
                "started_at",
                "seconds",
                "users_loaded",
                "events_loaded",
                "events_rejected",
                "partitions_replaced",
                "error",
            ]
            rows = target.rows(
                f"SELECT {', '.join(cols)} FROM {target.t(RUNS)} "
                "ORDER BY started_at DESC LIMIT {n:UInt32}",
                {"n": last_runs},
            )
            runs = [dict(zip(cols, row, strict=True)) for row in rows]
            for run in runs:  # rows written before errors were scrubbed may hold a password
                run["error"] = cfg.scrub(str(run["error"]))
    return Status(target.url, cfg.database, tables, parts, runs)
