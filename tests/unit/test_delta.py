"""The sync's month decisions: append when every candidate is new or already loaded, rebuild
when a row changed, moved, repeats, or may have been seen and left out before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from olapsync.delta import (
    CANDIDATE_SCHEMA,
    PRESENT_SCHEMA,
    Watermark,
    classify,
    parse_lag,
)
from olapsync.errors import ConfigError

LAG = timedelta(minutes=15)
PREVIOUS = Watermark(
    value=datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
    max_seen=datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
)
AFTER = datetime(2026, 3, 10, 12, 5, tzinfo=UTC)  # saved after the previous run's snapshot
BEFORE = datetime(2026, 3, 10, 11, 50, tzinfo=UTC)  # within the lag, at or before max_seen


def row(
    id_: int,
    month: str | None = "202603",
    *,
    saved: datetime = AFTER,
    event: datetime | None = None,
    status: str = "clean",
    user: int = 1,
    fp: int = 0,
) -> dict[str, Any]:
    if event is None and month is not None:
        event = datetime(int(month[:4]), int(month[4:]), 9, tzinfo=UTC)
    return {
        "id": id_,
        "month": month,
        "user_id": user,
        "saved_ts": saved,
        "event_ts": event,
        "status": status,
        "fp": fp or id_ * 1000003,
    }


def candidates(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=CANDIDATE_SCHEMA)


def present(*rows: tuple[int, str, bool]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"id": i, "target_month": m, "same": s} for i, m, s in rows], schema=PRESENT_SCHEMA
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("90s", 90), ("0", 0), ("2h", 7200), ("1h30m", 5400), ("1d", 86400)],
)
def test_lag_forms(text: str, seconds: int) -> None:
    assert parse_lag(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "15", "m", "15 minutes", "-5m", "1.5h", "15m garbage"])
def test_lag_rejects_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a duration"):
        parse_lag(text)


def test_new_rows_take_the_append_path_with_their_fingerprint() -> None:
    result = classify(candidates(row(1), row(2)), present(), PREVIOUS, lag=LAG)
    change = result.months["202603"]
    assert change.action == "append"
    assert change.reasons == ("new rows",)
    assert change.rows_new == 2
    assert change.fingerprint_delta.rows == 2
    assert change.fingerprint_delta.hash == (1000003 + 2 * 1000003) % 2**64
    assert sorted(result.insert_ids.to_list()) == [1, 2]


def test_rows_seen_again_within_the_lag_change_nothing() -> None:
    result = classify(
        candidates(row(1, saved=BEFORE), row(2, saved=BEFORE)),
        present((1, "202603", True), (2, "202603", True)),
        PREVIOUS,
        lag=LAG,
    )
    assert result.months == {}
    assert result.insert_ids.is_empty()


def test_late_rows_are_named_and_appended() -> None:
    late = row(7, "202512", event=datetime(2025, 12, 3, tzinfo=UTC))
    result = classify(candidates(late, row(8)), present(), PREVIOUS, lag=LAG)
    assert result.months["202512"].reasons == ("late rows",)
    assert result.months["202512"].action == "append"
    assert result.months["202603"].reasons == ("new rows",)


def test_a_changed_row_rebuilds_its_month() -> None:
    result = classify(
        candidates(row(1, saved=BEFORE), row(2)),
        present((1, "202603", False)),
        PREVIOUS,
        lag=LAG,
    )
    assert result.months["202603"].action == "rebuild"
    assert result.insert_ids.is_empty()


def test_a_row_that_moved_month_rebuilds_both() -> None:
    result = classify(candidates(row(1)), present((1, "202511", True)), PREVIOUS, lag=LAG)
    assert result.months["202603"].action == "rebuild"
    assert result.months["202511"].action == "rebuild"


def test_a_repeated_id_rebuilds_so_every_copy_is_quarantined() -> None:
    result = classify(candidates(row(5), row(5, "202602")), present(), PREVIOUS, lag=LAG)
    assert result.months["202603"].action == "rebuild"
    assert result.months["202602"].action == "rebuild"


@pytest.mark.parametrize("status", ["rejected", "orphan"])
def test_left_out_rows_after_the_watermark_are_new(status: str) -> None:
    result = classify(candidates(row(9, status=status)), present(), PREVIOUS, lag=LAG)
    change = result.months["202603"]
    assert change.action == "append"
    assert change.fingerprint_delta.rows == 1  # the source grew by one row...
    assert result.insert_ids.is_empty()  # ...that is not loaded


@pytest.mark.parametrize("status", ["rejected", "orphan"])
def test_left_out_rows_the_last_run_may_have_seen_rebuild(status: str) -> None:
    # It may have been counted already: adding it again would make verify cry wolf.
    result = classify(candidates(row(9, saved=BEFORE, status=status)), present(), PREVIOUS, lag=LAG)
    assert result.months["202603"].action == "rebuild"


def test_a_late_commit_within_the_lag_is_appended() -> None:
    result = classify(candidates(row(3, saved=BEFORE)), present(), PREVIOUS, lag=LAG)
    assert result.months["202603"].action == "append"
    assert result.insert_ids.to_list() == [3]


def test_rows_of_a_returned_user_rebuild_their_month() -> None:
    result = classify(
        candidates(row(3, saved=BEFORE, user=42)),
        present(),
        PREVIOUS,
        lag=LAG,
        orphan_users={"202603": {42}},
    )
    assert result.months["202603"].reasons == ("users returned",)


def test_rows_without_event_time_have_their_own_bucket() -> None:
    result = classify(candidates(row(4, None, status="rejected")), present(), PREVIOUS, lag=LAG)
    assert result.months[None].action == "append"


def test_without_a_previous_run_everything_is_new() -> None:
    result = classify(candidates(row(1, saved=BEFORE, status="orphan")), present(), None, lag=LAG)
    assert result.months["202603"].action == "append"
