"""Reading a query through a server-side cursor, for sources nothing can be sought on (a view):
PostgreSQL runs the query once and sends each batch only when it is fetched, so memory holds
one batch however big the result. About twice connectorx's CPU per row (values pass through
Python objects on their way to Arrow), which is why it serves only where ranges cannot.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format

# PostgreSQL type oids and the Arrow types connectorx's streams read them as (every integer
# as int64, every float as double): validation sees the same table whichever way a range was
# read. The source query converts every column to one of these (see `olapsync.casts`).
ARROW_TYPES: dict[int, pa.DataType] = {
    20: pa.int64(),
    21: pa.int64(),
    23: pa.int64(),
    700: pa.float64(),
    701: pa.float64(),
    25: pa.string(),
    1043: pa.string(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="+00:00"),
}
# Timestamps and dates are read as the integers PostgreSQL sends in binary (microseconds or
# days since 2000-01-01): Python's datetime ends at year 9999, PostgreSQL's at 294276, and a
# year 10000 must reach validation (to be rejected with a reason), not fail the read.
_SINCE_2000 = {"timestamp": 1114, "timestamptz": 1184, "date": 1082}
_MICROS_2000 = 946_684_800_000_000
_DAYS_2000 = 10_957


class _BigEndianInt(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> int:
        return int.from_bytes(data, "big", signed=True)


def cursor_batches(
    conn: psycopg.Connection[Any], query: str, batch_size: int
) -> Iterator[pa.RecordBatch]:
    """`query`'s rows as Arrow batches of at most `batch_size` rows, one `FETCH` each, in the
    transaction `conn` is in (a snapshot's, for a consistent read).

    Raises:
        psycopg.Error: the query failed (the caller names the source).
    """
    with conn.cursor(name="olapsync_read", binary=True) as cursor:
        for name in _SINCE_2000:
            cursor.adapters.register_loader(name, _BigEndianInt)
        cursor.execute(query)
        while rows := cursor.fetchmany(batch_size):
            assert cursor.description is not None
            columns = list(zip(*rows, strict=True))
            yield pa.record_batch(
                [
                    _array(column.type_code, values)
                    for column, values in zip(cursor.description, columns, strict=True)
                ],
                names=[column.name for column in cursor.description],
            )


def _array(oid: int, values: Sequence[Any]) -> pa.Array:
    arrow_type = ARROW_TYPES.get(oid)
    if oid == _SINCE_2000["date"]:
        days = pc.add_checked(pa.array(values, pa.int32()), pa.scalar(_DAYS_2000, pa.int32()))
        return days.cast(arrow_type)
    if oid in (_SINCE_2000["timestamp"], _SINCE_2000["timestamptz"]):
        micros = pc.add_checked(pa.array(values, pa.int64()), _MICROS_2000)
        return micros.cast(arrow_type)
    return pa.array(values, type=arrow_type)
