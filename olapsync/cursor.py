"""Reading a query through a server-side cursor, for sources nothing can be sought on (a view):
PostgreSQL runs the query once and sends each batch only when it is fetched, so memory holds
one batch however big the result. About twice connectorx's CPU per row (rows become Python
objects before Arrow arrays), which is why it serves only where ranges cannot.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pyarrow as pa

# PostgreSQL type oids and the Arrow types connectorx reads them as: validation sees one set
# of types whichever way a range was read. The source query converts every column to one of
# these (see `olapsync.casts`).
ARROW_TYPES: dict[int, pa.DataType] = {
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    700: pa.float32(),
    701: pa.float64(),
    25: pa.string(),
    1043: pa.string(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="+00:00"),
}


def cursor_batches(
    conn: psycopg.Connection[Any], query: str, batch_size: int
) -> Iterator[pa.RecordBatch]:
    """`query`'s rows as Arrow batches of at most `batch_size` rows, one `FETCH` each, in the
    transaction `conn` is in (a snapshot's, for a consistent read).

    Raises:
        psycopg.Error: the query failed (the caller names the source).
    """
    with conn.cursor(name="olapsync_read", binary=True) as cursor:
        cursor.execute(query)
        while rows := cursor.fetchmany(batch_size):
            assert cursor.description is not None
            columns = list(zip(*rows, strict=True))
            yield pa.record_batch(
                [
                    pa.array(values, type=ARROW_TYPES.get(column.type_code))
                    for column, values in zip(cursor.description, columns, strict=True)
                ],
                names=[column.name for column in cursor.description],
            )
