"""Connecting to a PostgreSQL source: its URL, its errors as one redacted line, and the
snapshot a run reads everything in. `olapsync.source` reads through them.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any, TypeAlias

import psycopg

from olapsync.errors import SourceError
from olapsync.redact import DriverError, driver_error
from olapsync.urls import Url, postgres_url

log = logging.getLogger(__name__)

# A parsed URL (what Config holds), or its text (parsed, and refused if ambiguous, at use).
SourceUrl: TypeAlias = "Url | str"


def pg_url(url: SourceUrl) -> Url:
    return url if isinstance(url, Url) else postgres_url(url)


def source_error(url: SourceUrl, exc: BaseException, what: str) -> SourceError:
    # Driver text (libpq, connectorx, rust-postgres) may repeat what it was given: every
    # form of the password is scrubbed from it. Callers raise this `from driver_cause(url, exc)`,
    # a scrubbed copy of the driver's exception, so a traceback keeps what the driver said
    # without printing its text as it was.
    pg = pg_url(url)
    text = pg.scrub(str(exc).strip())
    first = text.splitlines()[0] if text else type(exc).__name__
    fix = _reach_fix(pg, text)
    return SourceError(f"PostgreSQL at {pg} failed to {what}: {first}{fix}")


# What libpq (psycopg) and rust-postgres (connectorx) say when no server answers at the
# address, and when the host name does not resolve.
_NO_SERVER = re.compile(
    r"connection refused|timeout expired|timed out|no route to host|network is unreachable",
    re.IGNORECASE,
)
_NO_HOST = re.compile(
    r"failed to resolve host|could not translate host name|name or service not known"
    r"|nodename nor servname|failed to lookup address",
    re.IGNORECASE,
)


def _reach_fix(pg: Url, text: str) -> str:
    """The end of the sentence when PostgreSQL could not be reached: what to check."""
    host = f"[{pg.host}]" if ":" in pg.host else pg.host or "localhost"
    address = f"{host}:{pg.port or 5432}"
    if _NO_HOST.search(text):
        return f": check the host name {pg.host!r} in the URL."
    if _NO_SERVER.search(text):
        # The demo's server stops with the demo (a notebook run after it finds nothing),
        # and listens on a port of its own, not 5444/5445.
        return (
            f": is PostgreSQL running at {address} (for the demo's, run "
            "`olapsync demo --keep-postgres` and export the URLs it prints)?"
        )
    return ""


def driver_cause(url: SourceUrl, exc: BaseException) -> DriverError:
    return driver_error(exc, pg_url(url).secrets())


def check_connection(url: SourceUrl, *, timeout: int = 10) -> None:
    """Fail fast and clearly when PostgreSQL is unreachable or refuses us.

    connectorx's pool retries a failed connection for 30 seconds and then reports only a
    time-out; a plain libpq handshake says at once what is wrong.
    """
    try:
        with psycopg.connect(pg_url(url).reveal(), connect_timeout=timeout):
            pass
    except psycopg.Error as exc:
        raise source_error(url, exc, "accept a connection") from driver_cause(url, exc)


class Snapshot:
    """One consistent view of a PostgreSQL database, shared by every connection of a read.

    A read-only REPEATABLE READ transaction on its own connection exports its snapshot;
    each connectorx stream imports it before its query (`pre_execution`), so all ranges and
    connections of one read see the same rows, whatever commits meanwhile: no row is read
    twice or missed because it was updated, inserted or deleted between two ranges. The
    catalog queries of the read run in that transaction too.

    Where the server cannot export a snapshot, `id` is None and each stream reads its own.
    """

    def __init__(self, url: SourceUrl, *, what: str):
        self.url = url
        self.what = what
        self.id: str | None = None
        try:
            self.conn = psycopg.connect(pg_url(url).reveal(), connect_timeout=10)
            self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self.conn.read_only = True
        except psycopg.Error as exc:
            raise source_error(url, exc, what) from driver_cause(url, exc)
        try:
            # Text as UTF-8, as connectorx reads it, whatever the database's encoding (on a
            # SQL_ASCII one psycopg would return bytes).
            self.conn.execute("SET client_encoding TO 'UTF8'")
            row = self.conn.execute("SELECT pg_export_snapshot()").fetchone()
            snapshot = str(row[0]) if row else ""
            if _SNAPSHOT_ID.fullmatch(snapshot):
                self.id = snapshot
        except psycopg.Error as exc:
            log.info("%s; each range reads its own", source_error(url, exc, "share a snapshot"))
            try:
                self.conn.rollback()
            except psycopg.Error as exc2:
                raise source_error(url, exc2, what) from driver_cause(url, exc2)

    @property
    def pre_execution(self) -> list[str] | None:
        """What a connection runs before its query to read in this snapshot."""
        if self.id is None:
            return None
        return [
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            f"SET TRANSACTION SNAPSHOT '{self.id}'",
        ]

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a small query in the snapshot (values bound as parameters)."""
        try:
            return self.conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise source_error(self.url, exc, self.what) from driver_cause(self.url, exc)

    def now(self) -> datetime:
        """The snapshot's clock: when its transaction began (PostgreSQL's `now()`), UTC."""
        (value,) = self.rows("SELECT now()")[0]
        assert isinstance(value, datetime)
        return value.astimezone(UTC)

    def keep_alive(self) -> None:
        """Touch the exporting transaction, so `idle_in_transaction_session_timeout` does not
        end it (and the snapshot with it) during a long read."""
        if self.id is not None:
            self.rows("SELECT 1")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+")
