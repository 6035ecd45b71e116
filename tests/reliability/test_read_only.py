"""Read paths never write: `Reports`, `olapsync report`, `examples`, `status`, `import
--dry-run` and the reports service work for a read-only ClickHouse user, and against a
database or chDB folder that does not exist they fail clearly (or, for `status` and the
plan, say there is nothing yet) without creating it. An import needs no CREATE DATABASE
rights once the database exists.

The read-only user is real: tests/chhttp.py runs its queries in a chDB session with
`readonly = 1`, so the engine refuses any write it would attempt.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from olapsync import api, import_olap_data
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.errors import TargetError
from olapsync.queries import Reports
from tests.chhttp import ChdbHttpServer
from tests.faulty import Fault, FaultyProxy
from tests.support import SMALL_USERS, Source, cli, start_service

PASSWORD = "writer-pw"
READER = ("reader", "reader-pw")


@pytest.fixture(scope="module")
def endpoint(chdb_dir: Path) -> Iterator[ChdbHttpServer]:
    with ChdbHttpServer(str(chdb_dir), password=PASSWORD, readonly=READER) as server:
        yield server


@pytest.fixture
def database(endpoint: ChdbHttpServer) -> Iterator[str]:
    name = "ro_" + uuid.uuid4().hex[:10]
    yield name
    with Target(Config(clickhouse_url=endpoint.url(), database=name)) as t:
        t.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")


def databases(endpoint: ChdbHttpServer) -> set[str]:
    with Target(Config(clickhouse_url=endpoint.url()), create_database=False) as t:
        return {str(r[0]) for r in t.rows("SELECT name FROM system.databases")}


def env(source: Source, url: str, database: str) -> dict[str, str]:
    return {
        "OLAPSYNC_CRM_URL": source.url,
        "OLAPSYNC_TELEMETRY_URL": source.url,
        "OLAPSYNC_CLICKHOUSE_URL": url,
        "OLAPSYNC_CLICKHOUSE_DATABASE": database,
    }


READ_COMMANDS = [
    ("report", "1", "--json"),
    ("examples", "--json"),
    ("status", "--json"),
    ("import", "--dry-run", "--json"),
]


def test_every_read_path_works_for_a_read_only_user(
    endpoint: ChdbHttpServer, source: Source, database: str
) -> None:
    writer = Config(
        crm_url=source.url,
        telemetry_url=source.url,
        clickhouse_url=endpoint.url(),
        database=database,
    )
    import_olap_data(config=writer)
    reader = writer.with_(clickhouse_url=endpoint.readonly_url())
    # The user really is read-only.
    with Target(reader, create_database=False) as t, pytest.raises(TargetError) as refused:
        t.command(f"CREATE TABLE {t.t('x')} (n UInt8) ENGINE = Memory")
    assert refused.value.code == 164  # READONLY

    with Reports(reader) as reports:
        assert reports.user_report(1).user_name
        assert reports.total_users().item() == SMALL_USERS
        assert len(reports.examples()) == 8
    assert api.status(reader).tables["users"] == SMALL_USERS
    assert api.plan_import(config=reader).users_current == SMALL_USERS
    # Opening a Target for writing into an existing database needs no rights either.
    Target(reader).close()

    for command in READ_COMMANDS:
        done = cli(*command, env=env(source, endpoint.readonly_url(), database))
        assert done.returncode == 0, (command, done.stderr)
        json.loads(done.stdout)
    server, base = start_service(env(source, endpoint.readonly_url(), database))
    try:
        response = httpx.post(base + "/report", json={"user_id": 1})
        assert response.status_code == 200, response.text
    finally:
        server.terminate()
        server.communicate(timeout=30)


@pytest.mark.parametrize("user", ["writer", "reader"])
def test_reads_of_a_missing_database_fail_clearly_and_create_it_not(
    endpoint: ChdbHttpServer, source: Source, database: str, user: str
) -> None:
    # The writer could create the database: reads must not even try.
    url = endpoint.url() if user == "writer" else endpoint.readonly_url()
    config = Config(crm_url=source.url, telemetry_url=source.url, clickhouse_url=url)
    config = config.with_(database=database)
    missing = f"has no database {database!r} yet: run olapsync import first"
    with pytest.raises(TargetError, match=missing):
        Reports(config)
    for command in READ_COMMANDS[:2]:
        done = cli(*command, env=env(source, url, database))
        assert done.returncode == 1, (command, done.stdout)
        assert missing in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    # status and the plan describe what is there: nothing yet.
    assert api.status(config).tables == {}
    plan = api.plan_import(config=config)
    assert "telemetry_events" in plan.tables_to_create
    assert cli("status", env=env(source, url, database)).returncode == 0
    assert database not in databases(endpoint)


def test_a_reports_service_over_a_missing_database_creates_it_not(
    endpoint: ChdbHttpServer, source: Source, database: str
) -> None:
    server, base = start_service(env(source, endpoint.url(), database))
    try:
        response = httpx.post(base + "/report", json={"user_id": 1})
        assert response.status_code >= 500
    finally:
        server.terminate()
        log, _ = server.communicate(timeout=30)
    assert f"has no database {database!r} yet" in log
    assert database not in databases(endpoint)


def test_reads_of_a_missing_chdb_folder_create_no_folder(source: Source, tmp_path: Path) -> None:
    folder = tmp_path / "never-imported"
    environment = {
        "OLAPSYNC_CRM_URL": source.url,
        "OLAPSYNC_TELEMETRY_URL": source.url,
        "OLAPSYNC_CLICKHOUSE_URL": f"chdb://{folder}",
    }
    for command in READ_COMMANDS[:3]:
        done = cli(*command, env=environment)
        assert done.returncode == 1, (command, done.stdout)
        assert f"The embedded ClickHouse folder {folder} does not exist" in done.stderr
        assert "run olapsync import first" in done.stderr
    done = cli("import", "--dry-run", env=environment)
    assert done.returncode == 0, done.stderr
    done = cli("serve", env=environment)
    assert done.returncode == 1
    assert f"The embedded ClickHouse folder {folder} does not exist" in done.stderr
    assert not folder.exists()


def test_an_import_into_an_existing_database_needs_no_create_database_rights(
    endpoint: ChdbHttpServer, source: Source, database: str
) -> None:
    # As on ClickHouse Cloud, where `CREATE DATABASE ... ENGINE = Atomic` is refused, or for
    # a user granted rights on one database only.
    refuse = Fault(r"^CREATE DATABASE", "error", code=497, name="ACCESS_DENIED", times=99)
    with FaultyProxy(endpoint.port, [refuse]) as proxy:
        config = Config(
            crm_url=source.url,
            telemetry_url=source.url,
            clickhouse_url=proxy.url("default", PASSWORD),
            database=database,
        )
        # Without the database, the refusal is the error...
        with pytest.raises(TargetError) as info:
            import_olap_data(config=config)
        assert info.value.code == 497
        # ...with it, the import and init never ask for it.
        with Target(Config(clickhouse_url=endpoint.url(), database=database)):
            pass
        sent = proxy.count(r"^CREATE DATABASE")
        assert import_olap_data(config=config).status == "success"
        assert api.init(config) == []
        assert proxy.count(r"^CREATE DATABASE") == sent == 1
