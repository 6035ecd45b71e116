"""The source query converts each column to its kind from the type the catalog reports, and
validation turns a value that did not convert into a rejected row with a reason."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from olapsync.casts import SourceType
from olapsync.errors import SourceError
from olapsync.specs import NONFINITE, TELEMETRY, Column, TableSpec
from olapsync.validate import validate

SEED = {
    "id": SourceType("bigint", "int8", "N"),
    "user_id": SourceType("integer", "int4", "N"),
    "prosthesis_type": SourceType("text", "text", "S"),
    "muscle_group": SourceType("text", "text", "S"),
    "signal_frequency": SourceType("integer", "int4", "N"),
    "signal_duration": SourceType("integer", "int4", "N"),
    "signal_amplitude": SourceType("double precision", "float8", "N"),
    "event_timestamp": SourceType("timestamp without time zone", "timestamp", "D"),
    "saved_ts": SourceType("timestamp without time zone", "timestamp", "D"),
}


def select_list(**changed: SourceType) -> dict[str, str]:
    """Each output column's SELECT expression, for the seed's types with `changed` ones."""
    sql = TELEMETRY.source_query(types={**SEED, **changed})
    body = sql.removeprefix("SELECT ").split(' FROM "telemetry_events"')[0]
    out = {}
    for name in [c.name for c in TELEMETRY.columns] + [NONFINITE]:
        marker = f' AS "{name}"'
        expr, _, body = body.partition(marker)
        out[name] = expr.removeprefix(", ")
    return out


def test_the_seeds_types_are_read_as_they_are() -> None:
    # No cast where none is needed: the seed's read costs what it did before types were read.
    exprs = select_list()
    for name in ("id", "user_id", "prosthesis_type", "signal_amplitude"):
        assert exprs[name] == f'"{name}"'
    assert exprs["event_timestamp"].startswith('CASE WHEN isfinite("event_timestamp")')
    untyped = TELEMETRY.source_query()
    for name in ("prosthesis_type", "muscle_group"):
        untyped = untyped.replace(f'"{name}"::text', f'"{name}"')
    assert TELEMETRY.source_query(types=SEED) == untyped


def test_numeric_is_converted_behind_a_guard_and_flagged_when_it_does_not_fit() -> None:
    exprs = select_list(signal_amplitude=SourceType("numeric(12,4)", "numeric", "N"))
    assert exprs["signal_amplitude"].startswith('CASE WHEN (abs("signal_amplitude") <= ')
    assert exprs["signal_amplitude"].endswith('THEN "signal_amplitude"::float8 END')
    assert "'signal_amplitude', CASE WHEN NOT (abs(" in exprs[NONFINITE]


@pytest.mark.parametrize(
    ("source_type", "expected"),
    [
        (SourceType("real", "float4", "N"), '"signal_frequency" = trunc("signal_frequency")'),
        (SourceType("text", "text", "S"), '"signal_frequency"::text ~ '),
        (SourceType("smallint", "int2", "N"), None),
        (SourceType("bigint", "int8", "N"), None),  # validation checks the Int32 range
    ],
    ids=["real", "text", "smallint", "bigint"],
)
def test_an_integer_column_is_read_from_any_number_or_text(
    source_type: SourceType, expected: str | None
) -> None:
    exprs = select_list(signal_frequency=source_type)
    if expected is None:
        assert exprs["signal_frequency"] == '"signal_frequency"'
    else:
        assert expected in exprs["signal_frequency"]
        assert "::int4 END" in exprs["signal_frequency"]


def test_a_domain_is_read_as_its_base_type_and_any_type_as_text() -> None:
    exprs = select_list(
        signal_duration=SourceType("duration", "int4", "N", "integer", domain=True),
        muscle_group=SourceType("muscle", "muscle", "E"),  # an enum
        prosthesis_type=SourceType("uuid", "uuid", "U"),
    )
    assert exprs["signal_duration"] == '"signal_duration"::integer'
    assert exprs["muscle_group"] == '"muscle_group"::text'
    assert exprs["prosthesis_type"] == '"prosthesis_type"::text'


@pytest.mark.parametrize(
    ("column", "source_type", "message"),
    [
        ("signal_frequency", SourceType("boolean", "bool", "B"), "boolean, .* as Int32"),
        ("event_timestamp", SourceType("text", "text", "S"), "text, .* as DateTime"),
        ("signal_amplitude", SourceType("money", "money", "N"), "money, .* as Float64"),
    ],
)
def test_a_type_no_kind_can_be_read_from_is_refused(
    column: str, source_type: SourceType, message: str
) -> None:
    with pytest.raises(SourceError, match=f"telemetry_events.{column} has type {message}"):
        TELEMETRY.source_query(types={**SEED, column: source_type})


def test_a_missing_column_is_refused_by_name() -> None:
    types = {k: v for k, v in SEED.items() if k != "muscle_group"}
    with pytest.raises(SourceError, match="has no column 'muscle_group'"):
        TELEMETRY.source_query(types=types)


def test_a_value_that_did_not_convert_is_rejected_with_its_source_text() -> None:
    spec = TableSpec(
        "t",
        "crm",
        "t",
        (Column("id", "int64"), Column("n", "int32"), Column("x", "float64", nullable=True)),
        key="id",
    )
    flags = [
        None,
        json.dumps({"n": "1.5", "x": None}),
        json.dumps({"n": None, "x": "NaN"}),
        json.dumps({"n": None, "x": None}),  # x is a plain NULL
    ]
    batch = pa.table(
        {
            "id": pa.array([1, 2, 3, 4], pa.int64()),
            "n": pa.array([7, None, 8, 9], pa.int32()),
            "x": pa.array([0.5, 1.0, None, None], pa.float64()),
            NONFINITE: pa.array(flags, pa.string()),
        }
    )
    split = validate(batch, spec)
    assert split.clean.column("id").to_pylist() == [1, 4]
    rejected = {k: (why, row) for k, why, row in split.rejected.iter_rows()}
    assert rejected[2][0] == "n '1.5' is not a whole number in the Int32 range"
    assert json.loads(rejected[2][1])["n"] == "1.5"
    assert rejected[3][0] == "x 'NaN' is not a finite number in the Float64 range"
    assert json.loads(rejected[3][1])["x"] == "NaN"
