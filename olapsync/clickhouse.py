"""The one way olapsync talks to ClickHouse: a clickhouse-connect client, to a server over
HTTP(S) or to the embedded chDB engine (`chdb://` URLs).

The client is built from the parsed URL part by part (`client_arguments`), never from the
URL text: clickhouse-connect picks TLS by port rather than by scheme, so `https://...:8123`
handed over as a DSN would send the password in clear text.

Driver errors are wrapped here into `TargetError` with the table and ClickHouse's error code
(a failure without an answer from the server gets NETWORK_ERROR, 210); every password of the
config is scrubbed from the driver's text before it reaches a message. Reads, and the
statements a caller marks idempotent, are retried on transient errors (`olapsync.retry`).

A `Target` opened with `create_database=False` writes nothing: it creates neither the
database nor the chDB folder, so a read-only ClickHouse user can use it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.binding import format_str
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from olapsync import retry, statements
from olapsync.config import Config
from olapsync.errors import TargetBusyError, TargetError
from olapsync.folder_lock import lock_folder, unlock_folder
from olapsync.redact import driver_error, scrub
from olapsync.statements import Statement
from olapsync.url_options import clickhouse_options
from olapsync.urls import DEFAULT_PORTS, Url

log = logging.getLogger(__name__)
AUTHENTICATION_FAILED = 516


def client_arguments(url: Url) -> dict[str, Any]:
    """clickhouse-connect `get_client` arguments for a server URL, each from its part:
    `interface` and `secure` from the scheme, the port (default 8123, or 8443 for https),
    the decoded user name and password, and the checked query parameters."""
    secure = url.scheme == "https"
    return {
        "interface": url.scheme,
        "secure": secure,
        "host": url.host,
        "port": url.port or DEFAULT_PORTS[url.scheme],
        "username": url.username,
        "password": url.password.reveal() if url.password is not None else "",
        "connect_timeout": 10,
        "send_receive_timeout": 600,
        "autogenerate_session_id": False,
        **clickhouse_options(url),
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def string_literal(text: str) -> str:
    """`text` as a ClickHouse string literal, quoted by the driver's own rules: for the few
    places that take no bound parameter (a table's `COMMENT`)."""
    return str(format_str(text))


def error_code(exc: BaseException) -> int | None:
    """ClickHouse's error code for a driver error. An `OperationalError` without one is
    clickhouse-connect's "the request got no answer" (a reset, refused or timed-out
    connection, or a 429/503 after its own retries): NETWORK_ERROR, as clickhouse-client
    names the same failure."""
    code = getattr(exc, "code", None)
    if code is None and isinstance(exc, OperationalError):
        return retry.NETWORK_ERROR
    return code if isinstance(code, int) else None


def _wrap(exc: Exception, what: str, *, table: str | None, secrets: tuple[str, ...]) -> TargetError:
    code = error_code(exc)
    detail = scrub(_first_line(exc), secrets)
    if len(detail) > 400:
        detail = detail[:400] + "…"
    err = TargetError(f"ClickHouse failed to {what}: {detail}", table=table, code=code)
    return err


class Target:
    """A ClickHouse database olapsync reads and writes, behind one client.

    Args:
        config: the URL and the database.
        create_database: True for the paths that write (import, init): the chDB folder is
            made if missing, and the database is created if `system.databases` does not
            list it (so a user without CREATE DATABASE rights can import into an existing
            database, as on ClickHouse Cloud, which refuses `ENGINE = Atomic`). False for
            the paths that only read: nothing is created; a missing chDB folder is a
            `TargetError`, and `require_database()` says when the database is missing.

    Use as a context manager; `close()` releases the client and, for chDB, the folder.

    Raises:
        TargetError: ClickHouse is unreachable, refused the login, or (read paths) the chDB
            folder does not exist.
        TargetBusyError: another process holds the chDB folder.
    """

    def __init__(self, config: Config, *, create_database: bool = True):
        self.config = config
        self.database = config.database
        self.url = str(config.clickhouse_url)
        self._secrets = config.secrets()
        self._chdb_path = config.chdb_path
        self.embedded = self._chdb_path is not None
        if self._chdb_path is not None:
            lock_folder(self._chdb_path, create=create_database)
        try:
            self.client = self._open(config)
            if create_database and not self.database_exists():
                self.execute(statements.create_database(self.database), idempotent=True)
        except BaseException:
            self._release()
            raise

    def database_exists(self) -> bool:
        """Whether the database is in `system.databases` (a read: no rights needed)."""
        return bool(self.fetch_scalar(statements.database_exists(self.database)))

    def require_database(self) -> None:
        """Raise unless the database exists: for the paths that read what an import wrote.

        Raises:
            TargetError: the database is missing; the message says to import first.
        """
        if not self.database_exists():
            raise TargetError(
                f"ClickHouse at {self.url} has no database {self.database!r} yet: run "
                "olapsync import first (or set OLAPSYNC_CLICKHOUSE_DATABASE to the database "
                "an import wrote)."
            )

    def _open(self, config: Config) -> Client:
        # Driver text is scrubbed into ours, and the cause kept is a scrubbed copy
        # (`driver_error`): a traceback would otherwise print the driver's text as it was.
        try:
            if self._chdb_path is not None:
                return clickhouse_connect.get_client(interface="chdb", path=self._chdb_path)
            return clickhouse_connect.get_client(**client_arguments(config.clickhouse_url))
        except ClickHouseError as exc:
            text = str(exc)
            if getattr(exc, "code", None) == AUTHENTICATION_FAILED:
                raise TargetError(
                    f"ClickHouse at {self.url} refused the login: check the user and password "
                    "in OLAPSYNC_CLICKHOUSE_URL (or --clickhouse-url).",
                    code=AUTHENTICATION_FAILED,
                ) from driver_error(exc, self._secrets)
            if self._chdb_path is not None and "Unable to open the chdb engine" in text:
                raise TargetBusyError(
                    f"The embedded ClickHouse folder {self._chdb_path} cannot be opened: another "
                    "process holds it, or this process already opened a different chDB folder."
                ) from driver_error(exc, self._secrets)
            raise TargetError(
                f"ClickHouse at {self.url} is unreachable: "
                f"{scrub(_first_line(exc), self._secrets)} "
                "(check OLAPSYNC_CLICKHOUSE_URL or --clickhouse-url).",
                code=error_code(exc),
            ) from driver_error(exc, self._secrets)
        except Exception as exc:
            raise TargetError(
                f"ClickHouse at {self.url} is unreachable: "
                f"{scrub(_first_line(exc), self._secrets)} (check OLAPSYNC_CLICKHOUSE_URL)."
            ) from driver_error(exc, self._secrets)

    def _release(self) -> None:
        if self._chdb_path is not None:
            unlock_folder(self._chdb_path)
            self._chdb_path = None

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        self._release()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wrap(self, exc: Exception, what: str, *, table: str | None = None) -> TargetError:
        """A driver error as a redacted `TargetError`."""
        return _wrap(exc, what, table=table, secrets=self._secrets)

    def t(self, table: str) -> str:
        """A fully qualified, quoted table name."""
        return statements.qualified(self.database, table)

    def command(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        *,
        what: str = "run a statement",
        table: str | None = None,
        settings: dict[str, Any] | None = None,
        idempotent: bool = False,
    ) -> Any:
        """Run a statement; return what ClickHouse answered.

        With `idempotent=True` (a statement that has the same effect when sent twice, such
        as `CREATE ... IF NOT EXISTS`), a transient error is retried (`olapsync.retry`);
        otherwise the first error is raised, since a statement whose answer was lost may
        have been applied.

        Raises:
            TargetError: ClickHouse refused the statement, or could not be reached.
        """

        def attempt() -> Any:
            try:
                return self.client.command(sql, parameters=parameters, settings=settings)
            except ClickHouseError as exc:
                raise self.wrap(exc, what, table=table) from driver_error(exc, self._secrets)

        return retry.call(attempt, what=what) if idempotent else attempt()

    def rows(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        *,
        what: str = "run a query",
        table: str | None = None,
    ) -> Sequence[Sequence[Any]]:
        """The rows a query returns. A query reads, so a transient error is retried
        (`olapsync.retry`): never pass a statement that changes anything.

        Raises:
            TargetError: ClickHouse refused the query, or could not be reached.
        """

        def attempt() -> Sequence[Sequence[Any]]:
            try:
                return self.client.query(sql, parameters=parameters).result_rows
            except ClickHouseError as exc:
                raise self.wrap(exc, what, table=table) from driver_error(exc, self._secrets)

        return retry.call(attempt, what=what)

    def arrow(
        self, sql: str, parameters: dict[str, Any] | None = None, *, what: str = "run a query"
    ) -> pa.Table:
        """What a query returns, as an Arrow table; retried like `rows`.

        Raises:
            TargetError: ClickHouse refused the query, or could not be reached.
        """

        def attempt() -> pa.Table:
            try:
                return self.client.query_arrow(sql, parameters=parameters)
            except ClickHouseError as exc:
                raise self.wrap(exc, what) from driver_error(exc, self._secrets)

        return retry.call(attempt, what=what)

    def scalar(self, sql: str, parameters: dict[str, Any] | None = None, **kw: Any) -> Any:
        result = self.rows(sql, parameters, **kw)
        return result[0][0] if result else None

    def execute(self, statement: Statement, *, idempotent: bool = False) -> Any:
        """Run a statement built by `olapsync.statements`; `idempotent` as for `command`."""
        return self.command(
            statement.sql,
            dict(statement.parameters),
            what=statement.what,
            table=statement.table,
            idempotent=idempotent,
        )

    def fetch(self, statement: Statement) -> Sequence[Sequence[Any]]:
        """The rows a query built by `olapsync.statements` returns."""
        return self.rows(
            statement.sql, dict(statement.parameters), what=statement.what, table=statement.table
        )

    def fetch_scalar(self, statement: Statement) -> Any:
        """The first value of the first row a query returns (None without rows)."""
        result = self.fetch(statement)
        return result[0][0] if result else None

    def insert_arrow(
        self, table: str, data: pa.Table, *, settings: dict[str, Any] | None = None
    ) -> None:
        """Insert `data` into `table`, once: an insert is retried only by a caller that
        gives it an `insert_deduplication_token` (`olapsync.inserter`).

        Raises:
            TargetError: ClickHouse refused the rows, or could not be reached.
        """
        try:
            self.client.insert_arrow(self.t(table), data, settings=settings)
        except ClickHouseError as exc:
            raise self.wrap(exc, f"insert into {table}", table=table) from driver_error(
                exc, self._secrets
            )

    def tables(self) -> set[str]:
        """The names of the database's tables."""
        return {r[0] for r in self.fetch(statements.list_tables(self.database))}

    def partitions(self, table: str) -> dict[str, int]:
        """Active partition ids of `table` with their row counts."""
        result = self.fetch(statements.partition_rows(self.database, table))
        return {r[0]: int(r[1]) for r in result}

    def count(self, table: str) -> int:
        """Rows in `table`."""
        return int(self.fetch_scalar(statements.count_rows(self.database, table)))


@contextlib.contextmanager
def open_target(config: Config, *, create_database: bool = True) -> Iterator[Target]:
    target = Target(config, create_database=create_database)
    try:
        yield target
    finally:
        target.close()
