"""The run ledger, `olapsync_runs`: one row per run, written last, so a row never claims
a run that did not finish; `status` reads the latest rows back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import polars as pl

from olapsync import statements
from olapsync.clickhouse import Target
from olapsync.errors import TargetError
from olapsync.results import RunRecord, RunStatus
from olapsync.statements import Statement, qualified
from olapsync.window import Window, epoch

log = logging.getLogger(__name__)
RUNS = "olapsync_runs"

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


def create_ledger(database: str) -> Statement:
    """The ledger's `CREATE TABLE IF NOT EXISTS`."""
    return Statement(
        RUNS_DDL.format(t=qualified(database, RUNS)), what="create the run ledger", table=RUNS
    )


@dataclass
class LedgerRow:
    run_id: str
    status: RunStatus
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
    # Built with Polars: pyarrow's own constructors import pandas, which is slow to start.
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


def record(target: Target, row: LedgerRow) -> None:
    """Write `row`. For a failed run it is best effort: the run's own error is what the
    caller must see, not a second one about the ledger."""
    try:
        write_ledger(target, row)
    except TargetError:
        if row.status == "success":
            raise
        log.warning("could not record the failed run %s in the ledger", row.run_id)


_RECORD_COLUMNS = (
    "run_id",
    "status",
    "started_at",
    "seconds",
    "users_loaded",
    "events_loaded",
    "events_rejected",
    "partitions_replaced",
    "error",
)


def read_runs(target: Target, last: int) -> list[RunRecord]:
    """The `last` runs the ledger holds, newest first."""
    records = []
    for row in target.fetch(statements.latest_runs(target.database, RUNS, _RECORD_COLUMNS, last)):
        values = dict(zip(_RECORD_COLUMNS, row, strict=True))
        records.append(
            RunRecord(
                run_id=str(values["run_id"]),
                status=cast(RunStatus, str(values["status"])),
                started_at=values["started_at"],
                seconds=float(values["seconds"]),
                users_loaded=int(values["users_loaded"]),
                events_loaded=int(values["events_loaded"]),
                events_rejected=int(values["events_rejected"]),
                partitions_replaced=list(values["partitions_replaced"]),
                error=str(values["error"]),
            )
        )
    return records
