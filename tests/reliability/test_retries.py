"""Transient ClickHouse failures are retried and a run still loads exactly the source's rows;
any other failure ends the statement at its first attempt.

Failures are real: an HTTP proxy (tests/faulty.py) in front of a chDB-backed ClickHouse
endpoint (tests/chhttp.py) resets connections, loses answers to statements that did run,
and refuses statements with ClickHouse's own error answers; wrong SQL, wrong types and a
rotated password are refused by the endpoint itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from olapsync import ImportResult, TargetError, import_olap_data
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.inserter import Inserter
from tests.chhttp import ChdbHttpServer
from tests.faulty import Fault, FaultyProxy
from tests.support import SMALL_EVENTS, Source, checksums

PASSWORD = "retry-pw"
STAGING_INSERT = r"^INSERT INTO `[^`]+`\.`telemetry_events_staging`"
REJECTED_INSERT = r"^INSERT INTO `[^`]+`\.`telemetry_events_rejected`"


@pytest.fixture(scope="module")
def endpoint(chdb_dir: Path) -> Iterator[ChdbHttpServer]:
    with ChdbHttpServer(str(chdb_dir), password=PASSWORD) as server:
        yield server


@pytest.fixture
def proxy(endpoint: ChdbHttpServer) -> Iterator[FaultyProxy]:
    with FaultyProxy(endpoint.port) as p:
        yield p


@pytest.fixture
def through(proxy: FaultyProxy, source: Source, endpoint: ChdbHttpServer) -> Iterator[Config]:
    """A config whose ClickHouse is the endpoint behind the faulty proxy."""
    cfg = Config(
        crm_url=source.url,
        telemetry_url=source.url,
        clickhouse_url=proxy.url("default", PASSWORD),
        database="retry_" + uuid.uuid4().hex[:10],
        batch_size=2000,
    )
    yield cfg
    with Target(Config(clickhouse_url=endpoint.url(), database=cfg.database)) as t:
        t.command(f"DROP DATABASE IF EXISTS `{cfg.database}` SYNC")


def exact(config: Config, endpoint: ChdbHttpServer, result: ImportResult) -> None:
    """The run loaded each source row once: no row lost, none doubled."""
    assert result.status == "success"
    assert result.events_loaded == SMALL_EVENTS
    direct = Config(clickhouse_url=endpoint.url(), database=config.database)
    with Target(direct, create_database=False) as ch:
        assert ch.count("telemetry_events") == SMALL_EVENTS
        assert ch.scalar(f"SELECT count() - uniqExact(id) FROM {ch.t('telemetry_events')}") == 0
        rejected = ch.t("telemetry_events_rejected")
        assert ch.scalar(f"SELECT count() - uniqExact(id) FROM {rejected}") == 0
        assert sum(n for n, _ in checksums(ch).values()) == SMALL_EVENTS


# -- transient: retried, and the run is exact ---------------------------------------------
def test_an_insert_whose_answer_is_lost_is_retried_once_and_not_doubled(
    through: Config, proxy: FaultyProxy, endpoint: ChdbHttpServer
) -> None:
    # The example: the insert ran, the connection died before its answer.
    proxy.faults.append(Fault(STAGING_INSERT, "lose_answer"))
    result = import_olap_data(config=through)
    assert [action for action, _ in proxy.fired] == ["lose_answer"]
    assert result.insert_retries == 1
    exact(through, endpoint, result)


def test_inserts_reset_or_refused_while_busy_are_retried(
    through: Config, proxy: FaultyProxy, endpoint: ChdbHttpServer
) -> None:
    # Nothing reached the server: two resets in a row (a server restarting), then refusals
    # of a busy or briefly read-only server.
    proxy.faults += [
        Fault(STAGING_INSERT, "reset", times=2),
        Fault(REJECTED_INSERT, "error", code=202, name="TOO_MANY_SIMULTANEOUS_QUERIES"),
        Fault(STAGING_INSERT, "error", code=242, name="TABLE_IS_READ_ONLY"),
    ]
    result = import_olap_data(config=through)
    assert sorted(action for action, _ in proxy.fired) == ["error", "error", "reset", "reset"]
    assert result.insert_retries == 4
    exact(through, endpoint, result)


def test_reads_of_system_tables_and_counts_are_retried(
    through: Config, proxy: FaultyProxy, endpoint: ChdbHttpServer
) -> None:
    proxy.faults += [
        Fault(r"FROM system\.parts", "error", code=241, name="MEMORY_LIMIT_EXCEEDED"),
        Fault(r"FROM system\.tables", "error", code=999, name="KEEPER_EXCEPTION"),
        Fault(r"SELECT count\(\) FROM `[^`]+`\.`users", "error", code=159, name="TIMEOUT"),
    ]
    result = import_olap_data(config=through)
    assert len(proxy.fired) == 3, proxy.fired
    exact(through, endpoint, result)


# -- final: one attempt, a clear error ----------------------------------------------------
def test_a_syntax_error_is_not_retried(through: Config, proxy: FaultyProxy) -> None:
    with Target(through) as target, pytest.raises(TargetError) as info:
        target.rows("SELEC count() FROM system.one", what="count")
    assert info.value.code == 62
    assert proxy.count(r"SELEC count\(\)") == 1


def test_a_type_error_in_an_insert_is_not_retried(through: Config, proxy: FaultyProxy) -> None:
    with Target(through) as target:
        target.command(f"CREATE TABLE {target.t('typed')} (n UInt32) ENGINE = MergeTree ORDER BY n")
        inserter = Inserter(target, "run-types")
        inserter.put("typed", pa.table({"n": ["not a number"]}))
        with pytest.raises(TargetError, match="insert into typed") as info:
            inserter.close()
    assert info.value.code not in (None, 202, 210)
    assert inserter.retried == 0
    assert proxy.count(r"^INSERT INTO `[^`]+`\.`typed`") == 1


def test_a_refused_login_is_not_retried(
    through: Config, proxy: FaultyProxy, endpoint: ChdbHttpServer
) -> None:
    # The password is rotated while a run holds its connection.
    with Target(through) as target:
        target.command(f"CREATE TABLE {target.t('t')} (n UInt32) ENGINE = MergeTree ORDER BY n")
        endpoint.password = "rotated"
        try:
            inserter = Inserter(target, "run-auth")
            inserter.put("t", pa.table({"n": pa.array([1], pa.uint32())}))
            with pytest.raises(TargetError) as info:
                inserter.close()
            with pytest.raises(TargetError) as read:
                target.count("t")
        finally:
            endpoint.password = PASSWORD
    assert info.value.code == read.value.code == 516
    assert inserter.retried == 0
    assert proxy.count(r"^INSERT INTO `[^`]+`\.`t`") == 1
    assert proxy.count(r"SELECT count\(\) FROM `[^`]+`\.`t`") == 1
    assert PASSWORD not in str(info.value)


def test_a_statement_that_is_not_idempotent_is_not_retried(
    through: Config, proxy: FaultyProxy
) -> None:
    # EXCHANGE TABLES sent twice would swap back: a lost answer must fail, not repeat it.
    with Target(through) as target:
        for name in ("a", "b"):
            target.command(f"CREATE TABLE {target.t(name)} (n UInt8) ENGINE = Memory")
        proxy.faults.append(Fault(r"^EXCHANGE TABLES", "lose_answer"))
        with pytest.raises(TargetError) as info:
            target.command(f"EXCHANGE TABLES {target.t('a')} AND {target.t('b')}")
    assert info.value.code == 210
    assert proxy.count(r"^EXCHANGE TABLES") == 1
