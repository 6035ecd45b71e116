"""A run's books, month by month: what it read from the source and what it did to each month
of the events table, so that it can write the month ledger (`olapsync.partitions`).

Pure: Polars frames in, records out. The source side sums each row's hash as the read carries
it (`olapsync.fingerprint.FP_COLUMN`); the target side is counted in ClickHouse by the run
and handed in as fingerprints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import polars as pl

from olapsync.fingerprint import FP_COLUMN, Fingerprint, day_to_month
from olapsync.partitions import NO_TIME, Action, MonthRecord
from olapsync.validate import CLEAN, ORPHAN, REJECTED

_PER_DAY = {"ns": 86_400_000_000_000, "us": 86_400_000_000, "ms": 86_400_000}


@dataclass
class Month:
    """One month's account (see `olapsync.partitions.MonthRecord` for the fields).

    source: None once the month is known to be only partly read (a window's edge).
    removed: target rows removed from data the run kept (orphans, duplicates), as
        ClickHouse hashes them; added: target rows appended to kept data.
    """

    action: Action = "rebuilt"
    source: Fingerprint | None = field(default_factory=lambda: Fingerprint.EMPTY)
    loaded: int = 0
    rejected: int = 0
    skipped: int = 0
    orphan_users: set[int] = field(default_factory=set)
    repeated_keys: set[int] = field(default_factory=set)
    repeated_users: set[int] = field(default_factory=set)
    removed: Fingerprint = field(default_factory=lambda: Fingerprint.EMPTY)
    added: Fingerprint = field(default_factory=lambda: Fingerprint.EMPTY)


def month_of(frame: pl.DataFrame, time_column: str) -> pl.Series:
    """Each row's `YYYYMM` (`NO_TIME` when its time is NULL), by the day-bucket rule of
    `olapsync.fingerprint` (days since 1970-01-01 in UTC, sub-second parts truncated)."""
    dtype = frame.schema[time_column]
    if isinstance(dtype, pl.Datetime):
        unit = dtype.time_unit or "us"
        day = pl.col(time_column).dt.epoch(unit) // _PER_DAY[unit]
    else:
        day = pl.col(time_column).cast(pl.Int64)
    days = frame.select(day.alias("day")).get_column("day")
    distinct = days.unique().drop_nulls().to_list()
    mapping = {d: day_to_month(int(d)) for d in distinct}
    return days.replace_strict(mapping, default=NO_TIME, return_dtype=pl.String).fill_null(NO_TIME)


@dataclass
class Book:
    """The months a run changed, keyed by partition (`NO_TIME` for rows without a time)."""

    months: dict[str, Month] = field(default_factory=dict)

    def month(self, key: str) -> Month:
        return self.months.setdefault(key, Month())

    def read(
        self,
        batch: pl.DataFrame,
        status: pl.Series,
        *,
        time_column: str,
        parent: str | None,
    ) -> None:
        """Account for one batch as read (with `FP_COLUMN`), `status` being what validation
        made of each row (`olapsync.validate.Split.status`)."""
        frame = batch.select(
            month_of(batch, time_column).alias("month"),
            status.alias("status"),
            pl.col(FP_COLUMN).cast(pl.Int64).alias("h"),
            *([pl.col(parent).alias("parent")] if parent else []),
        )
        grouped = frame.group_by("month", "status").agg(
            pl.len().alias("n"),
            (pl.col("h") // (1 << 32)).sum().alias("hi"),
            (pl.col("h") % (1 << 32)).sum().alias("lo"),
        )
        for month, code, n, hi, lo in grouped.iter_rows():
            m = self.month(month)
            if m.source is not None:
                m.source = m.source + Fingerprint.of(n, (hi << 32) + lo)
            if code == CLEAN:
                m.loaded += n
            elif code == REJECTED:
                m.rejected += n
            elif code == ORPHAN:
                m.skipped += n
        if parent and (frame.get_column("status") == ORPHAN).any():
            orphans = (
                frame.filter(pl.col("status") == ORPHAN)
                .group_by("month")
                .agg(pl.col("parent").unique().drop_nulls())
            )
            for month, users in orphans.iter_rows():
                self.month(month).orphan_users.update(int(u) for u in users)

    def take(self, rows: pl.DataFrame) -> None:
        """Account for a sync's new rows (`olapsync.delta.CANDIDATE_SCHEMA`: month, status
        as text, `fp` as UInt64, user_id) in the months they fall in."""
        grouped = rows.group_by("month", "status").agg(pl.len().alias("n"), pl.col("fp").sum())
        for month, status, n, h in grouped.iter_rows():
            m = self.month(month)
            if m.source is not None:
                m.source = m.source + Fingerprint.of(n, int(h or 0))
            if status == "clean":
                m.loaded += n
            elif status == "rejected":
                m.rejected += n
            else:
                m.skipped += n
        orphans = rows.filter(pl.col("status") == "orphan")
        for month, users in orphans.group_by("month").agg(pl.col("user_id").unique()).iter_rows():
            self.month(month).orphan_users.update(int(u) for u in users if u is not None)

    def carried(self, previous: Mapping[str, MonthRecord]) -> set[str]:
        """The months whose target fingerprint follows from their previous record (kept
        data, appended to or cleaned); every other month needs ClickHouse to count it."""
        return {
            k
            for k, m in self.months.items()
            if m.action in ("appended", "cleaned") and k in previous
        }

    def records(
        self,
        table: str,
        targets: Mapping[str, Fingerprint],
        previous: Mapping[str, MonthRecord],
        signature: str,
    ) -> list[MonthRecord]:
        """The month ledger's records: `targets` are the fingerprints ClickHouse computed for
        the months rebuilt here; a month the run kept and changed (appended to, cleaned)
        carries its `previous` record forward by what was added and removed."""
        out = []
        for key, m in sorted(self.months.items()):
            if m.action in ("appended", "cleaned") and key in previous:
                before = previous[key]
                source = (
                    None if before.source is None or m.source is None else before.source + m.source
                )
                out.append(
                    MonthRecord(
                        table=table,
                        partition=key,
                        action=m.action,
                        source=source,
                        loaded=before.loaded + m.loaded,
                        rejected=before.rejected + m.rejected,
                        skipped=before.skipped + m.skipped,
                        target=before.target + m.added - m.removed,
                        signature=signature,
                        orphan_users=frozenset(before.orphan_users | m.orphan_users),
                        repeated_keys=frozenset(before.repeated_keys | m.repeated_keys),
                        repeated_users=frozenset(before.repeated_users | m.repeated_users),
                    )
                )
                continue
            target = targets.get(key, Fingerprint.EMPTY)
            action: Action = m.action
            if action == "rebuilt" and target.rows == 0 and key != NO_TIME:
                action = "dropped" if m.loaded == 0 else action
            out.append(
                MonthRecord(
                    table=table,
                    partition=key,
                    action="partial" if m.source is None else action,
                    source=m.source,
                    loaded=m.loaded,
                    rejected=m.rejected,
                    skipped=m.skipped,
                    target=target,
                    signature=signature,
                    orphan_users=frozenset(m.orphan_users),
                    repeated_keys=frozenset(m.repeated_keys),
                    repeated_users=frozenset(m.repeated_users),
                )
            )
        return out


def orphan_users(records: Iterable[MonthRecord]) -> dict[str | None, set[int]]:
    """Per month, the users whose rows its last load skipped as orphans."""
    return {(r.partition or None): set(r.orphan_users) for r in records if r.orphan_users}
