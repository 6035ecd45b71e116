"""Fingerprints on PostgreSQL: a change of any single value of any column in one row changes
the fingerprint of that row's month; the same data presented differently (physical order,
rewritten table, session settings) never does; and the per-row `__fp` column read with
connectorx sums to what PostgreSQL aggregates."""

from __future__ import annotations

import math
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
import numpy as np
import psycopg
import pytest
from hypothesis import given, settings

from olapsync import fingerprint as fpm
from olapsync.errors import SourceError
from olapsync.source import read_arrow
from olapsync.source_plan import column_types, row_hash_column
from olapsync.specs import TableSpec
from tests.integration.fingerprint_table import (
    DDL,
    EXAMPLES,
    NAMES,
    SPEC,
    TIME_SPECS,
    Draw,
    ints,
    month,
)
from tests.support import PgServer

pytestmark = pytest.mark.integration

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6)
STAMP = st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59))
INFINITE = st.sampled_from(["infinity", "-infinity"])
NUMERIC = st.integers(0, 4).flatmap(
    lambda places: st.decimals(-(10**6), 10**6, places=places, allow_nan=False)
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "user_id": ints(32),
    "prosthesis_type": TEXT,
    "muscle_group": TEXT,
    "signal_frequency": ints(32),
    "signal_duration": ints(32),
    "signal_amplitude": st.floats(),
    "event_timestamp": STAMP | INFINITE,
    "saved_ts": STAMP | INFINITE,
    "amount": NUMERIC | st.just(Decimal("NaN")),
    "ratio": st.floats(width=32),
    "small": ints(16),
    "code": TEXT.map(lambda s: s[:12]),
    "seen_at": STAMP.map(lambda v: v.replace(tzinfo=UTC)) | INFINITE,
    "day": st.dates() | INFINITE,
    "token": st.uuids(),
    "flag": st.booleans(),
}


@st.composite
def pg_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 8))
    # ids ten apart: changing one by one never collides with another row's
    return [{"id": 10 * i, **{c: draw(st.none() | VALUES[c]) for c in NAMES[1:]}} for i in range(n)]


def changed(draw: Draw, column: str, value: Any) -> Any:
    """`value` changed as little as its type allows, or NULL <-> a value."""
    if value is None:
        return draw(VALUES[column])
    if column != "id" and draw(st.booleans()):
        return None
    if isinstance(value, str) and column in ("event_timestamp", "saved_ts", "seen_at", "day"):
        return draw(VALUES[column].filter(lambda v: v != value))  # ±infinity -> a time
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value - 1 if value > 0 else value + 1
    if isinstance(value, float):
        if value == 0:
            return -value  # 0.0 <-> -0.0
        if math.isnan(value):
            return 0.0
        if column == "ratio":  # one ulp of a real
            return float(np.nextafter(np.float32(value), np.float32(0)))
        return math.nextafter(value, 0)
    if isinstance(value, Decimal):
        if value.is_nan():
            return Decimal(0)
        if draw(st.booleans()):  # 1.5 -> 1.50: equal numbers, different text
            return value.quantize(Decimal(1).scaleb(value.as_tuple().exponent - 1))  # type: ignore[operator]
        return value + Decimal(1).scaleb(value.as_tuple().exponent)  # type: ignore[arg-type]
    if isinstance(value, str):
        return "a" if value == "" else value[:-1] + ("a" if value[-1] != "a" else "b")
    if isinstance(value, datetime):
        step = timedelta(microseconds=1)
        return value - step if value.year > 1 else value + step
    if isinstance(value, date):
        return value - timedelta(days=1) if value.year > 1 else value + timedelta(days=1)
    if isinstance(value, uuid.UUID):
        return uuid.UUID(int=value.int ^ 1)
    raise AssertionError(f"no change for {value!r}")


@pytest.fixture(scope="module")
def pg_url(pg: PgServer) -> Iterator[str]:
    name = "fp_" + uuid.uuid4().hex[:10]
    url = pg.create(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(DDL)
    yield url
    pg.drop(name)


@pytest.fixture(scope="module")
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


def load(conn: psycopg.Connection[Any], rows: list[dict[str, Any]]) -> None:
    conn.execute("TRUNCATE events")
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO events ({', '.join(NAMES)}) VALUES ({', '.join(['%s'] * len(NAMES))})",
            [[r[n] for n in NAMES] for r in rows],
        )


def rows_of(conn: psycopg.Connection[Any]) -> fpm.Rows:
    return lambda sql, params: conn.execute(sql, params).fetchall()


def source(
    conn: psycopg.Connection[Any], table_spec: TableSpec = SPEC
) -> dict[str | None, fpm.Fingerprint]:
    return fpm.source_fingerprints(rows_of(conn), table_spec)


@EXAMPLES
@given(data=st.data())
def test_pg_any_single_change_changes_that_month(
    conn: psycopg.Connection[Any], data: st.DataObject
) -> None:
    rows = data.draw(pg_rows())
    load(conn, rows)
    before = source(conn)
    assert {m: fp.rows for m, fp in before.items()} == Counter(
        month(r["event_timestamp"]) for r in rows
    )
    row = data.draw(st.sampled_from(rows))
    column = data.draw(st.sampled_from(NAMES))
    value = changed(data.draw, column, row[column])
    conn.execute(f"UPDATE events SET {column} = %s WHERE id = %s", (value, row["id"]))

    after = source(conn)
    was = month(row["event_timestamp"])
    now = month(value) if column == "event_timestamp" else was
    assert after.get(was) != before[was], (column, row[column], value)
    assert {m: fp for m, fp in after.items() if m not in (was, now)} == {
        m: fp for m, fp in before.items() if m not in (was, now)
    }


@EXAMPLES
@given(
    rows=pg_rows(),
    order=st.randoms(use_true_random=False),
    zone=st.sampled_from(["UTC", "Asia/Kathmandu", "America/St_Johns", "Pacific/Kiritimati"]),
    digits=st.integers(-15, 3),
    style=st.sampled_from(["ISO, DMY", "SQL, MDY", "German", "Postgres, YMD"]),
)
def test_pg_same_data_presented_differently_is_never_flagged(
    conn: psycopg.Connection[Any],
    rows: list[dict[str, Any]],
    order: Any,
    zone: str,
    digits: int,
    style: str,
) -> None:
    load(conn, rows)
    base = [source(conn, s) for s in TIME_SPECS]

    def same() -> None:
        assert [source(conn, s) for s in TIME_SPECS] == base

    order.shuffle(rows)
    load(conn, rows)  # another physical order
    same()
    conn.execute("VACUUM FULL events")
    same()
    conn.execute("CLUSTER events USING events_pkey")
    same()
    conn.execute(f"UPDATE events SET {', '.join(f'{n} = {n}' for n in NAMES)}")
    same()
    conn.execute(f"SET TimeZone = '{zone}'")
    conn.execute(f"SET extra_float_digits = {digits}")
    conn.execute(f"SET DateStyle = '{style}'")
    try:
        same()
    finally:
        conn.execute("RESET ALL")


@settings(EXAMPLES, max_examples=10)
@given(rows=pg_rows())
def test_read_hash_column_sums_to_the_source_fingerprints(
    conn: psycopg.Connection[Any], pg_url: str, rows: list[dict[str, Any]]
) -> None:
    load(conn, rows)
    for table_spec in TIME_SPECS:
        # The import's own read, with the row hash it carries.
        types = column_types(rows_of(conn), "events")
        query = table_spec.source_query(types=types, extra=(row_hash_column(table_spec, types),))
        batch = read_arrow(pg_url, query)
        assert table_spec.time_column is not None
        got = fpm.fingerprints_from_batch(batch, table_spec.time_column)
        assert got == source(conn, table_spec)


# Every kind of change, each for sure (the properties above explore, these pin): (column,
# value before, value after) in one row among others of its month.
BASE: dict[str, Any] = {
    "user_id": 5,
    "prosthesis_type": "arm",
    "muscle_group": "biceps",
    "signal_frequency": 100,
    "signal_duration": 10,
    "signal_amplitude": 1.0,
    "event_timestamp": datetime(2024, 1, 15, 10, 0, 0),
    "saved_ts": datetime(2024, 1, 15, 10, 0, 1, 500000),
    "amount": Decimal("1.5"),
    "ratio": 1.5,
    "small": 1,
    "code": "ab",
    "seen_at": datetime(2024, 1, 15, 10, 0, 0, tzinfo=UTC),
    "day": date(2024, 1, 15),
    "token": uuid.UUID(int=1 << 100),
    "flag": True,
}
US = timedelta(microseconds=1)
PG_CHANGES = [
    ("id", 10, 11),
    ("user_id", 5, 6),
    ("user_id", 0, None),
    ("user_id", None, 0),
    ("prosthesis_type", "arm", "arn"),
    ("prosthesis_type", "arm", "Arm"),
    ("prosthesis_type", "", None),
    ("muscle_group", "biceps", "biceps "),
    ("signal_frequency", 100, 101),
    ("signal_duration", 10, 9),
    ("signal_amplitude", 0.0, -0.0),
    ("signal_amplitude", -0.0, 0.0),
    ("signal_amplitude", 1.0, math.nextafter(1.0, 2)),
    ("signal_amplitude", 5e-324, 0.0),
    ("signal_amplitude", math.inf, sys.float_info.max),
    ("signal_amplitude", math.nan, None),
    ("event_timestamp", BASE["event_timestamp"], BASE["event_timestamp"] + US),
    ("event_timestamp", datetime(1500, 1, 1, 0, 0, 0, 1), datetime(1500, 1, 1)),
    ("event_timestamp", "infinity", "-infinity"),
    ("event_timestamp", None, "infinity"),
    ("saved_ts", BASE["saved_ts"], BASE["saved_ts"] - US),
    ("saved_ts", datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(9999, 12, 31, 23, 59, 59)),
    ("saved_ts", None, BASE["saved_ts"]),
    ("amount", Decimal("1.5"), Decimal("1.50")),
    ("amount", Decimal("1.5"), Decimal("1.6")),
    ("amount", Decimal("NaN"), None),
    ("ratio", 0.0, -0.0),
    ("ratio", 1.5, float(np.nextafter(np.float32(1.5), np.float32(2)))),
    ("small", 1, 2),
    ("code", "ab", "ac"),
    ("seen_at", BASE["seen_at"], BASE["seen_at"] + US),
    ("day", date(2024, 1, 15), date(2024, 1, 16)),
    ("day", "infinity", "-infinity"),
    ("token", uuid.UUID(int=1 << 100), uuid.UUID(int=(1 << 100) + 1)),
    ("flag", True, False),
    ("flag", None, False),
]


def base_rows(column: str, value: Any) -> list[dict[str, Any]]:
    """Row 10, with `column` = `value`, among other rows of its month and of another."""
    rows = [{"id": 10, **BASE, column: value}]
    rows += [{"id": i, **BASE, "user_id": i} for i in (20, 30)]
    rows += [{"id": 40, **BASE, "event_timestamp": datetime(2024, 2, 1)}]
    return rows


@pytest.mark.parametrize(("column", "before", "after"), PG_CHANGES)
def test_pg_each_kind_of_change_changes_that_month(
    conn: psycopg.Connection[Any], column: str, before: Any, after: Any
) -> None:
    rows = base_rows(column, before)
    load(conn, rows)
    fps = [source(conn, s) for s in TIME_SPECS]
    conn.execute(f"UPDATE events SET {column} = %s WHERE id = 10", (after,))
    for table_spec, was in zip(TIME_SPECS, fps, strict=True):
        assert table_spec.time_column is not None
        row_month = month(rows[0][table_spec.time_column])
        assert source(conn, table_spec).get(row_month) != was[row_month]


@pytest.mark.parametrize(
    "pair", [("signal_frequency", "signal_duration"), ("prosthesis_type", "muscle_group")]
)
def test_pg_values_swapped_between_columns_change_the_month(
    conn: psycopg.Connection[Any], pair: tuple[str, str]
) -> None:
    load(conn, base_rows("id", 10))
    was = source(conn)
    a, b = pair
    conn.execute(f"UPDATE events SET {a} = {b}, {b} = {a} WHERE id = 10")
    assert source(conn)["202401"] != was["202401"]


def test_pg_fingerprint_runs_in_parallel_workers(conn: psycopg.Connection[Any]) -> None:
    # One row a minute for 50 days: distinct timestamps, few days. Pulled up, the day
    # expression would be estimated to have one group per timestamp, and sorted.
    load(conn, [])
    conn.execute(
        "INSERT INTO events (id, event_timestamp) SELECT g, "
        "timestamp '2024-01-01' + g * interval '1 minute' FROM generate_series(1, 72000) g"
    )
    conn.execute("ANALYZE events")
    conn.execute("SET parallel_setup_cost = 0")
    conn.execute("SET min_parallel_table_scan_size = 0")
    try:
        columns = fpm.pg_columns(SPEC, fpm.catalog_columns(rows_of(conn), "events"))
        sql = fpm.pg_fingerprint_sql("events", columns, '"event_timestamp"')
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql).fetchall())
    finally:
        conn.execute("RESET ALL")
    assert "Partial HashAggregate" in plan, plan


def test_unknown_table_is_a_clear_error(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(SourceError, match="Table 'no_such' is not in PostgreSQL"):
        fpm.catalog_columns(rows_of(conn), "no_such")
