"""The table the fingerprint tests load on both engines: the seed's telemetry columns, then
the other source types olapsync may meet, and the rules the tests check against."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings

from olapsync.specs import Column, TableSpec

EXAMPLES = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# The seed's telemetry columns, then the other source types olapsync may meet.
DDL = """
CREATE TABLE events (
    id bigint PRIMARY KEY,
    user_id integer,
    prosthesis_type text,
    muscle_group text,
    signal_frequency integer,
    signal_duration integer,
    signal_amplitude double precision,
    event_timestamp timestamp,
    saved_ts timestamp,
    amount numeric,
    ratio real,
    small smallint,
    code varchar(12),
    seen_at timestamptz,
    day date,
    token uuid,
    flag boolean
)"""
NAMES = [line.split()[0] for line in DDL.split("(", 1)[1].strip().splitlines()[:-1]]


def spec(time_column: str = "event_timestamp") -> TableSpec:
    """The table as olapsync declares it (kinds matter only on the ClickHouse side)."""
    kind = {"int64": ["id"], "float64": ["signal_amplitude", "amount", "ratio"]}
    kind |= {"datetime": ["event_timestamp", "saved_ts", "seen_at", "day"]}
    kind |= {"int32": ["user_id", "signal_frequency", "signal_duration", "small"]}
    of = {name: k for k, names in kind.items() for name in names}
    return TableSpec(
        name="events",
        source="telemetry",
        source_table="events",
        key="id",
        columns=tuple(
            Column(
                n,
                of.get(n, "string"),  # type: ignore[arg-type]
                nullable=n not in ("id", "event_timestamp"),
                low_cardinality=n in ("prosthesis_type", "muscle_group"),
            )
            for n in NAMES
        ),
        partition_by=f"toYYYYMM({time_column})",
        load="window",
        time_column=time_column,
    )


SPEC = spec()
TIME_SPECS = [spec("event_timestamp"), spec("seen_at"), spec("day")]  # timestamp, tz, date


def ints(bits: int) -> st.SearchStrategy[int]:
    return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


Draw = Callable[[st.SearchStrategy[Any]], Any]


def month(value: Any) -> str | None:
    """The row's month by Python's calendar: the rule the fingerprints must follow."""
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(UTC)
    return f"{value.year:04d}{value.month:02d}"
