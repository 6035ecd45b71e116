"""The month ledger, `olapsync_partitions`: what each run saw in the source and wrote to
ClickHouse, month by month, so that `verify` can say "changed in PostgreSQL since it was
loaded" or "changed in ClickHouse behind olapsync's back" without the two engines having to
hash alike (DESIGN.md, "Sync and verify").

A run writes one record per month it changed (rebuilt, appended to, cleaned of orphans or
duplicates, dropped), and one for `users` as a whole (partition `all`), before it publishes.
A month's state is its latest record from a run that published it: a run that succeeded, or
one that was interrupted after its swap (`olapsync.ledger` finds out which at the next run).
Months a run leaves alone keep their last record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import polars as pl

from olapsync.fingerprint import Fingerprint
from olapsync.statements import Statement, qualified

if TYPE_CHECKING:  # the records are pure; only writing and reading them needs a target
    from olapsync.clickhouse import Target

PARTITIONS = "olapsync_partitions"
NO_TIME = ""  # the bucket of rows without a usable event time
Action = Literal["rebuilt", "appended", "cleaned", "dropped", "partial"]

PARTITIONS_DDL = """CREATE TABLE IF NOT EXISTS {t} (
    `run_id` String,
    `recorded_at` DateTime64(3, 'UTC'),
    `table` LowCardinality(String),
    `partition` String,
    `action` LowCardinality(String),
    `source_rows` Nullable(UInt64),
    `source_hash` Nullable(UInt64),
    `loaded` UInt64,
    `rejected` UInt64,
    `skipped` UInt64,
    `orphan_users` Array(Int64),
    `target_rows` UInt64,
    `target_hash` UInt64,
    `signature` String{more}
)
ENGINE = MergeTree
ORDER BY (`table`, `partition`, recorded_at)"""


# Columns added since the first version (`olapsync.schema` adds them to an older ledger,
# whose records then read as holding no repeated keys).
ADDED_COLUMNS = {
    "repeated_keys": "Array(Int64)",
    "repeated_users": "Array(Int64)",
    "repeats_known": "UInt8",  # 0 in the records of an older ledger
}


def create_partitions(database: str) -> Statement:
    """The month ledger's `CREATE TABLE IF NOT EXISTS`."""
    more = "".join(f",\n    `{name}` {kind}" for name, kind in ADDED_COLUMNS.items())
    return Statement(
        PARTITIONS_DDL.format(t=qualified(database, PARTITIONS), more=more),
        what="create the month ledger",
        table=PARTITIONS,
    )


@dataclass(frozen=True)
class MonthRecord:
    """One month of one table as a run left it.

    partition: `YYYYMM`; `NO_TIME` ("") for rows without a usable event time; `all` for a
        table taken whole (`olapsync.fingerprint.WHOLE`).
    source: the source fingerprint of the month's rows in the run's snapshot; None when the
        run read only part of the month (a window's edge), which `verify` cannot vouch for.
    loaded / rejected / skipped: rows in ClickHouse, quarantined, and left out as orphans.
    orphan_users: the users whose rows were skipped as orphans (a sync rebuilds the month if
        one of them comes back).
    repeated_keys: the keys whose copies in this month are held out of ClickHouse because
        the key repeats (in this month or another; every copy is quarantined), and
        repeated_users: those copies' users. A run that rereads a month sharing one of these
        keys rereads this month too, and a run that stages a new copy of one quarantines it
        (`olapsync.repeats`).
    repeats_known: False for a record an older version wrote, which did not keep them: a
        run rereads such a month once if it holds rejected rows.
    target: the fingerprint of the month's rows in ClickHouse after the run.
    signature: the columns and source types the hashes cover (`row_signature`); a record of
        another signature says nothing about the month now.
    """

    table: str
    partition: str
    action: Action
    source: Fingerprint | None
    loaded: int
    rejected: int
    skipped: int
    target: Fingerprint
    signature: str
    orphan_users: frozenset[int] = field(default_factory=frozenset)
    repeated_keys: frozenset[int] = field(default_factory=frozenset)
    repeated_users: frozenset[int] = field(default_factory=frozenset)
    repeats_known: bool = True


def write_records(target: Target, run_id: str, records: Iterable[MonthRecord]) -> None:
    """Append `records` for `run_id`.

    Raises:
        TargetError: ClickHouse refused the insert.
    """
    rows = list(records)
    if not rows:
        return
    now = datetime.now(UTC)
    frame = pl.DataFrame(
        {
            "run_id": [run_id] * len(rows),
            "recorded_at": [now] * len(rows),
            "table": [r.table for r in rows],
            "partition": [r.partition for r in rows],
            "action": [r.action for r in rows],
            "source_rows": pl.Series([_rows(r.source) for r in rows], dtype=pl.UInt64),
            "source_hash": pl.Series([_hash(r.source) for r in rows], dtype=pl.UInt64),
            "loaded": pl.Series([r.loaded for r in rows], dtype=pl.UInt64),
            "rejected": pl.Series([r.rejected for r in rows], dtype=pl.UInt64),
            "skipped": pl.Series([r.skipped for r in rows], dtype=pl.UInt64),
            "orphan_users": pl.Series(
                [sorted(r.orphan_users) for r in rows], dtype=pl.List(pl.Int64)
            ),
            "target_rows": pl.Series([r.target.rows for r in rows], dtype=pl.UInt64),
            "target_hash": pl.Series([r.target.hash for r in rows], dtype=pl.UInt64),
            "signature": [r.signature for r in rows],
            "repeated_keys": pl.Series(
                [sorted(r.repeated_keys) for r in rows], dtype=pl.List(pl.Int64)
            ),
            "repeated_users": pl.Series(
                [sorted(r.repeated_users) for r in rows], dtype=pl.List(pl.Int64)
            ),
            "repeats_known": pl.Series([1] * len(rows), dtype=pl.UInt8),
        }
    ).to_arrow()
    target.insert_arrow(PARTITIONS, frame)


def _rows(fp: Fingerprint | None) -> int | None:
    return None if fp is None else fp.rows


def _hash(fp: Fingerprint | None) -> int | None:
    return None if fp is None else fp.hash


_COLUMNS = (
    "action",
    "source_rows",
    "source_hash",
    "loaded",
    "rejected",
    "skipped",
    "orphan_users",
    "target_rows",
    "target_hash",
    "signature",
)


def latest_records(target: Target, table: str, trusted: Iterable[str]) -> dict[str, MonthRecord]:
    """Each partition's latest record from the runs in `trusted` (the runs whose tables
    were published, `olapsync.ledger.published_runs`); {} before the first such run.

    Raises:
        TargetError: ClickHouse refused the query.
    """
    runs = sorted(set(trusted))
    if not runs:
        return {}
    # A ledger made by an older version may lack the added columns until a run adds them;
    # a read path (verify, status) must not alter it, so it reads them as empty.
    have = {
        str(name)
        for (name,) in target.rows(
            "SELECT name FROM system.columns WHERE database = {db:String} "
            "AND table = {table:String}",
            {"db": target.database, "table": PARTITIONS},
            what="read the month ledger's columns",
            table=PARTITIONS,
        )
    }
    added = [
        f"`{c}`" if c in have else f"defaultValueOfTypeName('{t}')"
        for c, t in ADDED_COLUMNS.items()
    ]
    # The latest record whole, as one tuple: argMax of a Nullable column alone would skip the
    # NULL of a window's partial record and return an older run's source fingerprint.
    picked = ", ".join([*(f"`{c}`" for c in _COLUMNS), *added])
    rows = target.rows(
        f"SELECT `partition`, argMax(tuple({picked}), recorded_at) FROM {target.t(PARTITIONS)} "
        "WHERE `table` = {table:String} AND has({runs:Array(String)}, run_id) "
        "GROUP BY `partition`",
        {"table": table, "runs": runs},
        what="read the month ledger",
        table=PARTITIONS,
    )
    out = {}
    for partition, (
        action,
        s_rows,
        s_hash,
        loaded,
        rejected,
        skipped,
        users,
        t_rows,
        t_hash,
        sig,
        keys,
        key_users,
        known,
    ) in rows:
        out[str(partition)] = MonthRecord(
            table=table,
            partition=str(partition),
            action=action,
            source=None if s_rows is None else Fingerprint(int(s_rows), int(s_hash)),
            loaded=int(loaded),
            rejected=int(rejected),
            skipped=int(skipped),
            target=Fingerprint(int(t_rows), int(t_hash)),
            signature=str(sig),
            orphan_users=frozenset(int(u) for u in users),
            repeated_keys=frozenset(int(k) for k in keys),
            repeated_users=frozenset(int(u) for u in key_users),
            repeats_known=bool(known),
        )
    return out
