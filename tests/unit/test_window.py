from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from olapsync.errors import ConfigError
from olapsync.specs import TELEMETRY
from olapsync.validate import Split
from olapsync.window import (
    Window,
    as_utc,
    check_order,
    epoch,
    import_window,
    parse_ts,
    partition_id,
    plan_partitions,
    report_bounds,
    rows_per_month,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01 12:30:15", datetime(2026, 1, 1, 12, 30, 15, tzinfo=UTC)),
        ("2026-01-01T12:30:15", datetime(2026, 1, 1, 12, 30, 15, tzinfo=UTC)),
        ("2026-01-01T12:30:15Z", datetime(2026, 1, 1, 12, 30, 15, tzinfo=UTC)),
        ("2026-01-01T15:30:15+03:00", datetime(2026, 1, 1, 12, 30, 15, tzinfo=UTC)),
    ],
)
def test_parse_ts_gives_utc(text: str, expected: datetime) -> None:
    assert parse_ts(text) == expected


def test_parse_ts_rejects_garbage_quoting_it() -> None:
    with pytest.raises(ConfigError, match="'next tuesday' is not a timestamp"):
        parse_ts("next tuesday")


def test_naive_is_utc_never_local_time() -> None:
    assert epoch(datetime(1970, 1, 2)) == 86400
    plus3 = timezone(timedelta(hours=3))
    assert epoch(datetime(1970, 1, 2, 3, tzinfo=plus3)) == 86400


def test_window_is_half_open() -> None:
    w = Window(datetime(2026, 1, 15), datetime(2026, 2, 1))
    assert w.contains(datetime(2026, 1, 15))
    assert not w.contains(datetime(2026, 2, 1))
    assert w.contains(datetime(2026, 1, 31, 23, 59, 59))
    assert w.months() == ["202601"]
    assert Window(datetime(2025, 12, 31), datetime(2026, 2, 1, 0, 0, 1)).months() == [
        "202512",
        "202601",
        "202602",
    ]


def test_reversed_or_empty_window_is_an_error() -> None:
    with pytest.raises(ConfigError, match="is not before its end"):
        Window(datetime(2026, 2, 1), datetime(2026, 1, 1))
    with pytest.raises(ConfigError):
        Window(datetime(2026, 2, 1), datetime(2026, 2, 1))


def test_touches_and_covers() -> None:
    w = Window(datetime(2026, 1, 15), datetime(2026, 3, 1))
    assert w.touches("202601")
    assert not w.covers("202601")
    assert w.touches("202602")
    assert w.covers("202602")
    assert not w.touches("202603")
    assert not w.touches("202512")
    assert Window().covers("197001")
    assert Window(start=datetime(2026, 2, 1)).covers("203001")


def test_partition_id_of_the_last_second_of_a_month() -> None:
    assert partition_id(datetime(2026, 1, 31, 23, 59, 59)) == "202601"


def test_plan_replaces_staged_drops_emptied_and_copies_edges() -> None:
    w = Window(datetime(2026, 1, 15), datetime(2026, 3, 1))
    target = {"202512", "202601", "202602", "202603"}
    plan = plan_partitions(w, target, staged={"202601"}, cleaned={"202512"})
    assert plan.edge == ("202601",)
    assert plan.replace == ("202601",)
    # 202602 is covered and the source has nothing for it; 202512 held only orphans.
    assert plan.drop == ("202512", "202602")
    assert "202603" not in plan.drop


def test_full_window_drops_what_the_source_no_longer_has() -> None:
    plan = plan_partitions(Window(), {"202509", "202510"}, {"202510", "202511"})
    assert plan.replace == ("202510", "202511")
    assert plan.drop == ("202509",)
    assert plan.edge == ()


def test_report_bounds_truncate_to_the_second_and_never_leave_datetime() -> None:
    from olapsync.queries import window_bounds

    assert window_bounds(None, None) == (0, 2**32 - 1)
    # The one rule of every window (issue 15 item 1): bounds truncated to the stored second.
    assert window_bounds(
        datetime(2026, 1, 1, 0, 0, 0, 500000), datetime(2026, 1, 1, 0, 0, 1, 500000)
    ) == (
        1767225600,
        1767225601,
    )
    assert window_bounds(datetime(1, 1, 1), datetime(9999, 1, 1)) == (0, 2**32 - 1)
    assert window_bounds(datetime(150, 2, 20), datetime(168, 8, 30)) == (1, 0)
    assert window_bounds(datetime(2200, 1, 1), None) == (1, 0)


def test_partition_counts_agree_with_partition_id_at_month_edges() -> None:
    # The importer counts rows per month for progress with day arithmetic; it must bucket
    # exactly as ClickHouse's toYYYYMM does, from the first second to the last.
    stamps = [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1970, 1, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1970, 2, 1, tzinfo=UTC),
        datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
        datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC),
    ]
    seconds = pa.array([epoch(ts) for ts in stamps], pa.uint32())
    split = Split(clean=pa.table({"event_timestamp": seconds}), rejected=pl.DataFrame(), orphans=0)
    expected: dict[str, int] = {}
    for ts in stamps:
        expected[partition_id(ts)] = expected.get(partition_id(ts), 0) + 1
    assert rows_per_month(split.clean.column(TELEMETRY.time_column)) == expected


JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 1, 1),  # naive: UTC
        datetime(2026, 1, 1, 3, tzinfo=timezone(timedelta(hours=3))),
        date(2026, 1, 1),  # a date: its midnight, UTC
        "2026-01-01",
        "2026-01-01 00:00:00",  # the seed's spelling
        "2026-01-01T00:00:00Z",
        "2025-12-31T19:00:00-05:00",
    ],
)
def test_every_time_bound_form_the_cli_takes_is_the_same_instant(value: object) -> None:
    assert as_utc(value, name="telemetry_start_ts") == JAN_1
    assert import_window(value, None).start == JAN_1
    assert report_bounds(None, value) == (None, JAN_1)
    assert Window(value, None).start == JAN_1  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (1767225600, "telemetry_start_ts 1767225600 (type int) is not a time"),
        (b"2026-01-01", "telemetry_start_ts b'2026-01-01' (type bytes) is not a time"),
        (["2026-01-01"], "telemetry_start_ts ['2026-01-01'] (type list) is not a time"),
        ("2026-13-01", "telemetry_start_ts '2026-13-01' is not a timestamp"),
        ("yesterday", "telemetry_start_ts 'yesterday' is not a timestamp"),
        ("", "telemetry_start_ts '' is not a timestamp"),
    ],
)
def test_anything_else_is_a_config_error_naming_the_argument(value: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        import_window(value, None)
    with pytest.raises(ConfigError, match="end_ts"):
        report_bounds(None, value)


def test_an_offset_past_year_one_is_clamped_not_a_crash() -> None:
    assert parse_ts("0001-01-01T00:00:00+01:00") == datetime.min.replace(tzinfo=UTC)
    assert parse_ts("9999-12-31T23:00:00-05:00") == datetime.max.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-03-01", "2026-01-01"),
        (date(2026, 1, 2), datetime(2026, 1, 1, 23, 59, 59)),
        ("2026-01-01T00:00:00.7", "2026-01-01 00:00:00.2"),  # the same second, reversed
    ],
)
def test_a_reversed_window_is_refused_in_the_services_words(start: object, end: object) -> None:
    with pytest.raises(ConfigError, match=r"^start_ts is after end_ts \(.+ > .+\): swap them\.$"):
        report_bounds(start, end)
    with pytest.raises(ConfigError, match=r"^telemetry_start_ts is after telemetry_end_ts"):
        import_window(start, end)


def test_equal_bounds_are_one_instant_for_a_report_and_empty_for_an_import() -> None:
    # A report's window is [start, end], an import's [start, end).
    assert report_bounds("2026-01-01", JAN_1) == (JAN_1, JAN_1)
    check_order(JAN_1, JAN_1)
    with pytest.raises(ConfigError, match="is not before its end"):
        import_window("2026-01-01", JAN_1)
