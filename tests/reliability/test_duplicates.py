"""Repeated ids (issue 15, item 5): `id` is the row key. A source without a primary key can
hold an id twice; every copy is quarantined with a reason naming the key, counted among the
rejected rows, and held to the reject ratio, wherever the copies are: in one batch or
several, in one month or two, in months a window keeps, or arriving by a sync."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from olapsync import DataError, import_olap_data, plan_import, sync, verify
from olapsync.clickhouse import Target
from olapsync.config import Config
from tests.support import TALLY, Source, checksums, users_checksum

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


# -- Months a run does not reread (olapsync.repeats) -------------------------------------------
DECEMBER = "event_timestamp >= '2025-12-01' AND event_timestamp < '2026-01-01'"


def held_in_two_months(source: Source, ch: Target, config: Config, saved: str = "saved_ts") -> int:
    """An id of December copied into March (saved at `saved`), then synced: both copies held."""
    (id_,) = source.execute(f"SELECT min(id) FROM telemetry_events WHERE {DECEMBER}")[0]
    source.execute(COPY.replace("saved_ts\n", f"{saved}\n"), {"id": id_, "at": "2026-03-20 10:00"})
    sync(config=config)
    assert (loaded(ch, id_), len(quarantined(ch, id_))) == (0, 2)
    return int(id_)


def new_rows(source: Source, month: str) -> None:
    source.execute(
        "INSERT INTO telemetry_events SELECT 200000 + g, 1 + g % 40, 'hand', 'biceps', 120, 300, "
        f"1.5, '{month}-02'::timestamp + g * interval '1 hour', now() AT TIME ZONE 'UTC' "
        "FROM generate_series(1, 25) AS g"
    )


@pytest.mark.parametrize(
    "how", ["sync --verify", "sync --verify with new rows in March", "verify --repair"]
)
def test_a_copy_whose_partner_is_deleted_is_loaded(
    config: Config, keyless: Source, ch: Target, reference: Any, how: str
) -> None:
    # March is not changed in PostgreSQL: only the December copy's deletion frees it.
    id_ = held_in_two_months(keyless, ch, config)
    keyless.execute(f"DELETE FROM telemetry_events WHERE id = {id_} AND {DECEMBER}")
    if "new rows" in how:
        new_rows(keyless, "2026-03")
    if how == "verify --repair":
        assert not verify(config, repair=True).ok  # what it found, before repairing
    else:
        result = sync(config=config, verify=True)
        assert result.months["202603"] == ["repeated ids"]
    assert loaded(ch, id_) == 1
    assert (checksums(ch), users_checksum(ch)) == reference()
    assert verify(config).ok


@pytest.mark.parametrize("saved", ["now() AT TIME ZONE 'UTC'", "saved_ts"], ids=["new", "old"])
def test_a_new_copy_of_a_held_id_is_quarantined_with_the_others(
    config: Config, keyless: Source, ch: Target, reference: Any, saved: str
) -> None:
    # A third copy, on the append path (April), or one already held but inside the lag (new
    # rows make March's month come up), must not be loaded while other copies are held.
    id_ = held_in_two_months(keyless, ch, config, saved="now() AT TIME ZONE 'UTC'")
    if saved == "saved_ts":
        new_rows(keyless, "2026-03")
    else:
        third = COPY.replace("saved_ts\n", f"{saved}\n") + "LIMIT 1"
        keyless.execute(third, {"id": id_, "at": "2026-04-20"})
    sync(config=config)
    assert loaded(ch, id_) == 0
    assert (checksums(ch), users_checksum(ch)) == reference()
    assert verify(config).ok


def test_a_window_rereads_the_partner_month_and_quarantines_a_copy_of_a_held_id(
    config: Config, keyless: Source, ch: Target, reference: Any
) -> None:
    id_ = held_in_two_months(keyless, ch, config)
    # A copy in February of the id held in December and March, whose window keeps both.
    keyless.execute(COPY + "LIMIT 1", {"id": id_, "at": "2026-02-20 10:00:00"})
    result = import_olap_data(datetime(2026, 2, 1), datetime(2026, 3, 1), config=config)
    assert result.months == {}  # no month besides the window's was read
    reasons = [
        r for r, row in quarantined(ch, id_) if str(row["event_timestamp"]).startswith("2026-02-20")
    ]
    assert reasons == [
        f"id {id_} appears 1 time (months 202602) and is held back already in months "
        "202512, 202603: every copy is quarantined"
    ]
    assert (checksums(ch), users_checksum(ch)) == reference()
    # The December and February copies deleted: a window over December rereads the months
    # sharing the id (February, March), where the March copy is now alone.
    for where in (DECEMBER, "event_timestamp = '2026-02-20 10:00:00'"):
        keyless.execute(f"DELETE FROM telemetry_events WHERE id = {id_} AND {where}")
    december = (datetime(2025, 12, 1), datetime(2026, 1, 1))
    plan = plan_import(*december, config=config)
    assert plan.months_reread == {"202602": ["repeated ids"], "202603": ["repeated ids"]}
    assert plan.partitions_to_replace == ["202512", "202602", "202603"]
    result = import_olap_data(*december, config=config)
    assert result.months == plan.months_reread
    assert loaded(ch, id_) == 1
    assert (checksums(ch), users_checksum(ch)) == reference()


def test_a_held_copy_of_a_user_gone_no_longer_holds_its_partner(
    config: Config, keyless: Source, ch: Target, reference: Any
) -> None:
    id_ = held_in_two_months(keyless, ch, config)
    # The December copy belongs to user 40, who then leaves the CRM: that copy is an orphan.
    keyless.execute(f"UPDATE telemetry_events SET user_id = 40 WHERE id = {id_} AND {DECEMBER}")
    sync(config=config, verify=True)
    keyless.execute("DELETE FROM users WHERE user_id = 40")
    assert [c.partition for c in verify(config).drifted] == ["all"]  # the users
    sync(config=config)
    assert loaded(ch, id_) == 1
    assert (checksums(ch), users_checksum(ch)) == reference()
    assert verify(config).ok


def test_a_month_ledger_from_before_repeated_keys_is_read_then_relearned(
    config: Config, keyless: Source, ch: Target, reference: Any
) -> None:
    id_ = held_in_two_months(keyless, ch, config)
    ch.command(
        f"ALTER TABLE {ch.t('olapsync_partitions')} DROP COLUMN repeated_keys, "
        "DROP COLUMN repeated_users, DROP COLUMN repeats_known"
    )
    assert verify(config).ok  # a read path reads the older ledger as it is
    # The first run after the upgrade rereads the months holding rejected rows, once...
    first = sync(config=config)
    assert {"202512", "202603"} <= set(first.months)
    assert {tuple(why) for why in first.months.values()} == {("repeated ids",)}
    assert sync(config=config).months == {}
    # ...and knows again which ids they hold back.
    keyless.execute(f"DELETE FROM telemetry_events WHERE id = {id_} AND {DECEMBER}")
    sync(config=config, verify=True)
    assert loaded(ch, id_) == 1
    assert (checksums(ch), users_checksum(ch)) == reference()
    assert verify(config).ok


def test_an_idle_sync_leaves_a_held_copy_in_the_lag_alone(
    config: Config, keyless: Source, ch: Target
) -> None:
    # The March copy was saved last: every sync's lag reads it again, unchanged.
    id_ = held_in_two_months(keyless, ch, config, saved="now() AT TIME ZONE 'UTC'")
    for _ in range(2):
        assert sync(config=config).months == {}
    assert len(quarantined(ch, id_)) == 2  # not quarantined again
    assert verify(config).ok


@pytest.mark.parametrize("alone", ["held copy", "bad row", "two new rows sharing an id"])
def test_a_rejected_row_alone_in_a_month_does_not_stop_the_syncs_after_it(
    config: Config, keyless: Source, ch: Target, reference: Any, alone: str
) -> None:
    # The reject ratio is judged over the table, as a full import judges it: a month of few
    # rows holding one rejected row is no reason to refuse every later sync.
    sync(config=config)
    (id_,) = keyless.execute(f"SELECT min(id) FROM telemetry_events WHERE {DECEMBER}")[0]
    first = {"held copy": id_, "bad row": 300000, "two new rows sharing an id": 300001}[alone]
    kind = "'foot'" if alone == "bad row" else "prosthesis_type"
    for _ in range(2 if alone.startswith("two") else 1):
        keyless.execute(
            f"INSERT INTO telemetry_events SELECT {first}, user_id, {kind}, muscle_group, "
            "signal_frequency, signal_duration, signal_amplitude, '2026-05-20 10:00', "
            f"now() AT TIME ZONE 'UTC' FROM telemetry_events WHERE id = {id_} LIMIT 1"
        )
    sync(config=config)
    new_rows(keyless, "2026-05")
    sync(config=config)
    assert (checksums(ch), users_checksum(ch)) == reference()
    assert verify(config).ok
