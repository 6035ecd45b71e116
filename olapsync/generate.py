"""Seed-shaped synthetic data, generated inside PostgreSQL (fast, deterministic).

The demo, the tests and the benchmarks share it. Besides realistic rows it plants a few bad
rows (one per kind of `BAD_ROWS`) and a few orphans (events of users the CRM does not
have), so that rejects and orphan handling show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from olapsync.words import count

USERS_DDL = """
CREATE TABLE IF NOT EXISTS users (
    user_id integer PRIMARY KEY,
    user_uuid uuid NOT NULL,
    name text NOT NULL,
    email text NOT NULL,
    age integer,
    gender text,
    country text,
    address text,
    phone text,
    registration_ts timestamp NOT NULL,
    registered_at timestamp NOT NULL
)"""

EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS telemetry_events (
    id bigint PRIMARY KEY,
    user_id integer,
    prosthesis_type text,
    muscle_group text,
    signal_frequency integer,
    signal_duration integer,
    signal_amplitude double precision,
    event_timestamp timestamp,
    saved_ts timestamp
)"""

FIRST = "ARRAY['Ivan','Anna','Petr','Olga','Sergey','Maria','Dmitry','Elena','Alexey','Natalia']"
LAST = "ARRAY['Ivanov','Petrova','Sidorov','Smirnova','Kuznetsov','Popova','Volkov','Sokolova']"
MUSCLES = "ARRAY['biceps','triceps','forearm','deltoid','quadriceps','hamstring','calf','gluteus']"
DEFAULT_START = "2025-09-01"
DEFAULT_END = "2026-04-01"

# Planted bad rows: (reason kind, SQL values for the columns after id).
BAD_ROWS: dict[str, str] = {
    "null user_id": "NULL, 'arm', 'biceps', 100, 10, 1.0, '2025-10-10 10:00:00', '2025-10-10 10:00:01'",
    "unknown prosthesis_type": "1, 'foot', 'calf', 100, 10, 1.0, '2025-10-11 10:00:00', '2025-10-11 10:00:01'",
    "NaN amplitude": "1, 'arm', 'biceps', 100, 10, 'NaN', '2025-11-12 10:00:00', '2025-11-12 10:00:01'",
    "negative duration": "2, 'leg', 'calf', 100, -5, 1.0, '2025-12-13 10:00:00', '2025-12-13 10:00:01'",
    "zero frequency": "2, 'hand', 'forearm', 0, 10, 1.0, '2026-01-14 10:00:00', '2026-01-14 10:00:01'",
    "empty muscle_group": "3, 'hand', '', 100, 10, 1.0, '2026-02-15 10:00:00', '2026-02-15 10:00:01'",
    "infinite event_timestamp": "3, 'arm', 'biceps', 100, 10, 1.0, 'infinity', '2026-03-16 10:00:00'",
    "event_timestamp before 1970": "4, 'arm', 'biceps', 100, 10, 1.0, '1969-07-20 20:17:00', '2026-03-17 10:00:00'",
}
ORPHAN_EVENTS = 5


# The comment `generate` leaves on each table it fills: what it generated there, so that a
# later call can tell data it generated (and someone may have edited since) from other data.
_MARK = "olapsync generated: "
_KEYS = (("users",), ("events", "bad_rows", "orphan_events"))  # each table's sizes


@dataclass(frozen=True)
class Generated:
    """What `generate` asked for and did.

    users / events / bad_rows / orphan_events: the sizes asked for.
    created: True when the tables were (re)filled, False when their data was reused.
    why: when data already there was replaced, why (a clause: "was generated with ...");
        empty on a first fill or a reuse.
    users_now / events_now: rows in the tables now (events with the bad rows and orphans);
        after a reuse they differ from the sizes when the data was edited since.
    """

    users: int
    events: int
    bad_rows: int
    orphan_events: int
    created: bool
    why: str = ""
    users_now: int = 0
    events_now: int = 0

    @property
    def edited(self) -> bool:
        """Reused data whose row counts are not those generated (someone edited it)."""
        wanted = self.events + self.bad_rows + self.orphan_events
        return not self.created and (self.users_now, self.events_now) != (self.users, wanted)


def describe(users: int, events: int, bad_rows: int = 0, orphan_events: int = 0) -> str:
    """'1,000 users and 1,000,000 events (+8 bad rows, +5 orphan events)'."""
    text = f"{count(users, 'user')} and {count(events, 'event')}"
    extra = [count(bad_rows, "bad row")] * bool(bad_rows) + [
        count(orphan_events, "orphan event")
    ] * bool(orphan_events)
    return text + (f" (+{', +'.join(extra)})" if extra else "")


def users_sql(n: int) -> str:
    return f"""
INSERT INTO users
SELECT g,
       md5('user' || g)::uuid,
       ({FIRST})[1 + g % 10] || ' ' || ({LAST})[1 + (g / 10) % 8],
       lower(({FIRST})[1 + g % 10]) || '.' || lower(({LAST})[1 + (g / 10) % 8]) || g || '@example.ru',
       CASE WHEN g % 17 = 0 THEN NULL ELSE 18 + g % 60 END,
       CASE WHEN g % 13 = 0 THEN NULL WHEN g % 2 = 0 THEN 'female' ELSE 'male' END,
       (ARRAY['RU','KZ','BY','AM','GE'])[1 + g % 5],
       'Lenina st. ' || (1 + g % 200) || ', apt ' || (1 + g % 90),
       '+7 9' || lpad((g * 7919 % 1000000000)::text, 9, '0'),
       timestamp '2024-01-01' + (g % 600) * interval '1 day' + (g % 86400) * interval '1 second',
       timestamp '2024-01-01' + (g % 600) * interval '1 day' + (g % 86400 + 60) * interval '1 second'
FROM generate_series(1, {int(n)}) AS g"""


def events_sql(n: int, users: int, start: str, end: str) -> str:
    # Event times are whole seconds spread evenly over [start, end); saved_ts carries
    # milliseconds (ClickHouse DateTime truncates them, as documented).
    return f"""
INSERT INTO telemetry_events
SELECT g,
       1 + (hashint4(g::int) & 2147483647) % {int(users)},
       (ARRAY['arm','hand','leg'])[1 + (hashint4(g::int + 1) & 2147483647) % 3],
       ({MUSCLES})[1 + (hashint4(g::int + 2) & 2147483647) % 8],
       50 + (hashint4(g::int + 3) & 2147483647) % 250,
       (hashint4(g::int + 4) & 2147483647) % 5000,
       round(((hashint4(g::int + 5) & 2147483647) % 500000) / 100000.0, 3)::float8,
       ts,
       ts + ((hashint4(g::int + 6) & 2147483647) % 5000) * interval '1 millisecond'
FROM (
    SELECT g, timestamp '{start}' + floor(
        (g - 1)::float8 / {int(n)} * extract(epoch FROM timestamp '{end}' - timestamp '{start}')
    ) * interval '1 second' AS ts
    FROM generate_series(1, {int(n)}) AS g
) AS s"""


def generate(
    crm_url: str,
    telemetry_url: str,
    *,
    users: int = 1000,
    events: int = 1_000_000,
    start: str = DEFAULT_START,
    end: str = DEFAULT_END,
    bad_rows: bool = True,
    orphans: bool = True,
    force: bool = False,
) -> Generated:
    """Create and fill the seed's `users` and `telemetry_events` tables, or reuse them.

    The rule: data this function generated with the same sizes (`users`, `events`, and the
    bad rows and orphans) is reused as it is now, edits included: each table carries a
    comment saying what was generated into it. Data from before those comments is reused
    when its row counts are the sizes asked for. Anything else (other sizes, or rows with no
    record of having been generated) is replaced, and `Generated.why` says why; so is
    everything, with `force`. `start` / `end` (the event times) are not compared.

    Needs psycopg (the `demo` extra). Both URLs must point at existing databases.
    """
    import psycopg

    n_bad = len(BAD_ROWS) if bad_rows else 0
    n_orphans = ORPHAN_EVENTS if orphans else 0
    asked = {"users": users, "events": events, "bad_rows": n_bad, "orphan_events": n_orphans}
    with (
        psycopg.connect(crm_url, autocommit=True) as crm,
        psycopg.connect(telemetry_url, autocommit=True) as tel,
    ):
        crm.execute(USERS_DDL)
        tel.execute(EVENTS_DDL)
        have_users = _scalar(crm, "SELECT count(*) FROM users")
        have_events = _scalar(tel, "SELECT count(*) FROM telemetry_events")
        marks = (_mark(crm, "users", _KEYS[0]), _mark(tel, "telemetry_events", _KEYS[1]))
        made = {**(marks[0] or {}), **(marks[1] or {})}
        now = (have_users, have_events)
        unmarked_as_asked = marks == (None, None) and now == (users, events + n_bad + n_orphans)
        if not force and (made == asked or unmarked_as_asked):
            if unmarked_as_asked:  # generated before the comments: marked now
                _write_marks(crm, tel, asked)
            return _generated(asked, created=False, now=now)
        why = ""
        if force and (have_users or have_events):
            why = "was asked to be generated again"
        elif None not in marks:
            why = f"was generated with {describe(**made)}, not {describe(**asked)} as asked"
        elif have_users or have_events:
            why = (
                f"holds {describe(have_users, have_events)} with no record of having been "
                f"generated, not {describe(**asked)} as asked"
            )
        _fill(crm, tel, users=users, events=events, start=start, end=end)
        _plant(tel, users=users, events=events, n_bad=n_bad, n_orphans=n_orphans)
        _write_marks(crm, tel, asked)
        # Vacuumed, as a long-lived table is: otherwise autovacuum comes back within a minute
        # to vacuum every row just inserted, in the middle of whatever runs next. Each session
        # first hands over its insert counts, which it would otherwise report after the vacuum.
        for conn in (crm, tel):
            if conn.info.server_version >= 150000:
                conn.execute("SELECT pg_stat_force_next_flush()")
        crm.execute("VACUUM (ANALYZE) users")
        tel.execute("VACUUM (ANALYZE) telemetry_events")
    return _generated(asked, created=True, why=why, now=(users, events + n_bad + n_orphans))


def _generated(
    asked: dict[str, int], *, created: bool, now: tuple[int, int], why: str = ""
) -> Generated:
    return Generated(
        asked["users"], asked["events"], asked["bad_rows"], asked["orphan_events"],
        created=created, why=why, users_now=now[0], events_now=now[1],
    )  # fmt: skip


def _scalar(conn: Any, query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0])


def _mark(conn: Any, table: str, keys: tuple[str, ...]) -> dict[str, int] | None:
    """What `generate` recorded in `table`'s comment (the sizes `keys`), None without such
    a comment."""
    row = conn.execute("SELECT obj_description(%s::regclass, 'pg_class')", (table,)).fetchone()
    text = row[0] if row else None
    if not text or not text.startswith(_MARK):
        return None
    try:
        found = json.loads(text.removeprefix(_MARK))
    except ValueError:
        return None
    if not isinstance(found, dict) or set(found) != set(keys):
        return None
    return {k: int(found[k]) for k in keys}


def _write_marks(crm: Any, tel: Any, asked: dict[str, int]) -> None:
    from psycopg import sql

    for conn, table, keys in ((crm, "users", _KEYS[0]), (tel, "telemetry_events", _KEYS[1])):
        text = _MARK + json.dumps({k: asked[k] for k in keys})
        conn.execute(
            sql.SQL("COMMENT ON TABLE {} IS {}").format(sql.Identifier(table), sql.Literal(text))
        )


def _fill(crm: Any, tel: Any, *, users: int, events: int, start: str, end: str) -> None:
    crm.execute("TRUNCATE users")
    tel.execute("TRUNCATE telemetry_events")
    crm.execute(users_sql(users))
    tel.execute("ALTER TABLE telemetry_events DROP CONSTRAINT IF EXISTS telemetry_events_pkey")
    tel.execute(events_sql(events, users, start, end))


def _plant(tel: Any, *, users: int, events: int, n_bad: int, n_orphans: int) -> None:
    """The bad rows and the orphans after the events, then the primary key."""
    next_id = events + 1
    for values in list(BAD_ROWS.values())[:n_bad]:
        tel.execute(f"INSERT INTO telemetry_events VALUES ({next_id}, {values})")
        next_id += 1
    for i in range(n_orphans):
        # Users that the CRM does not have: their events are skipped as orphans.
        tel.execute(
            "INSERT INTO telemetry_events VALUES (%s, %s, 'arm', 'biceps', 120, 300, 1.5, %s, %s)",
            (
                next_id,
                users + 1 + i,
                f"2025-1{i % 3}-05 12:00:00",
                f"2025-1{i % 3}-05 12:00:01",
            ),
        )
        next_id += 1
    tel.execute("ALTER TABLE telemetry_events ADD PRIMARY KEY (id)")


def ensure_databases(admin_url: str, names: tuple[str, ...] = ("crm", "telemetry")) -> None:
    """Create the databases `names` on the server behind `admin_url` if missing."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not found:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
