from __future__ import annotations

from pathlib import Path

import pytest

from olapsync.config import Config
from olapsync.errors import ConfigError


def test_defaults_follow_the_seed_ports_and_an_absolute_chdb_folder() -> None:
    cfg = Config.from_env({})
    assert cfg.crm_url == "postgresql://postgres@localhost:5444/crm"
    assert cfg.telemetry_url == "postgresql://postgres@localhost:5445/telemetry"
    assert cfg.clickhouse_url == "chdb://" + str(Path("olapsync-data/clickhouse").resolve())
    assert cfg.database == "olap"


def test_options_override_variables_which_override_defaults() -> None:
    env = {
        "OLAPSYNC_CRM_URL": "postgresql://a@h:1/crm",
        "OLAPSYNC_CLICKHOUSE_URL": "http://u:p@ch:8123",
        "OLAPSYNC_CLICKHOUSE_DATABASE": "analytics",
    }
    cfg = Config.from_env(env, crm_url="postgresql://b@h:2/crm", database=None)
    assert cfg.crm_url == "postgresql://b@h:2/crm"
    assert cfg.clickhouse_url == "http://u:p@ch:8123"
    assert cfg.database == "analytics"
    assert cfg.chdb_path is None


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        (
            {"OLAPSYNC_CRM_URL": "mysql://root:hunter2@h/crm"},
            "OLAPSYNC_CRM_URL='mysql://root:***@h/crm'",
        ),
        ({"OLAPSYNC_CLICKHOUSE_URL": "tcp://x:9000"}, "OLAPSYNC_CLICKHOUSE_URL"),
        ({"OLAPSYNC_CLICKHOUSE_DATABASE": "olap; DROP"}, "not a plain identifier"),
        ({"OLAPSYNC_CLICKHOUSE_URL": "chdb://"}, "names no folder"),
    ],
)
def test_bad_values_name_the_variable_and_hide_passwords(
    env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env(env)
    assert fragment in str(info.value)
    assert "hunter2" not in str(info.value)


def test_describe_redacts() -> None:
    cfg = Config(crm_url="postgresql://app:pw1@db/crm", clickhouse_url="https://u:pw2@ch:8443")
    text = str(cfg.describe())
    assert "pw1" not in text
    assert "pw2" not in text
    assert "app:***@db" in text
