"""A catalogue of bad source data. Each kind ends in a quarantine row with a reason, a clear
run failure, or the shrink guard: never a crash, never a silently changed value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import hypothesis.strategies as st
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from olapsync import DataError, ImportResult, SourceError, import_olap_data
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.specs import TELEMETRY
from olapsync.validate import validate
from tests.support import SMALL_EVENTS, TALLY, VALID, Source, checksums


@dataclass(frozen=True)
class Bad:
    name: str
    sql: str  # run on the source; {id} is the bad row's id
    reason: str  # expected in the quarantine reason


GOOD_ROW = {
    "user_id": "1",
    "prosthesis_type": "'arm'",
    "muscle_group": "'biceps'",
    "signal_frequency": "100",
    "signal_duration": "10",
    "signal_amplitude": "1.0",
    "event_timestamp": "'2025-10-01 10:00:00'",
    "saved_ts": "'2025-10-01 10:00:01'",
}


def row(**values: str) -> str:
    """An INSERT of a good row with some values replaced (SQL literals)."""
    return (
        "INSERT INTO telemetry_events VALUES ({id}, "
        + ", ".join({**GOOD_ROW, **values}.values())
        + ")"
    )


QUARANTINED = [
    *(Bad(f"NULL {c}", row(**{c: "NULL"}), f"{c} is NULL") for c in GOOD_ROW),
    Bad("unknown prosthesis_type", row(prosthesis_type="'foot'"), "prosthesis_type 'foot'"),
    Bad("NaN amplitude", row(signal_amplitude="'NaN'"), "signal_amplitude NaN"),
    Bad("+Infinity amplitude", row(signal_amplitude="'Infinity'"), "signal_amplitude inf"),
    Bad("-Infinity amplitude", row(signal_amplitude="'-Infinity'"), "signal_amplitude -inf"),
    Bad("negative duration", row(signal_duration="-1"), "signal_duration -1 is negative"),
    Bad("zero frequency", row(signal_frequency="0"), "signal_frequency 0 is not > 0"),
    Bad("empty muscle_group", row(muscle_group="''"), "muscle_group is empty"),
    Bad("blank muscle_group", row(muscle_group="'   '"), "muscle_group is empty"),
    Bad("before 1970", row(event_timestamp="'1969-12-31 23:59:59'"), "outside the ClickHouse"),
    Bad(
        "after 2106", row(event_timestamp="'2106-02-07 06:28:16'"), "2106-02-07 06:28:16 is outside"
    ),
    Bad(
        "'infinity' event_timestamp",
        row(event_timestamp="'infinity'"),
        "event_timestamp is 'infinity'",
    ),
    Bad("'-infinity' saved_ts", row(saved_ts="'-infinity'"), "saved_ts is '-infinity'"),
    Bad(
        "user_id beyond Int32",
        "ALTER TABLE telemetry_events ALTER COLUMN user_id TYPE bigint; "
        + row(user_id="2147483648"),
        "user_id 2147483648 does not fit Int32",
    ),
]


def run(config: Config, **kw: Any) -> ImportResult:
    return import_olap_data(config=config, **kw)


@pytest.mark.parametrize("bad", QUARANTINED, ids=lambda b: b.name)
def test_bad_rows_are_quarantined_with_a_reason(
    bad: Bad, config: Config, source: Source, ch: Target
) -> None:
    bad_id = 990_001
    source.execute(bad.sql.format(id=bad_id))
    result = run(config)
    reasons = ch.rows(
        f"SELECT reason, source_row FROM {ch.t('telemetry_events_rejected')} WHERE id = {bad_id}"
    )
    assert len(reasons) == 1, bad.name
    assert bad.reason in reasons[0][0]
    assert f'"id":{bad_id}' in reasons[0][1]
    # Everything else arrived unchanged.
    valid = source.execute(f"SELECT count(*) FROM telemetry_events WHERE {VALID}")[0][0]
    assert ch.count("telemetry_events") == valid == result.events_loaded
    TALLY["bad_kinds"] += 1
    TALLY["lost_rows"] += SMALL_EVENTS - result.events_loaded


def test_timestamptz_columns_load_the_same_instants(
    config: Config, source: Source, ch: Target
) -> None:
    run(config)
    before = checksums(ch)
    source.execute("SET TIME ZONE 'Asia/Kolkata'")
    source.execute(
        "ALTER TABLE telemetry_events "
        "ALTER COLUMN event_timestamp TYPE timestamptz USING event_timestamp AT TIME ZONE 'UTC', "
        "ALTER COLUMN saved_ts TYPE timestamptz USING saved_ts AT TIME ZONE 'UTC'"
    )
    run(config)
    assert checksums(ch) == before
    TALLY["bad_kinds"] += 1


def test_a_source_column_of_an_unexpected_type_fails_clearly(
    config: Config, source: Source, ch: Target
) -> None:
    run(config)
    before = checksums(ch)
    # Text in an integer column loads where it holds whole numbers (test_source_types.py);
    # an interval is no number at all.
    source.execute(
        "ALTER TABLE telemetry_events ALTER COLUMN signal_frequency TYPE interval "
        "USING signal_frequency * interval '1 second'"
    )
    with pytest.raises(SourceError, match=r"signal_frequency has type interval, which cannot"):
        run(config)
    assert checksums(ch) == before
    TALLY["bad_kinds"] += 1


def test_a_missing_source_column_fails_clearly(config: Config, source: Source) -> None:
    source.execute("ALTER TABLE telemetry_events DROP COLUMN muscle_group")
    with pytest.raises(SourceError, match="muscle_group"):
        run(config)
    TALLY["bad_kinds"] += 1


def test_an_empty_source_table_empties_the_target(
    config: Config, source: Source, ch: Target
) -> None:
    run(config)
    source.execute("DELETE FROM telemetry_events")
    result = run(config)
    assert result.events_loaded == 0
    assert ch.count("telemetry_events") == 0
    assert len(result.partitions_dropped) == 7
    TALLY["bad_kinds"] += 1


def test_users_that_shrank_by_90_percent_hit_the_guard(
    config: Config, source: Source, ch: Target
) -> None:
    run(config)
    before = checksums(ch), ch.count("users")
    source.execute("DELETE FROM users WHERE user_id % 10 <> 0")
    with pytest.raises(DataError, match="less than half"):
        run(config)
    assert (checksums(ch), ch.count("users")) == before
    TALLY["bad_kinds"] += 1


def test_a_users_row_that_cannot_be_loaded_fails_the_run(
    config: Config, source: Source, ch: Target
) -> None:
    source.execute("ALTER TABLE users ALTER COLUMN registered_at DROP NOT NULL")
    source.execute("UPDATE users SET registered_at = NULL WHERE user_id = 9")
    with pytest.raises(DataError, match="user_id 9: registered_at is NULL"):
        run(config)
    assert ch.count("telemetry_events") == 0
    TALLY["bad_kinds"] += 1


# -- property: every row is loaded unchanged or rejected with a reason ---------------------

EPOCH_MIN = datetime(1960, 1, 1)
ints = st.one_of(
    st.none(), st.integers(-(2**40), 2**40), st.sampled_from([0, -1, 2**31 - 1, 2**31])
)
floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
times = st.one_of(st.none(), st.datetimes(min_value=EPOCH_MIN, max_value=datetime(2200, 1, 1)))
texts = st.one_of(st.none(), st.sampled_from(["arm", "hand", "leg", "foot", "", " ", "ARM"]))
rows = st.fixed_dictionaries(
    {
        "id": st.integers(1, 2**62),
        "user_id": ints,
        "prosthesis_type": texts,
        "muscle_group": texts,
        "signal_frequency": ints,
        "signal_duration": ints,
        "signal_amplitude": floats,
        "event_timestamp": times,
        "saved_ts": times,
    }
)
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("user_id", pa.int64()),
        ("prosthesis_type", pa.string()),
        ("muscle_group", pa.string()),
        ("signal_frequency", pa.int64()),
        ("signal_duration", pa.int64()),
        ("signal_amplitude", pa.float64()),
        ("event_timestamp", pa.timestamp("us")),
        ("saved_ts", pa.timestamp("us")),
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, min_size=1, max_size=20, unique_by=lambda r: r["id"]))
def test_every_row_is_loaded_unchanged_or_rejected_with_a_reason(batch: list[dict]) -> None:
    split = validate(pa.Table.from_pylist(batch, schema=SCHEMA), TELEMETRY)
    clean = {r["id"]: r for r in split.clean.to_pylist()}
    rejected = dict(
        zip(split.rejected["key"].to_list(), split.rejected["reason"].to_list(), strict=True)
    )
    assert clean.keys().isdisjoint(rejected)
    assert len(clean) + len(rejected) == len(batch)
    for source_row in batch:
        if source_row["id"] in rejected:
            assert rejected[source_row["id"]]
            continue
        loaded = clean[source_row["id"]]
        for name in (
            "user_id",
            "prosthesis_type",
            "muscle_group",
            "signal_frequency",
            "signal_duration",
        ):
            assert loaded[name] == source_row[name], name
        assert loaded["signal_amplitude"] == source_row["signal_amplitude"]
        assert math.isfinite(loaded["signal_amplitude"])
        for name in ("event_timestamp", "saved_ts"):
            seconds = int(source_row[name].replace(tzinfo=UTC).timestamp() // 1)
            assert loaded[name] == seconds, name


def test_the_property_test_sees_both_outcomes() -> None:
    # Guard against a generator that only ever makes rejects (or only clean rows).
    frame = (
        pl.DataFrame(
            {
                "id": [1, 2],
                "user_id": [1, None],
                "prosthesis_type": ["arm", "arm"],
                "muscle_group": ["b", "b"],
                "signal_frequency": [1, 1],
                "signal_duration": [1, 1],
                "signal_amplitude": [1.0, 1.0],
                "event_timestamp": [datetime(2026, 1, 1)] * 2,
                "saved_ts": [datetime(2026, 1, 1)] * 2,
            },
        )
        .to_arrow()
        .cast(SCHEMA)
    )
    split = validate(frame, TELEMETRY)
    assert split.clean.num_rows == 1
    assert split.rejected.height == 1
