"""The ClickHouse tables olapsync owns besides the data tables: the run ledger and the run
lock, and `ensure_schema`, which creates whatever is missing (idempotent).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from olapsync.clickhouse import Target
from olapsync.errors import TargetBusyError, TargetError
from olapsync.specs import TableSpec
from olapsync.window import Window, epoch

RUNS = "olapsync_runs"
LOCK = "olapsync_lock"
# ClickHouse error code for "table already exists".
TABLE_ALREADY_EXISTS = 57

RUNS_DDL = """CREATE TABLE IF NOT EXISTS {t} (
    `run_id` String,
    `status` LowCardinality(String),
    `started_at` DateTime64(3, 'UTC'),
    `finished_at` DateTime64(3, 'UTC'),
    `window_start` Nullable(DateTime('UTC')),
    `window_end` Nullable(DateTime('UTC')),
    `users_loaded` UInt64,
    `events_loaded` UInt64,
    `events_rejected` UInt64,
    `events_skipped_orphans` UInt64,
    `orphans_removed` UInt64,
    `partitions_replaced` Array(String),
    `partitions_dropped` Array(String),
    `seconds` Float64,
    `error` String
)
ENGINE = MergeTree
ORDER BY started_at"""


# Tables a run inserts into batch by batch keep a log of recent insert tokens, so a retried
# insert (same `insert_deduplication_token`) is dropped instead of doubling rows.
DEDUP = "non_replicated_deduplication_window = 1000"
# A run inserts a partition as many parts (one per batch it touches), which ClickHouse's
# usual merges leave at 4-6 per month at 20M rows; a report then pays a fixed cost per part it
# opens (p50 19.3 ms against 13.0 ms with one part per month, 20M events). Once every part of
# a partition is a minute old, ClickHouse merges the partition into one part in the
# background: after a run, on a server; with chDB, in the next process that holds the folder
# for a minute (the report service). A month still being loaded has a part younger than a
# minute, so it is merged after its load (unless its inserts come more than a minute apart,
# when it is merged twice: more work, the same rows).
_FORCE_MERGE = {"min_age_to_force_merge_seconds": 60, "min_age_to_force_merge_on_partition_only": 1}
MERGE_AFTER_IMPORT = ", ".join(f"{k} = {v}" for k, v in _FORCE_MERGE.items())
DATA = f"{DEDUP}, {MERGE_AFTER_IMPORT}"


def stop_merging_after_import(target: Target, table: str) -> None:
    """Leave `table`'s parts as they are: for the previous version of a table, which waits
    in the staging slot to be dropped by the next run and is not worth merging."""
    target.command(
        f"ALTER TABLE {target.t(table)} RESET SETTING {', '.join(_FORCE_MERGE)}",
        what=f"reset {table}'s merge settings",
        table=table,
    )


def ensure_schema(target: Target, specs: Iterable[TableSpec]) -> list[str]:
    """Create the database's missing tables; return the names created."""
    existing = target.tables()
    created = []
    db = target.database
    for spec in specs:
        # A MergeTree target and its staging table trade places at every run (EXCHANGE
        # TABLES), so both are made alike, settings included. An existing staging table holds
        # the previous version, which is not worth merging: it keeps its merge settings (a run
        # makes a new staging table from the target's definition).
        settings = DATA if spec.is_merge_tree else ""
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
                target.command(
                    f"ALTER TABLE {target.t(name)} MODIFY SETTING {alter}",
                    what=f"set {name}'s table settings",
                    table=name,
                )
    if RUNS not in existing:
        target.command(RUNS_DDL.format(t=target.t(RUNS)), what="create the run ledger", table=RUNS)
        created.append(RUNS)
    return created


@dataclass
class LedgerRow:
    run_id: str
    status: str
    started_at: datetime
    window: Window
    users_loaded: int = 0
    events_loaded: int = 0
    events_rejected: int = 0
    events_skipped_orphans: int = 0
    orphans_removed: int = 0
    partitions_replaced: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


def write_ledger(target: Target, row: LedgerRow) -> None:
    """Append one row to `olapsync_runs`: written last, so it never claims early."""
    now = datetime.now(UTC)
    bounds = [row.window.start, row.window.end]
    start, end = (None if b is None else epoch(b) for b in bounds)
    # Built with Polars: pyarrow's own constructors import pandas (about a second).
    table = pl.DataFrame(
        {
            "run_id": [row.run_id],
            "status": [row.status],
            "started_at": [row.started_at],
            "finished_at": [now],
            "window_start": pl.Series([start], dtype=pl.UInt32),
            "window_end": pl.Series([end], dtype=pl.UInt32),
            "users_loaded": pl.Series([row.users_loaded], dtype=pl.UInt64),
            "events_loaded": pl.Series([row.events_loaded], dtype=pl.UInt64),
            "events_rejected": pl.Series([row.events_rejected], dtype=pl.UInt64),
            "events_skipped_orphans": pl.Series([row.events_skipped_orphans], dtype=pl.UInt64),
            "orphans_removed": pl.Series([row.orphans_removed], dtype=pl.UInt64),
            "partitions_replaced": pl.Series([row.partitions_replaced], dtype=pl.List(pl.String)),
            "partitions_dropped": pl.Series([row.partitions_dropped], dtype=pl.List(pl.String)),
            "seconds": [row.seconds],
            "error": [row.error],
        }
    ).to_arrow()
    target.insert_arrow(RUNS, table)


class RunLock:
    """At most one run per target database at a time.

    The lock is a table: `CREATE TABLE` without `IF NOT EXISTS` succeeds for exactly one
    caller. The table holds the owner (run id, host, pid); a lock whose owner process is
    gone (same host), or whose rows vanished with a server restart (Memory engine), is
    stale and taken over by renaming it away, which again only one caller can do.
    """

    def __init__(self, target: Target, run_id: str):
        self.target = target
        self.run_id = run_id
        self.held = False

    def _create(self) -> bool:
        try:
            self.target.command(
                f"CREATE TABLE {self.target.t(LOCK)} (run_id String, host String, pid UInt32, "
                "started_at DateTime('UTC')) ENGINE = Memory",
                what="take the run lock",
                table=LOCK,
            )
        except TargetError as exc:
            if exc.code == TABLE_ALREADY_EXISTS or "already exists" in str(exc):
                return False
            raise
        self.target.insert_arrow(
            LOCK,
            pl.DataFrame(
                {
                    "run_id": [self.run_id],
                    "host": [socket.gethostname()],
                    "pid": pl.Series([os.getpid()], dtype=pl.UInt32),
                    "started_at": pl.Series([int(time.time())], dtype=pl.UInt32),
                }
            ).to_arrow(),
        )
        return True

    def _owner(self) -> tuple[str, str, int, datetime] | None:
        rows = self.target.rows(
            f"SELECT run_id, host, pid, started_at FROM {self.target.t(LOCK)} LIMIT 1",
            what="read the run lock",
            table=LOCK,
        )
        if not rows:
            return None
        run_id, host, pid, started = rows[0]
        return str(run_id), str(host), int(pid), started

    def acquire(self) -> None:
        if self._create():
            self.held = True
            return
        owner = self._owner()
        if owner is None:
            # Either the owner has not written its row yet, or a restart emptied the table.
            time.sleep(1.0)
            owner = self._owner()
        if owner is not None and not _is_stale(owner[1], owner[2]):
            run_id, host, pid, started = owner
            raise TargetBusyError(
                f"Another olapsync run ({run_id}, pid {pid} on {host}, started {started}) is "
                f"writing to database {self.target.database!r}: wait for it to finish (if it "
                f"died on another host, DROP TABLE {self.target.database}.{LOCK}).",
                table=LOCK,
            )
        # Stale: rename it away (only one taker can), then take it.
        stale = f"{LOCK}_stale_{self.run_id}"
        self.target.command(
            f"RENAME TABLE {self.target.t(LOCK)} TO {self.target.t(stale)}",
            what="clear a stale run lock",
            table=LOCK,
        )
        self.target.command(f"DROP TABLE IF EXISTS {self.target.t(stale)}", table=stale)
        if not self._create():
            raise TargetBusyError(
                f"Another olapsync run took the lock on database {self.target.database!r} "
                "just now: wait for it to finish.",
                table=LOCK,
            )
        self.held = True

    def release(self) -> None:
        if self.held:
            self.target.command(f"DROP TABLE IF EXISTS {self.target.t(LOCK)}", table=LOCK)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _is_stale(host: str, pid: int) -> bool:
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
