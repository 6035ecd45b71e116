"""A dry run: what an import would do, worked out from the sources and the target without
changing either (no database, table or chDB folder is created).
"""

from __future__ import annotations

import os

import polars as pl

from olapsync import statements
from olapsync.clickhouse import Target, open_target
from olapsync.config import Config
from olapsync.ledger import RUNS, published_runs
from olapsync.partitions import PARTITIONS, latest_records
from olapsync.pg import check_connection
from olapsync.results import ImportPlan
from olapsync.scope import Scope
from olapsync.source import (
    count_by_month,
    read_arrow,
    read_table,
    rows_per_parent,
    window_condition,
)
from olapsync.specs import USERS, TableSpec, quote_ident
from olapsync.validate import validate
from olapsync.window import Window, plan_partitions

# Parents named in one read of their rows (an IN list), when counting the rows to skip.
_PARENTS_PER_READ = 5000


def existing_tables(target: Target) -> set[str]:
    """The target database's tables; empty when the database does not exist."""
    exists = target.fetch_scalar(statements.database_exists(target.database))
    return target.tables() if exists else set()


def build_plan(
    config: Config, window: Window, spec: TableSpec, *, allow_shrink: bool = False
) -> ImportPlan:
    """Work out an import's plan; see `olapsync.plan_import`."""
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

    skipped = source_orphans(config, spec, window, user_ids)
    target_parts: dict[str, int] = {}
    reread: dict[str, tuple[str, ...]] = {}
    users_current = 0
    removed = 0
    missing = [USERS.name, USERS.staging, spec.name, spec.staging, spec.rejected, RUNS]
    chdb = config.chdb_path
    if chdb is None or os.path.isdir(chdb):
        with open_target(config, create_database=False) as target:
            existing = existing_tables(target)
            missing = [m for m in missing if m not in existing]
            if spec.name in existing:
                target_parts = target.partitions(spec.name)
                removed = target_orphans(target, spec, window, user_ids)
            if {spec.name, PARTITIONS, RUNS} <= existing:
                # Months the run rereads whole besides the window (olapsync.repeats).
                records = latest_records(target, spec.name, published_runs(target, spec.name))
                parents = frozenset(int(u) for u in user_ids.to_list())
                reread = dict(Scope.of_window(window, records, parents).months)
            if USERS.name in existing:
                users_current = target.count(USERS.name)
    plan = plan_partitions(window, set(target_parts), set(source_rows))
    return ImportPlan(
        window=window,
        source_rows_per_partition=source_rows,
        source_rows_unusable_time=unusable,
        partitions_to_replace=sorted(set(plan.replace) | set(reread)),
        partitions_to_drop=[p for p in plan.drop if p not in plan.edge and p not in reread],
        edge_partitions=[p for p in plan.edge if p not in reread],
        months_reread={m: list(why) for m, why in sorted(reread.items())},
        users_source=user_ids.len(),
        users_current=users_current,
        users_shrink_blocked=bool(
            users_current and user_ids.len() < users_current / 2 and not allow_shrink
        ),
        events_skipped_orphans=skipped,
        orphans_removed=removed,
        tables_to_create=missing,
    )


def source_orphans(config: Config, spec: TableSpec, window: Window, parents: pl.Series) -> int:
    """The window's source rows the import would skip as orphans (its
    `events_skipped_orphans`): rows whose parent is not in `parents` and that validation
    accepts otherwise. Only the rows of the parents gone are read, and validated as the
    import validates them (`olapsync.validate`)."""
    if spec.parent is None:
        return 0
    known = set(parents.cast(pl.Int64).to_list())
    gone = sorted(
        p
        for p in rows_per_parent(config.telemetry_url, spec, window)
        if p is not None and p not in known
    )
    column = spec.column(spec.parent[1]).source_ident
    where = window_condition(spec, window)
    skipped = 0
    for i in range(0, len(gone), _PARENTS_PER_READ):
        # Integers read back from the source, rendered by int(): connectorx binds nothing.
        ids = ", ".join(str(int(p)) for p in gone[i : i + _PARENTS_PER_READ])
        condition = " AND ".join(c for c in (where, f"{column} IN ({ids})") if c)
        for batch in read_table(
            config.telemetry_url,
            spec,
            condition,
            batch_size=config.batch_size,
            what=f"read the {spec.source_table} rows of users gone",
        ):
            skipped += validate(batch, spec, parents).orphans
    return skipped


def target_orphans(target: Target, spec: TableSpec, window: Window, parents: pl.Series) -> int:
    """The target's events the import would remove as orphans (its `orphans_removed`):
    those outside the window (months kept, and edge months' rows kept) whose parent is not
    in `parents`; the window's own rows are replaced from the source."""
    if spec.parent is None or spec.time_column is None or window.is_full:
        return 0
    per_parent = target.fetch(
        statements.rows_per_parent(
            target.database, spec.name, spec.parent[1], outside=(spec.time_column, window)
        )
    )
    known = set(parents.cast(pl.Int64).to_list())
    return sum(int(n) for p, n in per_parent if p not in known)
