"""A PostgreSQL that cannot be reached: the one sentence says what to check, and never the
password. The README's case: a notebook run after `olapsync demo`, whose PostgreSQL stopped
when the demo ended."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from olapsync import SourceError, import_olap_data
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.pg import check_connection
from olapsync.pgembed import EmbeddedPostgres
from tests.support import cli

SECRET = "Unre4chable-pw"
DEMO_FIX = "(for the demo's, run `olapsync demo --keep-postgres` and export the URLs it prints)?"


@pytest.fixture(scope="module")
def stopped_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of an embedded PostgreSQL (the demo's kind) that was started, then stopped."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("stopped") / "data")
    server.start()
    url = server.url("crm")
    server.stop()
    return url.replace("postgres@", f"postgres:{SECRET}@")


@pytest.fixture
def stopped_config(stopped_url: str, clickhouse_url: str) -> Iterator[Config]:
    config = Config(
        crm_url=stopped_url,
        telemetry_url=stopped_url,
        clickhouse_url=clickhouse_url,
        database="t_" + uuid.uuid4().hex[:10],
    )
    yield config
    with Target(config) as target:
        target.command(f"DROP DATABASE IF EXISTS `{config.database}` SYNC")


def test_a_notebook_after_the_demo_is_told_to_keep_its_postgres(stopped_config: Config) -> None:
    address = stopped_config.crm_url.host + ":" + str(stopped_config.crm_url.port)
    with pytest.raises(SourceError) as info:
        import_olap_data(config=stopped_config)
    message = str(info.value)
    assert "Connection refused" in message
    assert message.endswith(f": is PostgreSQL running at {address} {DEMO_FIX}")
    assert "\n" not in message
    assert SECRET not in message + repr(info.value)


def test_the_cli_says_the_same_in_its_one_line(stopped_url: str, tmp_path: Path) -> None:
    env = {
        "OLAPSYNC_CRM_URL": stopped_url,
        "OLAPSYNC_TELEMETRY_URL": stopped_url,
        "OLAPSYNC_CLICKHOUSE_URL": f"chdb://{tmp_path}",
    }
    for command in (["import"], ["import", "--dry-run"], ["sync"]):
        done = cli(*command, env=env)
        assert done.returncode == 1, (command, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("error: PostgreSQL at postgresql://postgres:***@127.0.0.1:")
        assert lines[0].endswith(DEMO_FIX)
        assert SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("url", "ending"),
    [
        (
            f"postgresql://app:{SECRET}@127.0.0.1:1/crm",
            f"is PostgreSQL running at 127.0.0.1:1 {DEMO_FIX}",
        ),
        (
            f"postgresql://app:{SECRET}@localhost:1/crm",
            f"is PostgreSQL running at localhost:1 {DEMO_FIX}",
        ),
        (
            f"postgresql://app:{SECRET}@no-such-host.invalid:5432/crm",
            "check the host name 'no-such-host.invalid' in the URL.",
        ),
    ],
    ids=["closed-port", "closed-port-by-name", "unknown-host"],
)
def test_an_unreachable_address_says_what_to_check(url: str, ending: str) -> None:
    with pytest.raises(SourceError) as info:
        check_connection(url)
    assert str(info.value).endswith(ending), str(info.value)
    assert SECRET not in str(info.value) + repr(info.value)
