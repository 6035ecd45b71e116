"""Fingerprints without a database: the arithmetic, the month rule, the Polars sum of the
per-row hashes, and the SQL the builders write."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import hypothesis.strategies as st
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings

from olapsync import fingerprint as fpm
from olapsync.errors import SourceError
from olapsync.fingerprint import MOD, WHOLE, Fingerprint
from olapsync.specs import TELEMETRY, USERS

EPOCH = date(1970, 1, 1)
INT64 = st.integers(-(1 << 63), (1 << 63) - 1)


def month(value: date | datetime) -> str:
    return f"{value.year:04d}{value.month:02d}"


# ---- arithmetic ---------------------------------------------------------------------------------


def test_sums_and_differences_wrap_modulo_2_64() -> None:
    big = Fingerprint(2, MOD - 1)
    assert big + Fingerprint(1, 5) == Fingerprint(3, 4)
    assert Fingerprint(1, 4) - Fingerprint(1, 5) == Fingerprint(0, MOD - 1)
    assert big + Fingerprint.EMPTY == big
    assert (big + Fingerprint(7, 123)) - Fingerprint(7, 123) == big


def test_of_reduces_what_databases_return() -> None:
    # PostgreSQL's exact sum of signed int8 hashes: a Decimal, negative, or NULL over no rows.
    assert Fingerprint.of(3, Decimal(-1)) == Fingerprint(3, MOD - 1)
    assert Fingerprint.of(2, Decimal(1 << 70) + 9) == Fingerprint(2, 9)
    assert Fingerprint.of(0, None) == Fingerprint.EMPTY


def test_a_hash_outside_64_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="not in"):
        Fingerprint(1, MOD)
    with pytest.raises(ValueError, match="not in"):
        Fingerprint(1, -1)


def test_dict_form_round_trips_and_keeps_every_bit() -> None:
    fp = Fingerprint(10, MOD - 3)
    assert fp.to_dict() == {"rows": 10, "hash": "fffffffffffffffd"}
    assert Fingerprint.from_dict(fp.to_dict()) == fp
    assert Fingerprint.from_dict({"rows": 10, "hash": MOD - 3}) == fp
    assert str(fp) == "10 rows #ffffffff"


def test_combine_adds_per_key() -> None:
    a = {"202401": Fingerprint(1, 1), None: Fingerprint(1, 2)}
    b = {"202401": Fingerprint(2, MOD - 1), "202402": Fingerprint(1, 7)}
    assert fpm.combine(a, b) == {
        "202401": Fingerprint(3, 0),
        None: Fingerprint(1, 2),
        "202402": Fingerprint(1, 7),
    }


# ---- the month rule ------------------------------------------------------------------------------


@given(st.dates())
def test_day_to_month_is_the_calendar_month(value: date) -> None:
    assert fpm.day_to_month((value - EPOCH).days) == month(value)


def test_day_to_month_beyond_python_dates() -> None:
    # PostgreSQL stores years up to 294276 AD and back to 4713 BC.
    assert fpm.day_to_month((date(9999, 12, 31) - EPOCH).days + 1) == "1000001"
    # Julian day 0, 24 November 4714 BC in the proleptic Gregorian calendar: year -4713.
    assert fpm.day_to_month(-2440588) == "-471311"
    assert fpm.day_to_month(-1) == "196912"
    assert fpm.day_to_month(0) == "197001"


def test_months_from_days_folds_days_and_keeps_the_none_bucket() -> None:
    jan31 = (date(2024, 1, 31) - EPOCH).days
    got = fpm.months_from_days(
        [(jan31, 2, Decimal(5)), (jan31 + 1, 1, -6), (jan31 - 30, 1, 1), (None, 4, None)]
    )
    assert got == {
        "202401": Fingerprint(3, 6),
        "202402": Fingerprint(1, MOD - 6),
        None: Fingerprint(4, 0),
    }


# ---- the Polars sum -------------------------------------------------------------------------------

STAMPS = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
)


def reference(stamps: list[datetime | None], hashes: list[int]) -> dict[str | None, Fingerprint]:
    """Per month by Python's calendar: count, and the exact sum reduced mod 2^64."""
    out: dict[str | None, Fingerprint] = {}
    for stamp, h in zip(stamps, hashes, strict=True):
        key = None if stamp is None else month(stamp)
        out[key] = out.get(key, Fingerprint.EMPTY) + Fingerprint.of(1, h)
    return out


@settings(max_examples=200)
@given(st.lists(st.tuples(STAMPS, INT64), max_size=40))
def test_batch_sums_equal_the_exact_sum_per_month(rows: list[tuple[datetime | None, int]]) -> None:
    stamps, hashes = [r[0] for r in rows], [r[1] for r in rows]
    frame = pl.DataFrame({"t": stamps, "h": hashes}, schema={"t": pl.Datetime("us"), "h": pl.Int64})
    assert fpm.fingerprints_from_batch(frame, "t", "h") == reference(stamps, hashes)


def test_batch_sums_wrap_where_int64_overflows() -> None:
    top = (1 << 63) - 1
    stamps = [datetime(2024, 5, 1)] * 3 + [datetime(1969, 12, 31, 23, 59, 59, 999999)] * 2
    hashes = [top, top, top, -(1 << 63), -(1 << 63)]
    frame = pl.DataFrame({"t": stamps, "__fp": hashes})
    assert fpm.fingerprints_from_batch(frame, "t") == {
        "202405": Fingerprint(3, (3 * top) % MOD),
        "196912": Fingerprint(2, 0),
    }


@pytest.mark.parametrize(("unit", "per_second"), [("ns", 10**9), ("us", 10**6), ("ms", 10**3)])
def test_batch_months_in_every_time_unit_and_zone(unit: str, per_second: int) -> None:
    # One tick before midnight UTC that starts a month, after and before 1970.
    feb = int(datetime(2024, 2, 1, tzinfo=UTC).timestamp()) * per_second - 1
    jan = int(datetime(1960, 1, 1, tzinfo=UTC).timestamp()) * per_second - 1
    naive = pl.DataFrame({"t": [feb, jan, None], "__fp": [1, 2, 3]}).with_columns(
        pl.col("t").cast(pl.Datetime(unit))  # type: ignore[arg-type]
    )
    aware = naive.with_columns(
        pl.col("t").dt.replace_time_zone("UTC").dt.convert_time_zone("Asia/Tokyo")
    )
    want = {"202401": Fingerprint(1, 1), "195912": Fingerprint(1, 2), None: Fingerprint(1, 3)}
    assert fpm.fingerprints_from_batch(naive, "t") == want
    assert fpm.fingerprints_from_batch(aware, "t") == want


def test_batch_takes_arrow_dates_and_whole_tables() -> None:
    table = pa.table(
        {
            "d": pa.array([date(2024, 1, 31), date(1969, 12, 31), None], pa.date32()),
            "__fp": pa.array([1, -1, 5], pa.int64()),
        }
    )
    want = {"202401": Fingerprint(1, 1), "196912": Fingerprint(1, MOD - 1), None: Fingerprint(1, 5)}
    assert fpm.fingerprints_from_batch(table, "d") == want
    assert fpm.fingerprints_from_batch(table.to_batches()[0], "d") == want
    assert fpm.fingerprints_from_batch(table, None) == {WHOLE: Fingerprint(3, 5)}


def test_batch_refuses_a_time_column_that_is_not_a_time() -> None:
    with pytest.raises(ValueError, match="'t' is String"):
        fpm.fingerprints_from_batch(pl.DataFrame({"t": ["2024-01-01"], "__fp": [1]}), "t")


# ---- the SQL --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "typname"),
    [
        ("integer", "int4"),
        ("character varying(20)", "varchar"),
        ("character(3)", "bpchar"),
        ("numeric(12,2)", "numeric"),
        ("timestamp(3) without time zone", "timestamp"),
        ("timestamp with time zone", "timestamptz"),
        ("double precision", "float8"),
        ("pg_catalog.int8", "int8"),
        ('public."citext"', "citext"),
        ('"char"', "char"),  # the one-byte internal type, not character(1)
    ],
)
def test_pg_type_reads_format_type_and_typname(spelling: str, typname: str) -> None:
    assert fpm.pg_type(spelling) == typname


@pytest.mark.parametrize(
    ("type_name", "function"),
    [
        ("smallint", "hashint4extended"),
        ("int4", "hashint4extended"),
        ("bigint", "hashint8extended"),
        ("real", "hashfloat8extended"),
        ("float8", "hashfloat8extended"),
        ("numeric", "hash_numeric_extended"),
        ("citext", 'hashtextextended(("c")::text COLLATE "C"'),
        ("character varying(5)", 'hashtextextended(("c")::text COLLATE "C"'),
        ("timestamp", 'timestamp_hash_extended(("c"), '),
        ("timestamptz", "timestamp_hash_extended((\"c\") AT TIME ZONE 'UTC'"),
        ("date", "hashint4extended((\"c\") - DATE '1970-01-01'"),
        ("uuid", "uuid_hash_extended"),
        ("boolean", 'hashint4extended(("c")::int4'),
        ("interval", 'hashtextextended(("c")::text, 3)'),
    ],
)
def test_each_type_hashes_with_its_own_function(type_name: str, function: str) -> None:
    expr = fpm.pg_column_hash('"c"', type_name, 3)
    assert function in expr
    assert expr.startswith("coalesce(")  # NULL is a value, not a row dropped from the sum


def test_columns_get_distinct_seeds_and_null_constants() -> None:
    exprs = [fpm.pg_column_hash('"c"', "int4", seed) for seed in range(1, 50)]
    assert len(set(exprs)) == 49
    assert len({e.rsplit(", ", 1)[1] for e in exprs}) == 49


def test_float_hash_tells_negative_zero_apart() -> None:
    expr = fpm.pg_column_hash('"x"', "float8", 2)
    assert 'CASE WHEN ("x") = 0 AND atan2(("x"), -1) < 0' in expr


def test_fingerprint_sql_groups_by_day_behind_a_fence() -> None:
    cols = [('"id"', "int8"), ('"t"', "timestamptz")]
    sql = fpm.pg_fingerprint_sql("s.events", cols, '"t"', '"id" > 5')
    assert sql.startswith(
        'SELECT day, count(*), sum(h) FROM (SELECT CASE WHEN isfinite(("t")) THEN (("t") AT TIME ZONE \'UTC\')::date'
    )
    assert 'FROM "s"."events" WHERE "id" > 5 LIMIT ALL) AS fp GROUP BY day' in sql
    whole = fpm.pg_fingerprint_sql("users", cols, None)
    assert whole.startswith("SELECT NULL::int4 AS day, count(*), sum(")
    assert "GROUP BY" not in whole


def test_fingerprint_sql_refuses_bad_time_columns() -> None:
    cols = [('"id"', "int8"), ('"name"', "text")]
    with pytest.raises(ValueError, match="not one of the hashed columns"):
        fpm.pg_fingerprint_sql("t", cols, '"ts"')
    with pytest.raises(ValueError, match="is text: use a timestamp"):
        fpm.pg_fingerprint_sql("t", cols, '"name"')
    with pytest.raises(ValueError, match="at least one column"):
        fpm.pg_row_hash([])


def test_spec_columns_come_in_spec_order_with_catalog_types() -> None:
    catalog = [(c.name, "int4") for c in reversed(TELEMETRY.columns)]
    cols = fpm.pg_columns(TELEMETRY, catalog)
    assert [c for c, _ in cols] == [c.source_ident for c in TELEMETRY.columns]
    assert fpm.ch_columns(TELEMETRY) == [c.name for c in TELEMETRY.columns]
    assert fpm.pg_time_column(TELEMETRY) == '"event_timestamp"'
    assert fpm.pg_time_column(USERS) is None
    with pytest.raises(
        SourceError, match="'saved_ts' is not in PostgreSQL table 'telemetry_events'"
    ):
        fpm.pg_columns(TELEMETRY, catalog[1:])  # saved_ts dropped


def test_clickhouse_sql_binds_partitions_and_quotes_names() -> None:
    sql, params = fpm.ch_fingerprint_sql("`db`.`t`", ["a", "we`ird"], ["202401", "202402"])
    assert "cityHash64(tuple(`a`, `we\\`ird`))" in sql
    assert "_partition_id IN {partitions:Array(String)}" in sql
    assert params == {"partitions": ["202401", "202402"]}
    assert fpm.ch_fingerprint_sql("`db`.`t`", ["a"]) == (
        "SELECT _partition_id, count(), sum(cityHash64(tuple(`a`))) FROM `db`.`t` GROUP BY 1",
        {},
    )
    whole, params = fpm.ch_fingerprint_sql("`db`.`users`", ["a"], partitioned=False)
    assert whole.startswith("SELECT 'all', count()")
    assert params == {}
