"""Fingerprints on ClickHouse (chDB): a change of any single value of any column in one row
changes its partition's fingerprint; the same rows in other parts or orders never do; NULLs
count and differ from defaults; a `Join` table is fingerprinted whole."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import given, settings

from olapsync import fingerprint as fpm
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.specs import Column, TableSpec
from tests.integration.fingerprint_table import EXAMPLES, SPEC, Draw, ints, month

pytestmark = pytest.mark.integration

CH_STRINGS = st.text(max_size=6)
CH_STAMP = st.integers(0, (1 << 32) - 1)
CH_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "int32": ints(32),
    "int64": ints(64),
    "float64": st.floats(),
    "string": CH_STRINGS,
    "datetime": CH_STAMP,
}


@pytest.fixture(scope="module")
def target(clickhouse_url: str) -> Iterator[Target]:
    config = Config(clickhouse_url=clickhouse_url, database="fp_" + uuid.uuid4().hex[:10])
    with Target(config) as target:
        # Column.ch_type writes Nullable(LowCardinality(String)), which ClickHouse refuses.
        ddl = SPEC.ddl(target.database)
        target.command(
            ddl.replace("Nullable(LowCardinality(String))", "LowCardinality(Nullable(String))")
        )
        yield target
        target.command(f"DROP DATABASE IF EXISTS `{target.database}` SYNC")


@st.composite
def ch_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 8))
    return [
        {
            c.name: draw((st.none() if c.nullable else st.nothing()) | CH_VALUES[c.kind])
            for c in SPEC.columns
        }
        for _ in range(n)
    ]


def ch_load(target: Target, rows: list[dict[str, Any]], parts: int = 1) -> None:
    """Replace the table's rows, inserted as `parts` separate inserts (parts)."""
    target.command(f"TRUNCATE TABLE {target.t('events')}")
    types = {c.name: fpm_type(c) for c in SPEC.columns}
    for i in range(parts):
        chunk = rows[i::parts]
        if chunk:
            frame = pl.DataFrame(chunk, schema=types)
            target.insert_arrow("events", frame.to_arrow())


def fpm_type(col: Column) -> pl.DataType:
    return {"int32": pl.Int32(), "int64": pl.Int64(), "float64": pl.Float64()}.get(
        col.kind, pl.UInt32() if col.kind == "datetime" else pl.String()
    )


def ch_changed(draw: Draw, col: Column, value: Any) -> Any:
    if value is None:
        return draw(CH_VALUES[col.kind])
    if col.nullable and draw(st.booleans()):
        return None
    if col.kind == "float64":
        if value == 0:
            return -value
        return 0.0 if math.isnan(value) else math.nextafter(value, 0)
    if col.kind == "string":
        return "a" if value == "" else value[:-1] + ("a" if value[-1] != "a" else "b")
    return value - 1 if value > 0 else value + 1  # ints; DateTime by one second


def ch_month(seconds: int) -> str:
    return month(datetime.fromtimestamp(seconds, UTC)) or ""


def target_fps(target: Target, partitions: list[str] | None = None) -> dict[str, Any]:
    return fpm.target_fingerprints(target.rows, SPEC, target.t("events"), partitions)


@settings(EXAMPLES, max_examples=20)  # chDB statements cost more than PostgreSQL's
@given(data=st.data())
def test_ch_any_single_change_changes_that_partition(target: Target, data: st.DataObject) -> None:
    rows = data.draw(ch_rows())
    ch_load(target, rows)
    before = target_fps(target)
    assert {p: fp.rows for p, fp in before.items()} == Counter(
        ch_month(r["event_timestamp"]) for r in rows
    )
    i = data.draw(st.integers(0, len(rows) - 1))
    col = data.draw(st.sampled_from(SPEC.columns))
    value = ch_changed(data.draw, col, rows[i][col.name])
    was = ch_month(rows[i]["event_timestamp"])
    rows[i] = {**rows[i], col.name: value}
    ch_load(target, rows)

    after = target_fps(target)
    assert after.get(was) != before[was], (col.name, value)
    # only the partitions asked for, and those that have rows
    assert target_fps(target, [was, "209901"]) == {
        p: after[p] for p in (was, "209901") if p in after
    }


JAN15 = int(datetime(2024, 1, 15, 10, tzinfo=UTC).timestamp())
CH_BASE = {
    "id": 10,
    "user_id": 5,
    "prosthesis_type": "arm",
    "muscle_group": "biceps",
    "signal_frequency": 100,
    "signal_duration": 10,
    "signal_amplitude": 1.0,
    "event_timestamp": JAN15,
    "saved_ts": JAN15 + 1,
    "amount": 1.5,
    "ratio": 0.25,
    "small": 1,
    "code": "ab",
    "seen_at": JAN15,
    "day": JAN15 - 36000,
    "token": "00000000-0000-0000-0000-000000000001",
    "flag": "true",
}
CH_CHANGES = [
    ("id", 10, 11),
    ("user_id", 5, 6),
    ("user_id", 0, None),
    ("prosthesis_type", "arm", "arn"),  # LowCardinality(Nullable(String))
    ("prosthesis_type", "", None),
    ("muscle_group", "biceps", "Biceps"),
    ("signal_amplitude", 0.0, -0.0),
    ("signal_amplitude", 1.0, math.nextafter(1.0, 2)),
    ("signal_amplitude", 0.0, None),
    ("event_timestamp", JAN15, JAN15 + 1),  # DateTime
    ("saved_ts", JAN15 + 1, JAN15),  # Nullable(DateTime)
    ("saved_ts", 0, None),
    ("code", "ab", "ac"),
]


@pytest.mark.parametrize(("column", "before", "after"), CH_CHANGES)
def test_ch_each_kind_of_change_changes_that_partition(
    target: Target, column: str, before: Any, after: Any
) -> None:
    others = [{**CH_BASE, "id": i, "user_id": i} for i in (20, 30)]
    ch_load(target, [{**CH_BASE, column: before}, *others])
    was = target_fps(target)
    ch_load(target, [{**CH_BASE, column: after}, *others])
    assert target_fps(target)["202401"] != was["202401"]


def test_ch_values_swapped_between_columns_change_the_partition(target: Target) -> None:
    ch_load(target, [CH_BASE])
    was = target_fps(target)
    ch_load(target, [{**CH_BASE, "signal_frequency": 10, "signal_duration": 100}])
    assert target_fps(target) != was


@settings(EXAMPLES, max_examples=20)
@given(rows=ch_rows(), order=st.randoms(use_true_random=False), parts=st.integers(1, 4))
def test_ch_same_rows_in_other_parts_and_orders_are_never_flagged(
    target: Target, rows: list[dict[str, Any]], order: Any, parts: int
) -> None:
    ch_load(target, rows)
    base = target_fps(target)
    order.shuffle(rows)
    ch_load(target, rows, parts)
    assert target_fps(target) == base
    target.command(f"OPTIMIZE TABLE {target.t('events')} FINAL")
    assert target_fps(target) == base


def test_ch_nulls_count_and_differ_from_defaults(target: Target) -> None:
    row = {c.name: {"string": "x", "float64": 1.5}.get(c.kind, 7) for c in SPEC.columns}
    variants: list[Callable[[dict[str, Any]], dict[str, Any]]] = [
        lambda r: r,
        lambda r: {**r, "user_id": None},
        lambda r: {**r, "user_id": 0},
        lambda r: {**r, "prosthesis_type": None},
        lambda r: {**r, "prosthesis_type": ""},
        lambda r: {**r, "signal_amplitude": None},
        lambda r: {**r, "signal_amplitude": 0.0},
        lambda r: {**r, "signal_amplitude": -0.0},
    ]
    seen = set()
    for make in variants:
        ch_load(target, [{**make(row), "event_timestamp": 86400 * 40}])
        (fp,) = target_fps(target).values()
        assert fp.rows == 1
        seen.add(fp.hash)
    assert len(seen) == len(variants)


def test_ch_join_table_is_fingerprinted_whole(target: Target) -> None:
    users = TableSpec(
        name="users",
        source="crm",
        source_table="users",
        key="user_id",
        columns=(Column("user_id", "int32"), Column("name", "string", nullable=True)),
        engine="Join(ANY, LEFT, user_id)",
    )
    table = target.t("users")
    target.command(users.ddl(target.database))
    fps = []
    for names in (["ann", "bob"], ["ann", "bOb"], ["ann", None], []):
        target.command(f"TRUNCATE TABLE {table}")
        for i, name in enumerate(names):
            target.command(
                f"INSERT INTO {table} VALUES ({{i:Int32}}, {{n:Nullable(String)}})",
                {"i": i, "n": name},
            )
        fps.append(fpm.target_fingerprints(target.rows, users, table))
    assert [list(fp) for fp in fps] == [[fpm.WHOLE]] * 4
    assert [fp[fpm.WHOLE].rows for fp in fps] == [2, 2, 2, 0]
    assert len({fp[fpm.WHOLE] for fp in fps}) == 4
