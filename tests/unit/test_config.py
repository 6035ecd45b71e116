from __future__ import annotations

from pathlib import Path

import pytest

from olapsync.config import Config
from olapsync.errors import ConfigError


def test_defaults_follow_the_seed_ports_and_an_absolute_chdb_folder() -> None:
    cfg = Config.from_env({})
    assert str(cfg.crm_url) == "postgresql://postgres@localhost:5444/crm"
    assert str(cfg.telemetry_url) == "postgresql://postgres@localhost:5445/telemetry"
    assert str(cfg.clickhouse_url) == "chdb://" + str(Path("olapsync-data/clickhouse").resolve())
    assert cfg.chdb_path == str(Path("olapsync-data/clickhouse").resolve())
    assert cfg.database == "olap"


def test_options_override_variables_which_override_defaults() -> None:
    env = {
        "OLAPSYNC_CRM_URL": "postgresql://a@h:1/crm",
        "OLAPSYNC_CLICKHOUSE_URL": "http://u:pw9@ch:8123",
        "OLAPSYNC_CLICKHOUSE_DATABASE": "analytics",
    }
    cfg = Config.from_env(env, crm_url="postgresql://b@h:2/crm", database=None)
    assert str(cfg.crm_url) == "postgresql://b@h:2/crm"
    assert str(cfg.clickhouse_url) == "http://u:***@ch:8123"
    assert cfg.clickhouse_url.password is not None
    assert cfg.clickhouse_url.password.reveal() == "pw9"
    assert cfg.database == "analytics"
    assert cfg.chdb_path is None


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        (
            {"OLAPSYNC_CRM_URL": "mysql://root:hunter2@h/crm"},
            "OLAPSYNC_CRM_URL='mysql://***@h/crm'",
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


def test_describe_repr_and_format_redact() -> None:
    cfg = Config(crm_url="postgresql://app:pw1@db/crm", clickhouse_url="https://u:pw2@ch:8443")
    for text in (str(cfg.describe()), repr(cfg), str(cfg), f"{cfg.crm_url}", f"{cfg.crm_url!r}"):
        assert "pw1" not in text
        assert "pw2" not in text
    assert "app:***@db" in str(cfg.describe())
    assert "pw1" in cfg.secrets()
    assert cfg.scrub("login pw1 / pw2 failed") == "login *** / *** failed"
