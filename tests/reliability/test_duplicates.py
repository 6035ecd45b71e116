"""Repeated ids (issue 15, item 5): `id` is the row key. A source without a primary key can
hold an id twice; every copy is quarantined with a reason naming the key, counted among the
rejected rows, and held to the reject ratio, wherever the copies are: in one batch or
several, in one month or two, in months a window keeps, or arriving by a sync."""

from __future__ import annotations

import json

import pytest

from olapsync import DataError, import_olap_data, sync, verify
from olapsync.clickhouse import Target
from olapsync.config import Config
from tests.support import TALLY, Source

COPY = """
INSERT INTO telemetry_events
SELECT id, user_id, prosthesis_type, muscle_group, signal_frequency + 1, signal_duration,
       signal_amplitude, %(at)s::timestamp, saved_ts
FROM telemetry_events WHERE id = %(id)s
"""


@pytest.fixture
def keyless(source: Source) -> Source:
    source.execute("ALTER TABLE telemetry_events DROP CONSTRAINT telemetry_events_pkey")
    return source


def copy(source: Source, id_: int, at: str) -> None:
    source.execute(COPY, {"id": id_, "at": at})


def quarantined(ch: Target, id_: int) -> list[tuple[str, dict[str, object]]]:
    rows = ch.rows(
        f"SELECT reason, source_row FROM {ch.t('telemetry_events_rejected')} WHERE id = {id_}"
    )
    return [(str(r), json.loads(s)) for r, s in rows]


def loaded(ch: Target, id_: int) -> int:
    return int(ch.scalar(f"SELECT count() FROM {ch.t('telemetry_events')} WHERE id = {id_}"))


def test_the_issue_s_examples_quarantine_every_copy(
    config: Config, keyless: Source, ch: Target
) -> None:
    at_500 = keyless.execute("SELECT event_timestamp FROM telemetry_events WHERE id = 500")[0][0]
    copy(keyless, 500, str(at_500))  # twice in one month
    copy(keyless, 600, "2025-12-10 10:00:00")  # once in December...
    keyless.execute(
        "UPDATE telemetry_events SET event_timestamp = '2026-02-10 10:00:00' "
        "WHERE id = 600 AND event_timestamp < '2025-12-01'"
    )  # ...once in February
    result = import_olap_data(config=config)
    assert (loaded(ch, 500), loaded(ch, 600)) == (0, 0)
    for id_, months in ((500, None), (600, "202512, 202602")):
        copies = quarantined(ch, id_)
        assert len(copies) == 2
        for reason, row in copies:
            assert reason.startswith(f"id {id_} appears 2 times")
            assert months is None or months in reason
            assert row["id"] == id_
    assert result.duplicates_rejected == 4
    assert result.events_rejected >= 4
    TALLY["bad_kinds"] += 1


def test_copies_in_different_batches_are_found(config: Config, keyless: Source, ch: Target) -> None:
    # The test config reads 2,000 rows a batch: the first and the last row are far apart.
    copy(keyless, 1, "2026-03-30 10:00:00")
    import_olap_data(config=config)
    assert loaded(ch, 1) == 0
    assert len(quarantined(ch, 1)) == 2


def test_a_window_quarantines_the_copy_in_a_month_it_keeps(
    config: Config, keyless: Source, ch: Target
) -> None:
    import_olap_data(config=config)
    copy(keyless, 700, "2026-02-20 10:00:00")  # id 700 lives in an earlier month too
    month_700 = keyless.execute(
        "SELECT to_char(min(event_timestamp), 'YYYYMM') FROM telemetry_events WHERE id = 700"
    )[0][0]
    result = import_olap_data(
        __import__("datetime").datetime(2026, 2, 1),
        __import__("datetime").datetime(2026, 3, 1),
        config=config,
    )
    assert loaded(ch, 700) == 0
    assert len(quarantined(ch, 700)) == 2
    assert result.duplicates_rejected == 2
    assert month_700 < "202602"


def test_a_synced_row_reusing_a_loaded_id_quarantines_both(
    config: Config, keyless: Source, ch: Target
) -> None:
    sync(config=config)
    keyless.execute(
        "INSERT INTO telemetry_events SELECT id, user_id, prosthesis_type, muscle_group, "
        "signal_frequency, signal_duration, signal_amplitude, '2026-03-20 10:00:00', "
        "now() AT TIME ZONE 'UTC' FROM telemetry_events WHERE id = 800"
    )
    result = sync(config=config)
    assert loaded(ch, 800) == 0
    assert len(quarantined(ch, 800)) == 2
    assert result.duplicates_rejected == 2
    assert verify(config).ok


def test_too_many_copies_trip_the_reject_ratio(config: Config, keyless: Source, ch: Target) -> None:
    keyless.execute("INSERT INTO telemetry_events SELECT * FROM telemetry_events WHERE id % 40 = 0")
    with pytest.raises(DataError, match="max-rejected-ratio"):
        import_olap_data(config=config)
    assert "telemetry_events" not in ch.tables() or ch.count("telemetry_events") == 0
