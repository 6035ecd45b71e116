"""The embedded PostgreSQL and the generated data that the demo, the tests and the benchmarks
read."""

from __future__ import annotations

from pathlib import Path

import pytest

from olapsync.demo import describe_source
from olapsync.generate import Generated, generate
from olapsync.pgembed import EmbeddedPostgres
from tests.support import SMALL_EVENTS, SMALL_USERS, Source

pytestmark = pytest.mark.integration


def test_starts_in_a_folder_whose_path_is_too_long_for_a_unix_socket(tmp_path: Path) -> None:
    # A Unix socket's path may hold 107 bytes; `--data-dir` may be deeper than that.
    folder = tmp_path / ("deep-" * 20) / "postgres"
    assert len(str(folder / ".s.PGSQL.65535")) > 107
    with EmbeddedPostgres(folder) as server:
        assert server.psql("SELECT 6 * 7").strip() == "42"


def test_generated_tables_are_vacuumed_so_autovacuum_does_not_come_back(source: Source) -> None:
    # Else autovacuum would vacuum every generated row a minute later, during whatever runs.
    stats = source.execute(
        "SELECT relname, vacuum_count, n_ins_since_vacuum FROM pg_stat_user_tables "
        "WHERE relname IN ('users', 'telemetry_events') ORDER BY relname"
    )
    assert [(name, vacuums >= 1, pending) for name, vacuums, pending in stats] == [
        ("telemetry_events", True, 0),
        ("users", True, 0),
    ]


def _generate(source: Source, **sizes: int) -> Generated:
    size = {"users": SMALL_USERS, "events": SMALL_EVENTS, **sizes}
    return generate(source.url, source.url, **size)


@pytest.mark.parametrize(
    ("edit", "check", "edited"),
    [
        ("DELETE FROM users WHERE user_id = 9", "SELECT count(*) FROM users", SMALL_USERS - 1),
        (
            "INSERT INTO telemetry_events SELECT id + 100000, user_id, prosthesis_type, "
            "muscle_group, signal_frequency, signal_duration, signal_amplitude, "
            "event_timestamp, saved_ts FROM telemetry_events WHERE id <= 3",
            "SELECT count(*) FROM telemetry_events WHERE id > 100000",
            3,
        ),
        # The row counts stay: reused all the same, and not reported as edited.
        (
            "UPDATE telemetry_events SET signal_duration = 4242 WHERE id = 1",
            "SELECT signal_duration FROM telemetry_events WHERE id = 1",
            4242,
        ),
    ],
    ids=["user-deleted", "events-added", "value-changed"],
)
def test_generated_data_edited_since_is_reused_as_it_is(
    source: Source, edit: str, check: str, edited: int
) -> None:
    source.execute(edit)
    again = _generate(source)
    assert not again.created
    assert again.why == ""
    assert source.execute(check) == [(edited,)]  # the edit is still there
    assert again.edited == ("UPDATE" not in edit)


@pytest.mark.parametrize(
    ("sizes", "why"),
    [
        ({"users": SMALL_USERS + 1}, "not 41 users and 6,000 events"),
        ({"events": 100}, "not 40 users and 100 events"),
        ({"orphans": False}, "not 40 users and 6,000 events (+8 bad rows) as asked"),
    ],
    ids=["more-users", "fewer-events", "no-orphans"],
)
def test_other_sizes_replace_the_data_and_say_why(
    source: Source, sizes: dict[str, int], why: str
) -> None:
    source.execute("DELETE FROM users WHERE user_id = 9")
    made = _generate(source, **sizes)
    assert made.created
    assert made.why.startswith(
        "was generated with 40 users and 6,000 events (+8 bad rows, +5 orphan events), "
    )
    assert why in made.why
    assert source.execute("SELECT count(*) FROM users WHERE user_id = 9") == [(1,)]


def test_data_with_no_record_is_reused_only_as_generated(source: Source) -> None:
    # Data generated before the tables carried their record: reused when its counts are
    # those asked for (and recorded from then on), replaced, saying so, when they are not.
    unmark = "COMMENT ON TABLE users IS NULL; COMMENT ON TABLE telemetry_events IS NULL"
    for statement in unmark.split("; "):
        source.execute(statement)
    assert not _generate(source).created
    source.execute("DELETE FROM users WHERE user_id = 9")
    assert not _generate(source).created  # recorded now: an edit is kept
    for statement in unmark.split("; "):
        source.execute(statement)
    made = _generate(source)
    assert made.created
    assert made.why == (
        "holds 39 users and 6,013 events with no record of having been generated, "
        "not 40 users and 6,000 events (+8 bad rows, +5 orphan events) as asked"
    )


@pytest.mark.parametrize(
    ("made", "lines"),
    [
        (
            Generated(30, 3000, 8, 5, created=True, users_now=30, events_now=3013),
            ["Generated 30 users and 3,000 events (+8 bad rows, +5 orphan events) in 1.5s"],
        ),
        (
            Generated(30, 3000, 8, 5, created=True, why="was generated with 1 user and 1 event"),
            [
                "The demo data in /d/postgres was generated with 1 user and 1 event: "
                "generating it again.",
                "Generated 30 users and 3,000 events (+8 bad rows, +5 orphan events) in 1.5s",
            ],
        ),
        (
            Generated(30, 3000, 8, 5, created=False, users_now=29, events_now=3013),
            [
                "Reusing the demo data in /d/postgres as edited since it was generated: "
                "29 users and 3,013 events now, generated as 30 users and 3,000 events "
                "(+8 bad rows, +5 orphan events)"
            ],
        ),
    ],
    ids=["generated", "generated-again", "reused-edited"],
)
def test_the_demo_says_what_it_did_with_the_data(made: Generated, lines: list[str]) -> None:
    assert describe_source(made, Path("/d/postgres"), 1.5) == lines
