from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pyarrow as pa
import pytest

from olapsync.errors import SourceError
from olapsync.specs import TELEMETRY, USERS, Column, Rule, TableSpec, telemetry_spec
from olapsync.validate import validate

GOOD = {
    "id": 1,
    "user_id": 1,
    "prosthesis_type": "arm",
    "muscle_group": "biceps",
    "signal_frequency": 100,
    "signal_duration": 10,
    "signal_amplitude": 1.5,
    "event_timestamp": datetime(2026, 1, 1, 12),
    "saved_ts": datetime(2026, 1, 1, 12, 0, 1, 500000),
    "__nonfinite": None,
}
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("user_id", pa.int32()),
        ("prosthesis_type", pa.string()),
        ("muscle_group", pa.string()),
        ("signal_frequency", pa.int32()),
        ("signal_duration", pa.int32()),
        ("signal_amplitude", pa.float64()),
        ("event_timestamp", pa.timestamp("us")),
        ("saved_ts", pa.timestamp("us")),
        ("__nonfinite", pa.string()),
    ]
)


def batch(*changes: dict[str, object], schema: pa.Schema = SCHEMA) -> pa.Table:
    rows = [{**GOOD, "id": i + 1, **change} for i, change in enumerate(changes)]
    return pa.Table.from_pylist(rows, schema=schema)


def reason(change: dict[str, object]) -> str:
    split = validate(batch(change), TELEMETRY)
    assert split.clean.num_rows == 0
    return str(split.rejected["reason"][0])


def test_a_good_row_is_loaded_unchanged_with_clickhouse_types() -> None:
    split = validate(batch({}), TELEMETRY)
    assert split.rejected.height == 0
    assert split.orphans == 0
    row = split.clean.to_pylist()[0]
    assert row["event_timestamp"] == 1767268800  # 2026-01-01 12:00 UTC
    assert row["saved_ts"] == 1767268801  # whole seconds: DateTime has no fraction
    assert row["signal_amplitude"] == 1.5
    assert row["prosthesis_type"] == "arm"
    assert split.clean.schema.field("user_id").type == pa.int32()
    assert split.clean.schema.field("event_timestamp").type == pa.uint32()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"user_id": None}, "user_id is NULL"),
        ({"prosthesis_type": "foot"}, "prosthesis_type 'foot' is not one of (arm, hand, leg)"),
        ({"muscle_group": "  "}, "muscle_group is empty"),
        ({"signal_frequency": 0}, "signal_frequency 0 is not > 0"),
        ({"signal_duration": -1}, "signal_duration -1 is negative"),
        ({"signal_amplitude": float("nan")}, "signal_amplitude NaN is not a finite number"),
        ({"signal_amplitude": float("-inf")}, "signal_amplitude -inf is not a finite number"),
        (
            {"event_timestamp": datetime(1969, 12, 31, 23, 59, 59)},
            "outside the ClickHouse DateTime range",
        ),
        (
            {"event_timestamp": datetime(2106, 2, 7, 6, 28, 16)},
            "event_timestamp 2106-02-07 06:28:16 is outside",
        ),
        (
            {
                "event_timestamp": None,
                "__nonfinite": '{"event_timestamp": "infinity", "saved_ts": null}',
            },
            "event_timestamp is 'infinity'",
        ),
        (
            {
                "event_timestamp": None,
                "saved_ts": None,
                "__nonfinite": '{"event_timestamp": null, "saved_ts": "-infinity"}',
            },
            "event_timestamp is NULL; saved_ts is '-infinity'",
        ),
        ({"saved_ts": None}, "saved_ts is NULL"),
    ],
)
def test_each_rule_rejects_with_a_reason(change: dict[str, object], expected: str) -> None:
    assert expected in reason(change)


def test_all_reasons_of_a_row_are_kept() -> None:
    text = reason({"signal_frequency": 0, "signal_duration": -1})
    assert "signal_frequency 0" in text
    assert "signal_duration -1" in text


def test_datetime_edges_are_accepted() -> None:
    split = validate(
        batch(
            {"event_timestamp": datetime(1970, 1, 1)},
            {"event_timestamp": datetime(2106, 2, 7, 6, 28, 15)},
        ),
        TELEMETRY,
    )
    assert split.clean["event_timestamp"].to_pylist() == [0, 2**32 - 1]


def test_int64_source_values_that_do_not_fit_int32_are_rejected_not_wrapped() -> None:
    schema = SCHEMA.set(1, pa.field("user_id", pa.int64()))
    split = validate(batch({"user_id": 2**31}, schema=schema), TELEMETRY)
    assert "user_id 2147483648 does not fit Int32" in split.rejected["reason"][0]


def test_timestamptz_is_converted_to_utc() -> None:
    schema = SCHEMA.set(7, pa.field("event_timestamp", pa.timestamp("us", tz="+03:00")))
    msk = timezone(timedelta(hours=3))
    split = validate(
        batch({"event_timestamp": datetime(2026, 1, 1, 15, tzinfo=msk)}, schema=schema), TELEMETRY
    )
    assert split.clean["event_timestamp"].to_pylist() == [1767268800]


def test_rejected_rows_keep_their_source_values_as_json() -> None:
    split = validate(batch({"signal_amplitude": float("nan"), "muscle_group": 'q"x'}), TELEMETRY)
    row = split.rejected.row(0, named=True)
    assert row["key"] == 1
    assert '"signal_amplitude":"NaN"' in row["source_row"]
    assert '"muscle_group":"q\\"x"' in row["source_row"]
    assert '"event_timestamp":"2026-01-01T12:00:00Z"' in row["source_row"]


def test_orphans_are_counted_not_loaded() -> None:
    split = validate(
        batch({"user_id": 1}, {"user_id": 2}, {"user_id": 3}),
        TELEMETRY,
        pl.Series([1, 3], dtype=pl.Int32),
    )
    assert split.clean["user_id"].to_pylist() == [1, 3]
    assert split.orphans == 1
    assert split.rows == 3


def test_configured_prosthesis_types() -> None:
    split = validate(batch({"prosthesis_type": "foot"}), telemetry_spec(("foot",)))
    assert split.clean.num_rows == 1


def test_a_source_column_of_an_unexpected_type_fails_clearly() -> None:
    schema = SCHEMA.set(4, pa.field("signal_frequency", pa.string()))
    with pytest.raises(SourceError, match="signal_frequency has type String"):
        validate(batch({"signal_frequency": "100"}, schema=schema), TELEMETRY)


def test_a_missing_column_fails_clearly() -> None:
    with pytest.raises(SourceError, match="no column 'saved_ts'"):
        validate(batch({}).drop_columns(["saved_ts"]), TELEMETRY)


def test_duplicate_users_are_rejected() -> None:
    users = pa.table(
        {
            "user_id": pa.array([1, 1], pa.int32()),
            "user_uuid": ["a", "b"],
            "name": ["x", "y"],
            "email": ["e", "f"],
            "age": pa.array([None, None], pa.int32()),
            "gender": pa.array([None, None], pa.string()),
            "country": ["RU", "RU"],
            "address": ["a", "a"],
            "phone": ["p", "p"],
            "registration_ts": [datetime(2025, 1, 1)] * 2,
            "registered_at": [datetime(2025, 1, 1)] * 2,
            "__nonfinite": pa.array([None, None], pa.string()),
        }
    )
    split = validate(users, USERS)
    assert split.rejected["reason"].to_list() == ["user_id 1 appears more than once"] * 2


def test_rules_on_a_low_cardinality_column_reject_exactly_the_rows_with_a_bad_value() -> None:
    # Such a rule is judged once per distinct value; the rows must come out as if judged
    # one by one, NULLs included when the rule rejects them.
    spec = TableSpec(
        "t",
        "telemetry",
        "t",
        (
            Column("id", "int64"),
            Column("kind", "string", nullable=True, low_cardinality=True),
            Column("size", "int32"),
        ),
        key="id",
        quarantine=True,
        rules=(
            Rule("kind set", pl.col("kind").is_not_null(), "kind is missing"),
            Rule("kind known", pl.col("kind").is_in(["a", "b"]), pl.format("kind {}", "kind")),
            Rule("big b", (pl.col("kind") != "b") | (pl.col("size") > 5), "b too small"),
        ),
    )
    kinds = ["a", "x", None, "b", "b", "a", "x"]
    table = pa.table(
        {
            "id": pa.array(range(1, 8), pa.int64()),
            "kind": pa.array(kinds, pa.string()),
            "size": pa.array([1, 1, 1, 9, 1, 1, 1], pa.int32()),
        }
    )
    split = validate(table, spec)
    assert split.clean.column("id").to_pylist() == [1, 4, 6]
    assert split.clean.column("kind").to_pylist() == ["a", "b", "a"]
    assert split.clean.schema.field("kind").type == pa.dictionary(pa.uint32(), pa.large_string())
    assert dict(split.rejected.select("key", "reason").iter_rows()) == {
        2: "kind x",
        3: "kind is missing",
        5: "b too small",
        7: "kind x",
    }


def test_a_batch_without_infinite_timestamps_still_rejects_null_ones() -> None:
    split = validate(batch({}, {"saved_ts": None}, {"event_timestamp": None}), TELEMETRY)
    assert split.clean.column("id").to_pylist() == [1]
    assert split.rejected["reason"].to_list() == ["saved_ts is NULL", "event_timestamp is NULL"]


def test_a_batch_no_check_can_reject_is_loaded_whole() -> None:
    # Nullable text only, and the one rule passes for every distinct value: nothing to check.
    spec = TableSpec(
        "t",
        "crm",
        "t",
        (Column("kind", "string", nullable=True, low_cardinality=True),),
        key="kind",
        quarantine=True,
        rules=(Rule("kind known", pl.col("kind").is_in(["a", "b"]), "unknown kind"),),
    )
    split = validate(pa.table({"kind": ["a", None, "b"]}), spec)
    assert split.clean.column("kind").to_pylist() == ["a", None, "b"]
    assert split.rejected.height == 0
