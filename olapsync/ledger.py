"""The run ledger, `olapsync_runs`: every run that starts ends with a row saying how.

A run appends rows as it goes, all with its `run_id`; its status is its latest row's:

- `running`, written once it holds the run lock;
- `publishing`, written just before its swaps, with the ids (UUIDs) of the staging tables it
  is about to swap in and the watermark it read;
- `success` or `failed` (any exception, its text redacted), written last;
- `interrupted`, written by the *next* run for a run that stopped without a last row (a
  SIGKILL, a power cut): it compares the tables' UUIDs now with the ones the run meant to
  swap in, and records which of its tables it did publish (`published`), so that the month
  ledger (`olapsync.partitions`) knows which of its records describe what ClickHouse holds.

A success or an interrupted run that published the events table carries the watermark the
next `sync` starts from (`olapsync.delta.Watermark`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import polars as pl

from olapsync import statements
from olapsync.clickhouse import Target
from olapsync.delta import Watermark
from olapsync.errors import TargetError
from olapsync.results import RunKind, RunRecord, RunStatus
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
    `error` String{more}
)
ENGINE = MergeTree
ORDER BY started_at"""

# Columns added after the first release: created with the table, or added to an old one.
ADDED_COLUMNS = {
    # The window as given (`Window.describe`): `window_start`/`window_end` are DateTime and
    # hold only bounds within its range (NULL otherwise, and for an open side).
    "window": "String",
    "kind": "LowCardinality(String) DEFAULT 'import'",
    "watermark": "Nullable(DateTime64(6, 'UTC'))",
    "max_seen": "Nullable(DateTime64(6, 'UTC'))",
    "staging_uuids": "String",  # JSON: {table: the UUID of the staging table swapped in}
    "published": "Array(String)",
}


def create_ledger(database: str) -> Statement:
    """The ledger's `CREATE TABLE IF NOT EXISTS`."""
    more = "".join(f",\n    `{name}` {kind}" for name, kind in ADDED_COLUMNS.items())
    return Statement(
        RUNS_DDL.format(t=qualified(database, RUNS), more=more),
        what="create the run ledger",
        table=RUNS,
    )


@dataclass
class LedgerRow:
    """One row of `olapsync_runs` (see the module docstring for the statuses)."""

    run_id: str
    status: RunStatus
    started_at: datetime
    window: Window
    kind: RunKind = "import"
    users_loaded: int = 0
    events_loaded: int = 0
    events_rejected: int = 0
    events_skipped_orphans: int = 0
    orphans_removed: int = 0
    partitions_replaced: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    watermark: Watermark | None = None
    staging_uuids: Mapping[str, str] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    window_text: str = ""


def write_ledger(target: Target, row: LedgerRow) -> None:
    """Append one row to `olapsync_runs`.

    Raises:
        TargetError: ClickHouse refused the insert.
    """
    now = datetime.now(UTC)
    bounds = [row.window.start, row.window.end]
    start, end = (None if b is None or not 0 <= epoch(b) < 2**32 else epoch(b) for b in bounds)
    mark = row.watermark
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
            "window": [row.window_text or row.window.describe()],
            "kind": [row.kind],
            "watermark": pl.Series(
                [None if mark is None else mark.value], dtype=pl.Datetime("us", "UTC")
            ),
            "max_seen": pl.Series(
                [None if mark is None else mark.max_seen], dtype=pl.Datetime("us", "UTC")
            ),
            "staging_uuids": [json.dumps(dict(sorted(row.staging_uuids.items())))],
            "published": pl.Series([row.published], dtype=pl.List(pl.String)),
        }
    ).to_arrow()
    target.insert_arrow(RUNS, table)


def record(target: Target, row: LedgerRow) -> None:
    """Write `row`. For a run that did not succeed it is best effort: the run's own error is
    what the caller must see, not a second one about the ledger."""
    try:
        write_ledger(target, row)
    except TargetError:
        if row.status == "success":
            raise
        log.warning("could not record run %s as %s in the ledger", row.run_id, row.status)


def table_uuid(target: Target, table: str) -> str:
    """The UUID ClickHouse gave `table` (EXCHANGE swaps them with the tables), "" if none."""
    rows = target.rows(
        "SELECT toString(uuid) FROM system.tables WHERE database = {db:String} "
        "AND name = {t:String}",
        {"db": target.database, "t": table},
        what=f"read {table}'s id",
        table=table,
    )
    return str(rows[0][0]) if rows else ""


def recover(target: Target) -> list[str]:
    """Mark every run that stopped without a last row as `interrupted`, with the tables it
    published; return their ids. Call it holding the run lock: no run is running then.

    Raises:
        TargetError: ClickHouse refused a statement.
    """
    rows = target.rows(
        f"SELECT run_id, argMax(status, finished_at), min(started_at), "
        f"argMax(staging_uuids, finished_at), argMax(window, finished_at), "
        f"argMax(kind, finished_at), "
        f"argMax(watermark, finished_at), argMax(max_seen, finished_at) "
        f"FROM {target.t(RUNS)} GROUP BY run_id "
        "HAVING argMax(status, finished_at) IN ('running', 'publishing')",
        what="find interrupted runs",
        table=RUNS,
    )
    found = []
    for run_id, _status, started, uuids, window, kind, mark, seen in rows:
        meant = json.loads(uuids or "{}")
        published = sorted(t for t, u in meant.items() if u and table_uuid(target, t) == u)
        row = LedgerRow(
            run_id=str(run_id),
            status="interrupted",
            started_at=started,
            window=Window(),
            window_text=str(window),
            kind=cast(RunKind, str(kind)),
            watermark=None if mark is None else Watermark(_utc(mark), _utc(seen)),
            published=published,
            error="stopped without finishing (killed?); found by the next run",
        )
        write_ledger(target, row)
        log.warning("run %s was interrupted; it had published %s", run_id, published or "nothing")
        found.append(str(run_id))
    return found


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_PUBLISHED = (
    "argMax(status, finished_at) = 'success' OR (argMax(status, finished_at) = 'interrupted' "
    "AND has(argMax(published, finished_at), {table:String}))"
)


def published_runs(target: Target, table: str) -> set[str]:
    """The runs whose version of `table` was published: they succeeded, or were
    interrupted after swapping it in.

    Raises:
        TargetError: ClickHouse refused the query.
    """
    rows = target.rows(
        f"SELECT run_id FROM {target.t(RUNS)} GROUP BY run_id HAVING {_PUBLISHED}",
        {"table": table},
        what="read the run ledger",
        table=RUNS,
    )
    return {str(r[0]) for r in rows}


def last_watermark(target: Target, table: str) -> Watermark | None:
    """The watermark of the latest run that published `table` with one (a full import or a
    sync; a window import keeps the one before it), None if there is none.

    Raises:
        TargetError: ClickHouse refused the query.
    """
    rows = target.rows(
        f"SELECT argMax(watermark, finished_at), argMax(max_seen, finished_at), "
        f"min(started_at) AS started FROM {target.t(RUNS)} GROUP BY run_id "
        f"HAVING ({_PUBLISHED}) AND argMax(watermark, finished_at) IS NOT NULL "
        "ORDER BY started DESC LIMIT 1",
        {"table": table},
        what="read the last watermark",
        table=RUNS,
    )
    if not rows:
        return None
    mark, seen, _ = rows[0]
    return Watermark(_utc(mark), _utc(seen))


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
    "kind",
)


def read_runs(target: Target, last: int) -> list[RunRecord]:
    """The `last` runs the ledger holds, newest first, each as its latest row says."""
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
                kind=cast(RunKind, str(values["kind"])),
            )
        )
    return records
