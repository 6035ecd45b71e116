"""`ensure_schema`: create whatever tables a target is missing (idempotent), with the table
settings the publish protocol relies on.
"""

from __future__ import annotations

from collections.abc import Iterable

from olapsync import statements
from olapsync.clickhouse import Target
from olapsync.ledger import ADDED_COLUMNS as RUN_COLUMNS
from olapsync.ledger import RUNS, create_ledger
from olapsync.partitions import ADDED_COLUMNS as MONTH_COLUMNS
from olapsync.partitions import PARTITIONS, create_partitions
from olapsync.specs import TableSpec

# Tables a run inserts into batch by batch keep a log of recent insert tokens, so a retried
# insert (same `insert_deduplication_token`) is dropped instead of doubling rows.
DEDUP = "non_replicated_deduplication_window = 1000"
# A run inserts a partition as many parts (one per batch that touches it), more than
# ClickHouse's usual merges bring back to one, and a report pays a fixed cost for each part it
# opens. Once every part of a partition is a minute old, ClickHouse merges the partition into
# one part in the background: after a run, on a server; with chDB, in the next process that
# holds the folder for a minute (the report service). A month still being loaded has a part
# younger than a minute, so it is merged after its load (unless its inserts come more than a
# minute apart, when it is merged twice: more work, the same rows).
# docs/performance-notes.md has what it costs and gains.
_FORCE_MERGE = {"min_age_to_force_merge_seconds": 60, "min_age_to_force_merge_on_partition_only": 1}
MERGE_AFTER_IMPORT = ", ".join(f"{k} = {v}" for k, v in _FORCE_MERGE.items())
DATA = f"{DEDUP}, {MERGE_AFTER_IMPORT}"
# Lightweight updates (ClickHouse 25.7+): a DELETE then writes small patch parts instead of
# rewriting the month, which is how a run removes a deleted user's events from the months it
# does not rebuild (`olapsync.staging.delete_rows`). Set where the server knows them.
PATCHES = "enable_block_number_column = 1, enable_block_offset_column = 1"


def supports_patches(target: Target) -> bool:
    """Whether the server has lightweight updates (patch parts, ClickHouse 25.7+)."""
    known = target.scalar(
        "SELECT count() FROM system.merge_tree_settings WHERE name = 'enable_block_number_column'",
        what="read the server's table settings",
    )
    return bool(known)


def _data_settings(target: Target) -> str:
    return f"{DATA}, {PATCHES}" if supports_patches(target) else DATA


def stop_merging_after_import(target: Target, table: str) -> None:
    """Leave `table`'s parts as they are: for the previous version of a table, which waits
    in the staging slot to be dropped by the next run and is not worth merging."""
    target.execute(statements.reset_settings(target.database, table, tuple(_FORCE_MERGE)))


def ensure_schema(target: Target, specs: Iterable[TableSpec]) -> list[str]:
    """Create the database's missing tables; return the names created.

    Raises:
        TargetError: ClickHouse refused a statement.
    """
    existing = target.tables()
    created = []
    db = target.database
    data = _data_settings(target)
    for spec in specs:
        # A MergeTree target and its staging table trade places at every run (EXCHANGE
        # TABLES), so both are made alike, settings included. An existing staging table holds
        # the previous version, which is not worth merging: it keeps its merge settings (a run
        # makes a new staging table from the target's definition).
        settings = data if spec.is_merge_tree else ""
        wanted = [
            (spec.name, spec.ddl(db, settings=settings), settings),
            (spec.staging, spec.ddl(db, spec.staging, settings=settings), settings and DEDUP),
        ]
        if spec.quarantine:
            wanted.append((spec.rejected, spec.rejected_ddl(db, settings=DEDUP), DEDUP))
        for name, ddl, alter in wanted:
            if name not in existing:
                target.command(ddl, what=f"create table {name}", table=name)
                created.append(name)
            elif alter:
                # Tables made by an older version lack some settings; setting them is idempotent.
                target.execute(statements.modify_settings(db, name, alter))
            if name in existing and spec.is_merge_tree and name != spec.rejected:
                # And the key's skip index (new parts get it; old ones as they merge).
                target.execute(statements.add_index(db, name, spec.key_index))
    if RUNS not in existing:
        target.execute(create_ledger(db))
        created.append(RUNS)
    else:
        target.execute(statements.add_columns(db, RUNS, RUN_COLUMNS))
    if PARTITIONS not in existing:
        target.execute(create_partitions(db))
        created.append(PARTITIONS)
    else:
        target.execute(statements.add_columns(db, PARTITIONS, MONTH_COLUMNS))
    return created
