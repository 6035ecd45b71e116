"""Source rows through validation into ClickHouse: the part of a run that moves data.

Each batch, as read (with each row's source hash, `olapsync.fingerprint.FP_COLUMN`), is
accounted for in the run's books (`olapsync.book`), validated (`olapsync.validate`), and its
clean rows queued for insertion on a background thread (`olapsync.inserter`) while the next
batch is read; rejected rows go to the quarantine table with their reason.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from olapsync import words
from olapsync.book import Book
from olapsync.clickhouse import Target
from olapsync.failpoints import failpoint
from olapsync.fingerprint import FP_COLUMN
from olapsync.inserter import Inserter
from olapsync.specs import TableSpec
from olapsync.validate import Split, validate
from olapsync.window import rows_per_month

Progress = Callable[..., None]


@dataclass
class Loaded:
    """What a stream did: rows read, loaded per month, and the greatest watermark value
    (`TableSpec.watermark`, UTC) among the rows read."""

    rows: int = 0
    loaded: int = 0
    rejected: int = 0
    orphans: int = 0
    per_partition: Counter[str] = field(default_factory=Counter)
    max_seen: datetime | None = None
    retries: int = 0

    def saw(self, value: datetime | None) -> None:
        if value is not None and (self.max_seen is None or value > self.max_seen):
            self.max_seen = value


def quarantine_rows(run_id: str, spec: TableSpec, rejected: pl.DataFrame) -> pa.Table:
    """Rejected rows as the quarantine table (`<table>_rejected`) holds them."""
    return rejected.select(
        pl.lit(run_id).alias("run_id"),
        pl.lit(int(time.time()), pl.UInt32).alias("rejected_at"),
        pl.col("key").alias(spec.key),
        "reason",
        "source_row",
    ).to_arrow()


def max_of(frame: pl.DataFrame, column: str | None) -> datetime | None:
    """The greatest value of a datetime column, as an aware UTC datetime (None if all NULL)."""
    if column is None or column not in frame.columns:
        return None
    value = frame.get_column(column).max()
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def split_batch(
    batch: pa.RecordBatch | pa.Table, spec: TableSpec, parents: pl.Series | None
) -> tuple[pl.DataFrame, Split]:
    """A batch as read (with `FP_COLUMN`) and its validation, the hash left out of it."""
    frame = pl.DataFrame(pl.from_arrow(batch))
    return frame, validate(frame.drop(FP_COLUMN), spec, parents)


def load(
    target: Target,
    batches: Iterable[pa.RecordBatch],
    spec: TableSpec,
    *,
    into: str,
    parents: pl.Series,
    run_id: str,
    book: Book,
    progress: Progress,
) -> Loaded:
    """Load `batches` (read with fingerprints) into table `into`, quarantining rejects.

    Raises:
        TargetError: an insert failed after its retries.
        SourceError: the read failed.
    """
    assert spec.time_column is not None
    out = Loaded()
    inserter = Inserter(target, run_id)
    try:
        for batch in batches:
            frame, split = split_batch(batch, spec, parents)
            book.read(
                frame,
                split.status,
                time_column=spec.time_column,
                parent=spec.parent[1] if spec.parent else None,
            )
            out.saw(max_of(frame, spec.watermark))
            out.rows += split.rows
            if split.clean.num_rows:
                inserter.put(into, split.clean)
                out.per_partition.update(rows_per_month(split.clean.column(spec.time_column)))
            if split.rejected.height:
                inserter.put(spec.rejected, quarantine_rows(run_id, spec, split.rejected))
            out.loaded += split.clean.num_rows
            out.rejected += split.rejected.height
            out.orphans += split.orphans
            progress(
                "extract",
                f"{words.count(out.rows, 'row')} read",
                rows=out.rows,
                partitions=dict(sorted(out.per_partition.items())),
            )
        failpoint("during-staging-insert")
    finally:
        inserter.close()
        out.retries = inserter.retried
    return out
