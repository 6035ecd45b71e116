"""Window bounds, whatever their precision or range (issue 15, items 1 and 4).

One rule: every bound is truncated to the whole second, as ClickHouse's `DateTime` stores
times, on both sides of a run (the PostgreSQL read and the copy of kept rows) and in the
report; a bound beyond `DateTime`'s range leaves the window open on that side. So a window
import never loses or doubles a row, and no bound a user can type crashes a run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from olapsync import Reports, import_olap_data, sync
from olapsync.clickhouse import Target
from olapsync.config import Config
from tests.support import Source, checksums, cli, urls

# Two rows in the same second, either side of its middle; and one in the last instant of
# January, which ClickHouse stores as January's last second.
ROWS = """
INSERT INTO telemetry_events VALUES
 (90001, 3, 'arm', 'biceps', 100, 10, 1.0, '2026-01-15 12:00:00.200', '2026-01-15 12:00:01'),
 (90002, 3, 'arm', 'biceps', 100, 11, 1.0, '2026-01-15 12:00:00.700', '2026-01-15 12:00:01'),
 (90003, 3, 'leg', 'calf', 100, 12, 1.0, '2026-01-31 23:59:59.999999', '2026-02-01 00:00:01')
"""


@pytest.fixture
def fractional(source: Source) -> Source:
    source.execute(ROWS)
    return source


@pytest.fixture
def fresh(config: Config) -> Iterator[Any]:
    made: list[Config] = []

    def import_all() -> dict[str, tuple[int, int]]:
        cfg = config.with_(database="ref_" + uuid.uuid4().hex[:10])
        made.append(cfg)
        import_olap_data(config=cfg)
        with Target(cfg) as t:
            return checksums(t)

    yield import_all
    for cfg in made:
        with Target(cfg) as t:
            t.command(f"DROP DATABASE IF EXISTS `{cfg.database}` SYNC")


def copies(ch: Target, *ids: int) -> list[int]:
    table = ch.t("telemetry_events")
    return [int(ch.scalar(f"SELECT count() FROM {table} WHERE id = {i}")) for i in ids]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        # The two examples: the .200 row was lost, and doubled.
        (datetime(2026, 1, 15, 12, 0, 0, 500000), datetime(2026, 2, 1)),
        (datetime(2026, 1, 1), datetime(2026, 1, 15, 12, 0, 0, 500000)),
        # The same second given with an offset, and microseconds at a month's edge.
        (
            datetime(2026, 1, 15, 15, 0, 0, 600000, tzinfo=timezone(timedelta(hours=3))),
            datetime(2026, 3, 1),
        ),
        (datetime(2025, 12, 1), datetime(2026, 1, 31, 23, 59, 59, 999999)),
        (datetime(2026, 1, 31, 23, 59, 59, 500000), datetime(2026, 2, 15)),
    ],
)
def test_a_fractional_bound_neither_loses_nor_doubles_a_row(
    config: Config, fractional: Source, ch: Target, fresh: Any, start: datetime, end: datetime
) -> None:
    import_olap_data(config=config)
    assert copies(ch, 90001, 90002, 90003) == [1, 1, 1]
    import_olap_data(start, end, config=config)
    assert copies(ch, 90001, 90002, 90003) == [1, 1, 1]
    assert checksums(ch) == fresh()


def test_the_report_truncates_its_bounds_the_same_way(
    config: Config, fractional: Source, ch: Target
) -> None:
    import_olap_data(config=config)

    def events(start: datetime | None, end: datetime | None) -> int:
        with Reports(config) as reports:
            return reports.user_report(3, start, end).total_events

    second = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
    both = events(second, second)
    assert both >= 2  # both rows are stored in that second
    # Any fraction of that second names the same stored second, at either end.
    for fraction in (1, 500000, 999999):
        at = second + timedelta(microseconds=fraction)
        assert events(at, at) == both
        assert events(at, None) == events(second, None)
        assert events(None, at) == events(None, second)


@pytest.mark.parametrize(
    "bounds",
    [
        ("--telemetry-start-ts", "1960-01-01"),  # the examples
        ("--telemetry-end-ts", "2200-01-01"),
        ("--telemetry-start-ts", "1900-01-01", "--telemetry-end-ts", "2300-01-01"),
        # A window wholly beyond the range: only the source's 'infinity' row is in it, and
        # it is rejected (the ratio guard would stop the run, so it is lifted).
        ("--telemetry-start-ts", "2200-01-01", "--max-rejected-ratio", "1"),
        ("--telemetry-end-ts", "1960-01-01"),
        ("--telemetry-start-ts", "0001-01-01", "--telemetry-end-ts", "9999-12-31"),
    ],
)
def test_bounds_beyond_datetime_work(
    source: Source, tmp_path: Any, bounds: tuple[str, ...]
) -> None:
    folder = tmp_path / "ch"
    assert cli("import", env=urls(source, folder)).returncode == 0
    done = cli("import", *bounds, "--json", env=urls(source, folder))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_a_window_shorter_than_a_second_is_refused_up_front(source: Source, tmp_path: Any) -> None:
    done = cli(
        "import",
        "--telemetry-start-ts",
        "2026-01-15T12:00:00.2",
        "--telemetry-end-ts",
        "2026-01-15T12:00:00.7",
        env=urls(source, tmp_path / "ch"),
    )
    assert done.returncode == 2, done.stderr
    assert "whole seconds" in done.stderr


def test_sync_puts_the_last_instant_of_a_month_in_that_month(
    config: Config, fractional: Source, ch: Target, fresh: Any
) -> None:
    sync(config=config)
    fractional.execute(
        "INSERT INTO telemetry_events VALUES (90004, 3, 'hand', 'biceps', 100, 10, 1.0, "
        "'2026-02-28 23:59:59.999999', now() AT TIME ZONE 'UTC')"
    )
    result = sync(config=config)
    # Late: the last run was already filling March (the source's latest rows).
    assert result.months == {"202602": ["late rows"]}
    assert copies(ch, 90003, 90004) == [1, 1]
    assert checksums(ch) == fresh()
