"""The PostgreSQL side of the refresh benchmark: the *before* data, the day's changes, one
database pair per scenario, and the source-side queries of issue 17 item 6.

Databases on one embedded server:
- `crm_before`, `telemetry_before`: generated once and reused (24 months of events, indexes on
  `saved_ts` and `event_timestamp` besides the primary key);
- `crm_<scenario>`, `telemetry_<scenario>`: copies of them with a scenario's changes, made per
  benchmark invocation *after* the import of the before data, so that every new row's
  `saved_ts` lies after that import's watermark;
- `crm`, `telemetry`: the working pair a timed run reads, copied from a scenario's pair before
  every run (untimed), so that every run starts from the same state whatever the one before
  it did.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from benchmarks.common import server_cpu_seconds, wait_for_idle
from benchmarks.refresh_parity import Fingerprints, pg_months_sql, pg_table_sql
from olapsync.generate import ensure_databases, generate
from olapsync.pgembed import EmbeddedPostgres

MONTHS = 24
INDEXES = {
    "telemetry_events_saved_ts": "saved_ts",
    "telemetry_events_event_timestamp": "event_timestamp",
}
# The day of changes (issue 17): rows updated and deleted in one old month without touching
# saved_ts, and rows arriving late in the three months before the latest.
UPDATED, DELETED, LATE = 200, 100, 500


@dataclass(frozen=True)
class Scenario:
    """A state of PostgreSQL that timed runs start from.

    new_share: new rows in the latest month, as a share of the table; late/updated/deleted:
    see the module constants; delete_user: one user leaves the CRM (their events stay);
    touch_one: one existing row of the latest month is updated with a fresh `saved_ts`, so
    that its month cannot be appended to (it holds a changed row, not only new ones).
    """

    name: str
    new_share: float = 0.0
    day: bool = False
    touch_one: bool = False

    @property
    def crm(self) -> str:
        return "crm_before" if self.name == "idle" else f"crm_{self.name}"

    @property
    def telemetry(self) -> str:
        return "telemetry_before" if self.name == "idle" else f"telemetry_{self.name}"


@dataclass
class RefreshSource:
    pg: EmbeddedPostgres
    rows: int
    users: int

    def url(self, database: str) -> str:
        return self.pg.url(database)

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.pg.url(), autocommit=True)

    def copy_database(self, template: str, name: str) -> None:
        """(Re)create `name` as a file copy of `template` (nobody may be connected to it)."""
        with self.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def use(self, scenario: Scenario) -> None:
        """Make the working pair `crm`, `telemetry` a copy of `scenario`'s (untimed)."""
        self.copy_database(scenario.crm, "crm")
        self.copy_database(scenario.telemetry, "telemetry")
        wait_for_idle(self.url("telemetry"))


def _window(now: datetime) -> tuple[str, str]:
    """MONTHS months of events ending an hour before `now` (whole hour): the newest
    `saved_ts` lies well before the next import's watermark minus any lag `sync` applies."""
    end = now.replace(minute=0, second=0, microsecond=0, tzinfo=None) - timedelta(hours=1)
    # The end is exclusive: an end at a month's first instant closes the month before.
    last = end - timedelta(seconds=1)
    year, month = last.year, last.month - (MONTHS - 1)
    while month < 1:
        year, month = year - 1, month + 12
    return f"{year:04d}-{month:02d}-01", end.isoformat(sep=" ")


def start_refresh_source(rows: int, users: int, data_dir: Path) -> RefreshSource:
    """An embedded PostgreSQL with `crm_before` and `telemetry_before` (reused when they
    already have `rows` events and `users` users), indexed and vacuumed."""
    pg = EmbeddedPostgres(data_dir / f"postgres-refresh-{rows}-{users}u").start()
    source = RefreshSource(pg, rows, users)
    ensure_databases(pg.url(), ("crm_before", "telemetry_before"))
    start, end = _window(datetime.now(UTC))
    began = time.monotonic()
    made = generate(
        pg.url("crm_before"),
        pg.url("telemetry_before"),
        users=users,
        events=rows,
        start=start,
        end=end,
        bad_rows=False,
        orphans=False,
    )
    with psycopg.connect(pg.url("telemetry_before"), autocommit=True) as conn:
        for name, column in INDEXES.items():
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON telemetry_events ({})").format(
                    sql.Identifier(name), sql.Identifier(column)
                )
            )
        if made.created:
            conn.execute("VACUUM (ANALYZE) telemetry_events")
    if made.created:
        print(
            f"generated {rows:,} events over {MONTHS} months in {time.monotonic() - began:.0f}s",
            file=sys.stderr,
        )
    wait_for_idle(pg.url("telemetry_before"))
    return source


def _latest_month(conn: psycopg.Connection[Any]) -> tuple[datetime, datetime, int]:
    """The latest month's first instant, the newest event time, and the largest id."""
    row = conn.execute(
        "SELECT date_trunc('month', max(event_timestamp)), max(event_timestamp), max(id) "
        "FROM telemetry_events"
    ).fetchone()
    assert row is not None
    return row[0], row[1], int(row[2])


def _insert_new(
    conn: psycopg.Connection[Any],
    first_id: int,
    n: int,
    span: tuple[datetime, datetime],
    users: int,
    seed: int,
) -> None:
    """`n` valid rows with ids from `first_id`, event times spread evenly over `span`
    ([start, end)), users 1..`users`, and `saved_ts` now (after the import's watermark)."""
    start, end = span
    conn.execute(
        """
        INSERT INTO telemetry_events
        SELECT %(first)s + g - 1,
               1 + (hashint4(g + %(seed)s) & 2147483647) %% %(users)s,
               (ARRAY['arm','hand','leg'])[1 + (hashint4(g + %(seed)s + 1) & 2147483647) %% 3],
               (ARRAY['biceps','triceps','forearm','calf'])[1 + (hashint4(g + %(seed)s + 2) & 2147483647) %% 4],
               50 + (hashint4(g + %(seed)s + 3) & 2147483647) %% 250,
               (hashint4(g + %(seed)s + 4) & 2147483647) %% 5000,
               ((hashint4(g + %(seed)s + 5) & 2147483647) %% 500000) / 100000.0,
               %(start)s + floor((g - 1)::float8 / %(n)s * extract(epoch FROM %(span)s))
                   * interval '1 second',
               localtimestamp
        FROM generate_series(1, %(n)s) AS g
        """,
        {
            "first": first_id,
            "seed": seed,
            "users": users,
            "n": n,
            "start": start,
            "span": end - start,
        },
    )


def _months_before(month: datetime, k: int) -> datetime:
    total = month.year * 12 + month.month - 1 - k
    return month.replace(year=total // 12, month=total % 12 + 1)


def make_scenario(source: RefreshSource, scenario: Scenario) -> dict[str, Any]:
    """Create the scenario's databases from the before pair and apply its changes; return
    what was changed (counts, and the months concerned as `YYYYMM`)."""
    if scenario.name == "idle":
        return {}
    source.copy_database("crm_before", scenario.crm)
    source.copy_database("telemetry_before", scenario.telemetry)
    changes: dict[str, Any] = {}
    with psycopg.connect(source.url(scenario.telemetry), autocommit=True) as conn:
        latest, newest, max_id = _latest_month(conn)
        changes["latest_month"] = _month_id(latest)
        next_id = max_id + 1
        if scenario.new_share:
            n = max(1, round(source.rows * scenario.new_share))
            span = (latest, newest + timedelta(seconds=1))
            _insert_new(conn, next_id, n, span, source.users, seed=7)
            changes["new_rows"] = n
            next_id += n
        if scenario.touch_one:
            touched = conn.execute(
                "UPDATE telemetry_events SET signal_amplitude = signal_amplitude + 0.125, "
                "saved_ts = localtimestamp WHERE id = (SELECT min(id) FROM telemetry_events "
                "WHERE event_timestamp >= %s)",
                (latest,),
            ).rowcount
            changes["touched_rows"] = touched
        if scenario.day:
            late_from = _months_before(latest, 3)
            _insert_new(conn, next_id, LATE, (late_from, latest), source.users, seed=101)
            changes["late_rows"] = LATE
            changes["late_months"] = [_month_id(_months_before(latest, k)) for k in (3, 2, 1)]
            old = _months_before(latest, MONTHS * 3 // 4)
            changes["old_month"] = _month_id(old)
            chosen = (
                "SELECT id FROM telemetry_events WHERE event_timestamp >= %(m0)s AND "
                "event_timestamp < %(m1)s ORDER BY hashint8(id), id LIMIT %(n)s OFFSET %(skip)s"
            )
            bounds = {"m0": old, "m1": _months_before(old, -1)}
            changes["updated_rows"] = conn.execute(
                "UPDATE telemetry_events SET signal_amplitude = signal_amplitude + 0.125, "
                f"muscle_group = muscle_group || '-x' WHERE id IN ({chosen})",
                {**bounds, "n": UPDATED, "skip": 0},
            ).rowcount
            changes["deleted_rows"] = conn.execute(
                f"DELETE FROM telemetry_events WHERE id IN ({chosen})",
                {**bounds, "n": DELETED, "skip": UPDATED},
            ).rowcount
        conn.execute("VACUUM (ANALYZE) telemetry_events")
    if scenario.day:
        user = 1 + source.users // 2
        with psycopg.connect(source.url(scenario.crm), autocommit=True) as conn:
            conn.execute("DELETE FROM users WHERE user_id = %s", (user,))
        with psycopg.connect(source.url(scenario.telemetry)) as conn:
            row = conn.execute(
                "SELECT count(*) FROM telemetry_events WHERE user_id = %s", (user,)
            ).fetchone()
        changes["deleted_user"] = user
        changes["deleted_user_events"] = int(row[0]) if row else 0
    wait_for_idle(source.url(scenario.telemetry))
    return changes


def _month_id(value: datetime) -> int:
    return value.year * 100 + value.month


def reference(source: RefreshSource, scenario: Scenario) -> Fingerprints:
    """What ClickHouse should hold for `scenario` (see `source_fingerprints`)."""
    return source_fingerprints(source.url(scenario.crm), source.url(scenario.telemetry))


def source_fingerprints(crm_url: str, telemetry_url: str) -> Fingerprints:
    """What ClickHouse should hold: the per-month fingerprints of the events of users the
    CRM has, and the fingerprint of its users table."""
    with psycopg.connect(crm_url) as crm:
        users = crm.execute(pg_table_sql()).fetchone()
        ids = [r[0] for r in crm.execute("SELECT user_id FROM users").fetchall()]
    with psycopg.connect(telemetry_url) as tel:
        months = tel.execute(pg_months_sql(), {"parents": ids}).fetchall()
    assert users is not None  # an aggregate without GROUP BY returns one row
    return Fingerprints.from_rows(months, users)


# The source-side queries of issue 17 item 6.
WATERMARK_SQL = (
    "SELECT (extract(year FROM event_timestamp) * 100 + extract(month FROM event_timestamp))::int"
    " AS month, count(*) FROM telemetry_events WHERE saved_ts >= %(since)s GROUP BY 1"
)


def fingerprint_sql(source: RefreshSource, database: str) -> str:
    """The per-month fingerprint query `olapsync verify` and `sync --verify` run
    (`olapsync.fingerprint`): one pass, every column hashed by its type's own hash function."""
    from olapsync.fingerprint import catalog_columns, pg_columns, pg_fingerprint_sql, pg_time_column
    from olapsync.specs import TELEMETRY

    with psycopg.connect(source.url(database)) as conn:

        def rows(query: str, params: Any = ()) -> list[tuple[Any, ...]]:
            return conn.execute(query, params).fetchall()

        catalog = catalog_columns(rows, "telemetry_events")
    return pg_fingerprint_sql(
        TELEMETRY.source_table, pg_columns(TELEMETRY, catalog), pg_time_column(TELEMETRY)
    )


def _plan(conn: psycopg.Connection[Any], query: str, params: dict[str, Any] | None) -> str:
    """The scan the planner chose: node type and index, e.g. 'Bitmap Heap Scan (... )'."""
    plan = conn.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()
    assert plan is not None
    scans: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        kind = node["Node Type"]
        if "Scan" in kind:
            index = node.get("Index Name")
            scans.append(f"{kind} on {index}" if index else kind)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0][0]["Plan"])
    return ", ".join(scans)


def time_source_query(
    source: RefreshSource,
    database: str,
    query: str,
    params: dict[str, Any] | None,
    repeat: int,
    *,
    drop_index: str | None = None,
) -> dict[str, Any]:
    """Run `query` once to warm the cache, then `repeat` times, each on a new connection
    (whose backend's CPU the server counts when it exits); with `drop_index`, inside a
    transaction that drops that index first and is rolled back."""
    seconds, cpu, plan, matched = [], [], "", 0
    for i in range(repeat + 1):
        before = server_cpu_seconds(source.pg.data_dir)
        with psycopg.connect(source.url(database)) as conn:
            if drop_index:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(drop_index)))
            plan = _plan(conn, query, params)
            started = time.perf_counter()
            rows = conn.execute(query, params).fetchall()
            took = time.perf_counter() - started
            conn.rollback()
        time.sleep(0.2)  # the backend's CPU is counted once it has exited
        matched = sum(int(r[1]) for r in rows)
        if i:  # the first run only warms the cache
            seconds.append(took)
            cpu.append(server_cpu_seconds(source.pg.data_dir) - before)
    table_rows = _table_rows(source, database)
    per_million = table_rows / 1e6
    return {
        "plan": plan,
        "rows_matched": matched,
        "table_rows": table_rows,
        "seconds": statistics.median(seconds),
        "runs": [round(s, 4) for s in seconds],
        "pg_cpu_seconds": statistics.median(cpu),
        "seconds_per_million_rows": statistics.median(seconds) / per_million,
        "pg_cpu_per_million_rows": statistics.median(cpu) / per_million,
    }


def _table_rows(source: RefreshSource, database: str) -> int:
    with psycopg.connect(source.url(database)) as conn:
        row = conn.execute("SELECT count(*) FROM telemetry_events").fetchone()
    return int(row[0]) if row else 0


def source_queries(source: RefreshSource, db: str, since: datetime, repeat: int) -> dict[str, Any]:
    """Issue 17 item 6 on the day's source: the watermark query with and without the
    `saved_ts` index, and the per-month fingerprint query over all rows, in database `db`."""
    watermark = {"since": since}
    out = {
        "watermark, saved_ts index": time_source_query(
            source, db, WATERMARK_SQL, watermark, repeat
        ),
        "watermark, no saved_ts index": time_source_query(
            source, db, WATERMARK_SQL, watermark, repeat, drop_index="telemetry_events_saved_ts"
        ),
        "fingerprint (verify's query)": time_source_query(
            source, db, fingerprint_sql(source, db), None, repeat
        ),
    }
    out["watermark, saved_ts index"]["since"] = since.isoformat(sep=" ")
    out["fingerprint (verify's query)"]["note"] = (
        "fingerprint: olapsync.fingerprint's query, every column hashed by its type's hash "
        "function, summed per day and folded into months; parallel workers as PostgreSQL plans"
    )
    return out
