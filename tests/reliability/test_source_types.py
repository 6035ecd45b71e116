"""Source columns of a type other than the seed's (issue 15, item 6). Every column is
converted to its kind in the source query: each value either loads as PostgreSQL's own cast
would give it, or is quarantined with a reason; a type no kind can be read from fails the run
with one clear line; and a reader failure, Rust panics included, is one SourceError line."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

import olapsync.source as reader
from olapsync import ImportResult, SourceError, import_olap_data
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.generate import generate
from olapsync.specs import TELEMETRY
from olapsync.validate import validate
from tests.reliability.test_bad_data import row
from tests.support import SMALL_EVENTS, SMALL_USERS, TALLY, PgServer, Source, checksums, cli, urls

ALTER = "ALTER TABLE telemetry_events ALTER COLUMN "
FLOAT = "is not a finite number in the Float64 range"
WHOLE = "is not a whole number in the Int32 range"


@dataclass(frozen=True)
class Retyped:
    name: str
    sql: str  # run on the source first
    column: str
    oracle: str  # what PostgreSQL's own cast makes of a source value that loads
    bad: tuple[tuple[str, str], ...] = ()  # (SQL literal, text in the quarantine reason)
    good: tuple[str, ...] = ()  # SQL literals that must load


RETYPED = [
    Retyped(
        "numeric(12,4) holding NaN (the issue's example)",
        ALTER + "signal_amplitude TYPE numeric(12,4)",
        "signal_amplitude",
        "signal_amplitude::float8",
        bad=(("'NaN'", f"signal_amplitude 'NaN' {FLOAT}"),),
        good=("12345678.1234", "-0.0001"),
    ),
    Retyped(
        "numeric beyond a double, or more precise than one",
        ALTER + "signal_amplitude TYPE numeric",
        "signal_amplitude",
        # Correctly rounded to the nearest double, as ClickHouse's toFloat64 would.
        "signal_amplitude::float8",
        bad=(
            ("1e400", f"{FLOAT}"),
            ("-1e400", f"{FLOAT}"),
            ("1e-400", f"signal_amplitude '0.{'0' * 399}1' {FLOAT}"),
            ("'Infinity'", f"signal_amplitude 'Infinity' {FLOAT}"),
            ("'-Infinity'", f"signal_amplitude '-Infinity' {FLOAT}"),
        ),
        good=("1.23456789012345678901234567890", "1.7976931348623157e308", "5e-324", "0"),
    ),
    Retyped(
        "real",
        ALTER + "signal_amplitude TYPE real",
        "signal_amplitude",
        "signal_amplitude::float8",  # exact: every real is a double
        bad=(("'NaN'", "signal_amplitude NaN is not a finite number"),),
        good=("0.1", "3.4e38"),
    ),
    Retyped(
        "a domain over numeric",
        "CREATE DOMAIN amplitude AS numeric(12,4) CHECK (VALUE > -1000); "
        + ALTER
        + "signal_amplitude TYPE amplitude",
        "signal_amplitude",
        "signal_amplitude::float8",
        bad=(("'NaN'", f"signal_amplitude 'NaN' {FLOAT}"),),
    ),
    Retyped(
        "smallint",
        ALTER + "signal_frequency TYPE smallint",
        "signal_frequency",
        "signal_frequency::int4",
        bad=(("0", "signal_frequency 0 is not > 0"),),
        good=("32767",),
    ),
    Retyped(
        "numeric(20) beyond Int32",
        ALTER + "user_id TYPE numeric(20)",
        "user_id",
        "user_id::int4",
        bad=(("2147483648", f"user_id '2147483648' {WHOLE}"),),
        good=("1",),
    ),
    Retyped(
        "double precision in an integer column",
        ALTER + "signal_frequency TYPE double precision",
        "signal_frequency",
        "signal_frequency::int4",
        bad=(
            ("1.5", f"signal_frequency '1.5' {WHOLE}"),
            ("3e9", f"signal_frequency '3000000000' {WHOLE}"),
            ("'NaN'", f"signal_frequency 'NaN' {WHOLE}"),
            ("'-Infinity'", f"signal_frequency '-Infinity' {WHOLE}"),
        ),
        good=("2147483647", "120.0"),
    ),
    Retyped(
        "text in an integer column",
        ALTER + "signal_duration TYPE text",
        "signal_duration",
        "signal_duration::int4",
        bad=(
            ("'12.5'", f"signal_duration '12.5' {WHOLE}"),
            ("'abc'", f"signal_duration 'abc' {WHOLE}"),
            ("'99999999999'", f"signal_duration '99999999999' {WHOLE}"),
            ("'0x10'", f"signal_duration '0x10' {WHOLE}"),
            ("''", f"signal_duration '' {WHOLE}"),
        ),
        good=("' 42 '", "'+7'", "'-0'"),
    ),
    Retyped(
        "varchar",
        ALTER + "muscle_group TYPE varchar(40)",
        "muscle_group",
        "muscle_group::text",
        good=("'ünïcödé ✓'",),
    ),
    Retyped(
        "char(n), whose trailing blanks PostgreSQL ignores",
        ALTER + "muscle_group TYPE char(16)",
        "muscle_group",
        "muscle_group::text",
        bad=(("'   '", "muscle_group is empty"),),
    ),
    Retyped(
        "citext",
        "CREATE EXTENSION IF NOT EXISTS citext; " + ALTER + "muscle_group TYPE citext",
        "muscle_group",
        "muscle_group::text",
        good=("'Biceps'",),
    ),
    Retyped(
        "an enum",
        "CREATE TYPE prosthesis AS ENUM ('arm', 'hand', 'leg', 'foot'); "
        + ALTER
        + "prosthesis_type TYPE prosthesis USING prosthesis_type::prosthesis",
        "prosthesis_type",
        "prosthesis_type::text",
        bad=(("'foot'", "prosthesis_type 'foot' is not one of"),),
    ),
    Retyped(
        "uuid",
        ALTER + "muscle_group TYPE uuid USING md5(muscle_group)::uuid",
        "muscle_group",
        "muscle_group::text",
    ),
    Retyped(
        "date",
        ALTER + "event_timestamp TYPE date",
        "event_timestamp",
        "extract(epoch FROM event_timestamp)::bigint",
        bad=(
            ("'infinity'", "event_timestamp is 'infinity'"),
            ("'1969-12-31'", "event_timestamp 1969-12-31 00:00:00 is outside the ClickHouse"),
            ("'10000-01-01'", "event_timestamp +10000-01-01 00:00:00 is outside the ClickHouse"),
        ),
    ),
    Retyped(
        "timestamps Python's datetime cannot hold",
        "SELECT 1",
        "event_timestamp",
        "extract(epoch FROM event_timestamp)::bigint",
        bad=(
            ("'10000-01-01 00:00:00'", "event_timestamp +10000-01-01 00:00:00 is outside"),
            ("'0001-01-01 00:00:00 BC'", "is outside the ClickHouse DateTime range"),
        ),
    ),
]


def run(config: Config) -> ImportResult:
    result = import_olap_data(config=config)
    assert isinstance(result, ImportResult)
    return result


@pytest.mark.parametrize("case", RETYPED, ids=lambda c: c.name)
def test_a_column_of_another_type_loads_each_value_or_rejects_it_with_a_reason(
    case: Retyped, config: Config, source: Source, ch: Target
) -> None:
    source.execute(case.sql)
    bad = {990_000 + i: (literal, why) for i, (literal, why) in enumerate(case.bad)}
    good = {991_000 + i: literal for i, literal in enumerate(case.good)}
    for key, literal in [*((k, lit) for k, (lit, _) in bad.items()), *good.items()]:
        source.execute(row(**{case.column: literal}).format(id=key))

    result = run(config)

    reasons = dict(ch.rows(f"SELECT id, reason FROM {ch.t('telemetry_events_rejected')}"))
    for key, (literal, why) in bad.items():
        assert why in reasons.get(key, ""), f"{literal}: {reasons.get(key)}"
    value = f"toUnixTimestamp({case.column})" if case.oracle.startswith("extract") else case.column
    loaded = dict(ch.rows(f"SELECT id, {value} FROM {ch.t('telemetry_events')}"))
    assert loaded.keys().isdisjoint(bad)
    assert set(good) <= loaded.keys()
    expected = dict(
        source.execute(
            f"SELECT id, {case.oracle} FROM telemetry_events WHERE id = ANY(%s)", [list(loaded)]
        )
    )
    changed = {k: (v, expected[k]) for k, v in loaded.items() if v != expected[k]}
    assert not changed, f"loaded values differ from PostgreSQL's cast: {list(changed.items())[:5]}"
    in_source = source.execute("SELECT count(*) FROM telemetry_events")[0][0]
    counted = result.events_loaded + result.events_rejected + result.events_skipped_orphans
    assert counted == in_source == SMALL_EVENTS + len(bad) + len(good) + 13  # planted rows
    TALLY["bad_kinds"] += 1
    TALLY["lost_rows"] += in_source - counted


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "signal_frequency TYPE boolean USING signal_frequency > 100",
            "signal_frequency has type boolean, which cannot be loaded as Int32",
        ),
        (
            "event_timestamp TYPE text",
            "event_timestamp has type text, which cannot be loaded as DateTime('UTC')",
        ),
        (
            "signal_amplitude TYPE jsonb USING to_jsonb(signal_amplitude)",
            "signal_amplitude has type jsonb, which cannot be loaded as Float64",
        ),
    ],
    ids=["boolean as Int32", "text as DateTime", "jsonb as Float64"],
)
def test_a_column_no_kind_can_be_read_from_fails_the_run_clearly(
    change: str, message: str, config: Config, source: Source, ch: Target
) -> None:
    run(config)
    before = checksums(ch)
    source.execute(ALTER + change)
    with pytest.raises(SourceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(config)
    assert checksums(ch) == before
    TALLY["bad_kinds"] += 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "SELECT g AS id, 1 / (g - 5000) AS x FROM generate_series(1, 10000) AS g",
            "division by zero",
        ),
        (  # PostgreSQL's last year; connectorx decodes up to chrono's 262143
            "SELECT g AS id, CASE WHEN g = 5000 THEN '294276-12-31'::timestamp "
            "ELSE '2026-01-01' END AS x FROM generate_series(1, 10000) AS g",
            "the reader cannot decode a value: value too large to decode",
        ),
    ],
    ids=["server error", "value connectorx cannot decode"],
)
def test_a_failure_in_the_middle_of_a_stream_is_a_source_error(
    query: str, message: str, source: Source
) -> None:
    # connectorx raises a failure met mid-stream as a Rust panic (PanicException, a
    # BaseException), after the first batches were already taken.
    batches = reader.read_batches(source.url, query, batch_size=1000)
    with pytest.raises(SourceError, match=f"failed to read rows: {message}$"):
        for _ in batches:
            pass
    TALLY["bad_kinds"] += 1


def test_a_view_reads_the_same_arrow_through_its_cursor(source: Source) -> None:
    """A view is read by a server-side cursor, a table by connectorx: the same rows, odd
    types included, must reach validation as the same Arrow table."""
    source.execute(
        "CREATE TABLE odd (id bigint PRIMARY KEY, user_id numeric(20), "
        "prosthesis_type text, muscle_group varchar(9), signal_frequency smallint, "
        "signal_duration text, signal_amplitude numeric, event_timestamp date, "
        "saved_ts timestamptz)"
    )
    source.execute(
        "INSERT INTO odd VALUES "
        "(1, 1, 'arm', 'biceps', 100, '10', 1.5, '2026-01-01', '2026-01-01 10:00:00.123456+03'),"
        "(2, 3e9, 'leg', NULL, -3, 'x', 'NaN', 'infinity', '10000-01-01 00:00:00+00'),"
        "(3, NULL, '', '', 0, ' 7 ', 1e400, '4713-01-01 BC', '-infinity')"
    )
    source.execute("CREATE VIEW odd_view AS SELECT * FROM odd")

    def read(table: str) -> pa.Table:
        spec = dataclasses.replace(TELEMETRY, source_table=table)
        batches = reader.read_table(source.url, spec, batch_size=2, chunk_rows=1)
        return pa.Table.from_batches(list(batches)).sort_by("id")

    through_connectorx, through_cursor = read("odd"), read("odd_view")
    assert through_cursor.schema == through_connectorx.schema
    assert through_cursor.equals(through_connectorx)
    split = validate(through_cursor, TELEMETRY)
    assert split.clean.num_rows == 1
    assert dict(split.rejected.select("key", "reason").iter_rows())[2] == (
        "user_id '3000000000' is not a whole number in the Int32 range; muscle_group is NULL; "
        "signal_duration 'x' is not a whole number in the Int32 range; "
        "signal_amplitude 'NaN' is not a finite number in the Float64 range; "
        "event_timestamp is 'infinity'; "
        "saved_ts +10000-01-01 00:00:00 is outside the ClickHouse DateTime range "
        "1970-01-01 00:00:00..2106-02-07 06:28:15 UTC; signal_frequency -3 is not > 0"
    )


@pytest.fixture
def sql_ascii_source(pg: PgServer) -> Iterator[Source]:
    """A legacy SQL_ASCII database holding one muscle_group that is not UTF-8."""
    name = "ascii_" + os.urandom(4).hex()
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} ENCODING 'SQL_ASCII' TEMPLATE template0 "
                "LC_COLLATE 'C' LC_CTYPE 'C'"
            ).format(sql.Identifier(name))
        )
    url = pg.url(name)
    generate(url, url, users=SMALL_USERS, events=SMALL_EVENTS)
    source = Source(url)
    source.execute(
        "UPDATE telemetry_events SET muscle_group = convert_from('\\xff41'::bytea, 'SQL_ASCII') "
        "WHERE id = 3000"
    )
    yield source
    pg.drop(name)


@pytest.mark.parametrize("which", ["panic", "no panic"])
def test_the_cli_reports_a_reader_failure_in_one_line_without_rust_output(
    which: str, pg: PgServer, source: Source, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`olapsync import` as a user runs it, with RUST_BACKTRACE=1: a source connectorx fails
    on mid-stream (bytes that are not UTF-8) ends in one `error:` line; the issue's numeric
    NaN loads, the NaN row quarantined. Neither prints anything from Rust."""
    if which == "panic":
        src = request.getfixturevalue("sql_ascii_source")
    else:
        src = source
        src.execute(ALTER + "signal_amplitude TYPE numeric(12,4)")
    env = {**urls(src, tmp_path / "ch"), "RUST_BACKTRACE": "1"}
    done = cli("import", env=env)

    for rust in ("panicked", "backtrace", "RUST_BACKTRACE", "cx writer"):
        assert rust not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    if which == "panic":
        assert done.returncode == 1
        assert len(errors) == 1, done.stderr
        assert errors[0].endswith('invalid byte sequence for encoding "UTF8": 0xff'), errors
    else:
        assert done.returncode == 0, done.stderr
        assert errors == []
    TALLY["bad_kinds"] += 1
