"""Time bounds given to the Python API in every form the CLI takes (datetime, date, the seed's
text, ISO-8601 with `Z` or an offset), against a real PostgreSQL and chDB; anything else is a
ConfigError naming the argument, raised before anything is opened or recorded."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from olapsync import (
    ConfigError,
    Reports,
    import_olap_data,
    plan_import,
    status,
    user_report,
)
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.window import Window
from tests.support import checksums

JAN, FEB = datetime(2026, 1, 1), datetime(2026, 2, 1)

# The same window, [2026-01-01, 2026-02-01) UTC, spelled as a notebook might.
SAME_WINDOW = [
    ("2026-01-01", "2026-02-01"),
    ("2026-01-01 00:00:00", "2026-02-01 00:00:00"),  # the seed's spelling
    (date(2026, 1, 1), "2026-02-01T00:00:00Z"),
    ("2025-12-31T21:00:00-03:00", datetime(2026, 2, 1, 3, tzinfo=timezone(timedelta(hours=3)))),
]


@pytest.mark.parametrize(("start", "end"), SAME_WINDOW)
def test_plan_import_takes_every_form_the_cli_takes(config: Config, start: Any, end: Any) -> None:
    expected = plan_import(JAN, FEB, config=config)
    assert expected.source_rows_per_partition, "the generated data has January rows"
    plan = plan_import(start, end, config=config)
    assert plan.window == Window(JAN, FEB)
    assert plan.source_rows_per_partition == expected.source_rows_per_partition
    assert plan.partitions_to_replace == expected.partitions_to_replace
    dry = import_olap_data(start, end, config=config, dry_run=True)
    assert dry.window == Window(JAN, FEB)


def test_import_with_text_bounds_is_the_datetime_import(config: Config, ch: Target) -> None:
    import_olap_data(config=config)
    before = checksums(ch)
    result = import_olap_data("2026-01-01", "2026-02-01 00:00:00", config=config)
    assert result.window == Window(JAN, FEB)
    assert result.partitions_replaced == ["202601"]
    assert result.edge_rows_kept == 0
    assert checksums(ch) == before  # the same rows, rewritten
    by_date = import_olap_data(date(2026, 1, 15), "2026-02-01T00:00:00Z", config=config)
    assert by_date.window == Window(datetime(2026, 1, 15), FEB)
    assert by_date.edge_rows_kept > 0  # January before the 15th, kept
    assert checksums(ch) == before


def test_reports_take_every_form_the_cli_takes(config: Config) -> None:
    import_olap_data(config=config)
    end = datetime(2026, 3, 1, 23, 59, 59)
    forms = [
        ("2026-01-01", "2026-03-01 23:59:59"),
        (date(2026, 1, 1), "2026-03-01T23:59:59Z"),
        ("2026-01-01T03:00:00+03:00", end.replace(tzinfo=UTC)),
    ]
    seen = 0
    with Reports(config) as reports:
        for user_id in range(1, 6):
            expected = reports.user_report(user_id, JAN, end)
            seen += expected.total_events
            uuid = reports.target.scalar(
                f"SELECT user_uuid FROM {reports.target.t('users')} WHERE user_id = {user_id}"
            )
            for start_ts, end_ts in forms:
                assert reports.user_report(user_id, start_ts, end_ts) == expected
                assert reports.user_report_by_uuid(str(uuid), start_ts, end_ts) == expected
    assert seen > 0, "the users have events in the window"
    assert user_report(1, *forms[0], config=config) == user_report(1, JAN, end, config=config)


BAD_IMPORT_BOUNDS = [
    ({"telemetry_start_ts": 1767225600}, "telemetry_start_ts 1767225600 (type int) is not a time"),
    ({"telemetry_end_ts": "next tuesday"}, "telemetry_end_ts 'next tuesday' is not a timestamp"),
    ({"telemetry_end_ts": b"2026-02-01"}, "telemetry_end_ts b'2026-02-01' (type bytes)"),
    (
        {"telemetry_start_ts": "2026-03-01", "telemetry_end_ts": "2026-01-01"},
        "telemetry_start_ts is after telemetry_end_ts (2026-03-01 00:00:00 UTC > 2026-01-01 "
        "00:00:00 UTC): swap them.",
    ),
    ({"telemetry_start_ts": "2026-01-01", "telemetry_end_ts": date(2026, 1, 1)}, "not before"),
]


@pytest.mark.parametrize(("bounds", "message"), BAD_IMPORT_BOUNDS)
def test_a_bad_import_bound_is_a_config_error_and_records_nothing(
    config: Config, bounds: dict[str, Any], message: str
) -> None:
    calls = {
        "import_olap_data": lambda: import_olap_data(config=config, **bounds),
        "dry run": lambda: import_olap_data(config=config, dry_run=True, **bounds),
        "plan_import": lambda: plan_import(config=config, **bounds),
    }
    for name, call in calls.items():
        with pytest.raises(ConfigError, match=re.escape(message)):
            call()
        # No database, so no ledger row and no table: nothing was opened to write.
        assert status(config).tables == {}, name


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (20260101, None, "start_ts 20260101 (type int) is not a time"),
        (None, "soon", "end_ts 'soon' is not a timestamp"),
        ("2026-03-01", date(2026, 1, 1), "start_ts is after end_ts (2026-03-01 00:00:00 UTC >"),
    ],
)
def test_a_bad_report_bound_is_refused_before_clickhouse_is_opened(
    config: Config, start: Any, end: Any, message: str
) -> None:
    # The database does not exist: had ClickHouse been asked first, this would be a
    # TargetError saying so.
    with pytest.raises(ConfigError, match=re.escape(message)):
        user_report(1, start, end, config=config)
