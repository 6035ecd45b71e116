"""Every part of a URL the user wrote is honoured or refused, on the wire: `https://` is a
TLS handshake whatever the port (no Authorization header in clear text), `?verify=` and
`?ca_cert=` steer it, a database in the path is the database, a percent-encoded user name
logs in as itself, and PostgreSQL's `sslmode` and `application_name` reach both readers."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import pytest
import trustme
from psycopg import sql

from olapsync import ConfigError, SourceError, TargetError
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.pg import Snapshot, check_connection
from olapsync.source import read_arrow
from tests.chhttp import ChdbHttpServer
from tests.support import PgServer, Source, cli

PASSWORD = "tls-pw-5"


class Recorder:
    """A TCP listener that keeps every byte a client sends and answers nothing: what the
    client puts on the wire before the server has said a word."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(1.0)
                try:
                    while chunk := conn.recv(65536):
                        self.received += chunk
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def tls_endpoint(chdb_dir: Path, ca: trustme.CA) -> Iterator[ChdbHttpServer]:
    """tests/chhttp.py's ClickHouse HTTP interface, reachable over TLS only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = ChdbHttpServer(str(chdb_dir), password=PASSWORD)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    with server:
        yield server


@pytest.fixture(scope="module")
def endpoint(chdb_dir: Path) -> Iterator[ChdbHttpServer]:
    with ChdbHttpServer(str(chdb_dir), password=PASSWORD) as server:
        yield server


def https(port: int, query: str = "", path: str = "") -> str:
    return f"https://default:{PASSWORD}@127.0.0.1:{port}{path}{'?' + query if query else ''}"


def test_https_on_any_port_is_a_tls_handshake_before_any_credential(
    recorder: Recorder,
) -> None:
    # The issue's example: https:// on a port that is not 443/8443. clickhouse-connect alone
    # chose plain HTTP there and sent `Authorization: Basic ...` in clear text.
    basic = base64.b64encode(f"default:{PASSWORD}".encode())
    quick = "connect_timeout=2&send_receive_timeout=3"
    with pytest.raises(TargetError) as info:
        Target(Config(clickhouse_url=https(recorder.port, quick)))
    assert PASSWORD not in str(info.value)
    sent = bytes(recorder.received)
    assert sent[:1] == b"\x16", f"expected a TLS ClientHello, got {sent[:40]!r}"
    assert b"Authorization" not in sent
    assert basic not in sent
    assert PASSWORD.encode() not in sent

    # The recorder does see clear text when the URL says http: it can tell the two apart.
    recorder.received.clear()
    with pytest.raises(TargetError):
        Target(Config(clickhouse_url=f"http://default:{PASSWORD}@127.0.0.1:{recorder.port}"))
    assert b"Authorization: Basic " + basic in bytes(recorder.received)


def test_https_with_the_ca_talks_to_the_tls_endpoint(
    tls_endpoint: ChdbHttpServer, ca_file: Path
) -> None:
    before = tls_endpoint.requests
    url = https(tls_endpoint.port, f"ca_cert={quote(str(ca_file), safe='/')}", "/tls_check")
    with Target(Config(clickhouse_url=url)) as target:
        assert target.database == "tls_check"
        assert target.scalar("SELECT {x:UInt8} + 1", {"x": 1}) == 2
        assert "tls_check" in {r[0] for r in target.rows("SELECT name FROM system.databases")}
        target.command("DROP DATABASE IF EXISTS tls_check")
    assert tls_endpoint.requests > before


def test_the_server_certificate_is_checked_unless_verify_is_false(
    tls_endpoint: ChdbHttpServer,
) -> None:
    with pytest.raises(TargetError, match=r"(?i)certificate") as info:
        Target(Config(clickhouse_url=https(tls_endpoint.port, "connect_timeout=3")))
    assert PASSWORD not in str(info.value)
    url = https(tls_endpoint.port, "verify=false&secure=true")
    with (
        pytest.warns(Warning, match=r"(?i)unverified|insecure"),
        Target(Config(clickhouse_url=url), create_database=False) as target,
    ):
        assert target.scalar("SELECT 3") == 3


def test_plain_http_to_the_tls_endpoint_fails_rather_than_downgrading(
    tls_endpoint: ChdbHttpServer,
) -> None:
    url = f"http://default:{PASSWORD}@127.0.0.1:{tls_endpoint.port}?connect_timeout=2"
    with pytest.raises(TargetError):
        Target(Config(clickhouse_url=url + "&send_receive_timeout=3"), create_database=False)


def test_a_percent_encoded_user_name_logs_in_as_itself(chdb_dir: Path) -> None:
    user = "an@lyst/é ops"
    with ChdbHttpServer(str(chdb_dir), user=user, password=PASSWORD) as server:
        url = f"http://{quote(user, safe='')}:{PASSWORD}@127.0.0.1:{server.port}"
        with Target(Config(clickhouse_url=url), create_database=False) as target:
            assert target.scalar("SELECT 1") == 1
        wrong = f"http://{quote('an@other', safe='')}:{PASSWORD}@127.0.0.1:{server.port}"
        with pytest.raises(TargetError, match="refused the login"):
            Target(Config(clickhouse_url=wrong), create_database=False)


def test_an_import_writes_to_the_database_in_the_url_path(
    endpoint: ChdbHttpServer, source: Source
) -> None:
    # The issue: `.../analytics` still wrote to `olap`.
    base = f"http://default:{PASSWORD}@127.0.0.1:{endpoint.port}"
    env = {
        "OLAPSYNC_CRM_URL": source.url,
        "OLAPSYNC_TELEMETRY_URL": source.url,
        "OLAPSYNC_CLICKHOUSE_URL": base + "/url_path_db",
    }
    try:
        done = cli("import", env=env)
        assert done.returncode == 0, done.stderr
        with Target(Config(clickhouse_url=base), create_database=False) as target:
            events = target.scalar("SELECT count() FROM url_path_db.telemetry_events")
            databases = {r[0] for r in target.rows("SELECT name FROM system.databases")}
        assert events > 0
        assert "olap" not in databases or "telemetry_events" not in _tables(base, "olap")

        clash = cli("import", "--database", "olap", env=env)
        assert clash.returncode == 2  # a refused setting: a usage error
        assert "differs from the database 'url_path_db'" in clash.stderr
        assert PASSWORD not in clash.stderr
    finally:
        with Target(Config(clickhouse_url=base), create_database=False) as target:
            target.command("DROP DATABASE IF EXISTS url_path_db SYNC")


def _tables(base: str, database: str) -> set[str]:
    with Target(Config(clickhouse_url=base, database=database), create_database=False) as t:
        return t.tables()


def test_unknown_clickhouse_parameters_stop_the_cli_before_connecting(
    endpoint: ChdbHttpServer,
) -> None:
    before = endpoint.requests
    url = f"http://default:{PASSWORD}@127.0.0.1:{endpoint.port}?max_threads=2"
    done = cli("status", env={"OLAPSYNC_CLICKHOUSE_URL": url})
    assert done.returncode == 2  # a refused setting: a usage error
    assert "has the parameter 'max_threads'" in done.stderr
    assert endpoint.requests == before


# -- PostgreSQL: the query parameters reach both readers --------------------------------


def test_application_name_reaches_libpq_and_connectorx(source: Source) -> None:
    url = Config(crm_url=source.url + "?application_name=olapsync_probe").crm_url
    query = "SELECT current_setting('application_name') AS name"
    assert read_arrow(url, query).column("name").to_pylist() == ["olapsync_probe"]
    with Snapshot(url, what="probe") as snapshot:
        assert snapshot.rows(query) == [("olapsync_probe",)]


def test_sslmode_reaches_libpq_and_connectorx(source: Source, tmp_path: Path) -> None:
    # `require` makes each reader set up TLS, which needs the (missing) CA file, or find the
    # embedded server without TLS: both fail at once. `disable` never looks at either.
    missing = quote(str(tmp_path / "no-such-ca.pem"), safe="/")
    required = Config(crm_url=f"{source.url}?sslmode=require&sslrootcert={missing}").crm_url
    with pytest.raises(SourceError, match="SSL was required"):
        check_connection(required)  # libpq
    with pytest.raises(SourceError, match="no such file"):
        read_arrow(required, "SELECT 1 AS one")  # connectorx, loading the CA for TLS
    disabled = f"{source.url}?sslmode=disable&sslrootcert={missing}&connect_timeout=5"
    url = Config(crm_url=disabled).crm_url
    check_connection(url)
    assert read_arrow(url, "SELECT 1 AS one").column("one").to_pylist() == [1]


def test_sslmode_no_reader_can_honour_is_refused_before_connecting(source: Source) -> None:
    with pytest.raises(ConfigError, match="cannot honour"):
        Config(crm_url=source.url + "?sslmode=verify-full")


def test_a_percent_encoded_postgres_user_name_logs_in_as_itself(pg: PgServer) -> None:
    role = "an@lyst:ops/é"
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        host = urlsplit(pg.admin_url).netloc.rpartition("@")[2]
        url = Config(crm_url=f"postgresql://{quote(role, safe='')}@{host}/postgres").crm_url
        assert url.username == role
        query = "SELECT current_user AS who"
        assert read_arrow(url, query).column("who").to_pylist() == [role]  # connectorx
        with Snapshot(url, what="probe") as snapshot:  # libpq
            assert snapshot.rows(query) == [(role,)]
    finally:
        with psycopg.connect(pg.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
