"""A dry run: what an import would do, worked out from the sources and the target without
changing either (no database, table or chDB folder is created).
"""

from __future__ import annotations

import os

import polars as pl

from olapsync import statements
from olapsync.clickhouse import Target, open_target
from olapsync.config import Config
from olapsync.ledger import RUNS
from olapsync.pg import check_connection
from olapsync.results import ImportPlan
from olapsync.source import count_by_month, read_arrow
from olapsync.specs import USERS, TableSpec, quote_ident
from olapsync.window import Window, plan_partitions


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

    target_parts: dict[str, int] = {}
    users_current = 0
    orphans = 0
    missing = [USERS.name, USERS.staging, spec.name, spec.staging, spec.rejected, RUNS]
    chdb = config.chdb_path
    if chdb is None or os.path.isdir(chdb):
        with open_target(config, create_database=False) as target:
            existing = existing_tables(target)
            missing = [m for m in missing if m not in existing]
            if spec.name in existing:
                target_parts = target.partitions(spec.name)
                parent = spec.parent[1] if spec.parent else spec.key
                per_user = target.fetch(
                    statements.rows_per_parent(target.database, spec.name, parent)
                )
                known = set(user_ids.to_list())
                orphans = sum(int(n) for u, n in per_user if u not in known)
            if USERS.name in existing:
                users_current = target.count(USERS.name)
    plan = plan_partitions(window, set(target_parts), set(source_rows))
    return ImportPlan(
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
