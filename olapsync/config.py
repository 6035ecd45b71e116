"""Where the data comes from and where it goes: one URL per database.

Build a `Config` directly in a notebook, or from the environment with `Config.from_env()`;
keyword overrides (the CLI's options) win over variables, which win over defaults.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from olapsync.errors import ConfigError
from olapsync.redact import redact_url

DEFAULT_CRM_URL = "postgresql://postgres@localhost:5444/crm"
DEFAULT_TELEMETRY_URL = "postgresql://postgres@localhost:5445/telemetry"
DEFAULT_DATABASE = "olap"
DEFAULT_DATA_DIR = "olapsync-data"

ENV_KEYS = {
    "crm_url": "OLAPSYNC_CRM_URL",
    "telemetry_url": "OLAPSYNC_TELEMETRY_URL",
    "clickhouse_url": "OLAPSYNC_CLICKHOUSE_URL",
    "database": "OLAPSYNC_CLICKHOUSE_DATABASE",
}
_OPTION_NAMES = {
    "crm_url": "--crm-url",
    "telemetry_url": "--telemetry-url",
    "clickhouse_url": "--clickhouse-url",
    "database": "--database",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def default_clickhouse_url(base: Path | None = None) -> str:
    """`chdb://` plus `./olapsync-data/clickhouse` made absolute."""
    root = (base or Path.cwd()) / DEFAULT_DATA_DIR / "clickhouse"
    return "chdb://" + str(root.resolve())


@dataclass(frozen=True)
class Config:
    """Connection settings for one olapsync target.

    Args:
        crm_url: PostgreSQL URL of the CRM database (the `users` table).
        telemetry_url: PostgreSQL URL of the Telemetry database (`telemetry_events`).
        clickhouse_url: `http(s)://user:pass@host:port` for a server, or `chdb:///abs/path`
            for the embedded engine.
        database: ClickHouse database that holds the tables; created if missing.
        batch_size: rows per Arrow batch read from PostgreSQL; bounds memory.
        read_partitions: parallel connections for big reads (connectorx `partition_num`).

    Example:
        >>> cfg = Config(clickhouse_url="chdb:///tmp/olap")
        >>> cfg.database
        'olap'
    """

    crm_url: str = DEFAULT_CRM_URL
    telemetry_url: str = DEFAULT_TELEMETRY_URL
    clickhouse_url: str = field(default_factory=default_clickhouse_url)
    database: str = DEFAULT_DATABASE
    batch_size: int = 250_000
    read_partitions: int = 2

    def __post_init__(self) -> None:
        for name in ("crm_url", "telemetry_url"):
            url = getattr(self, name)
            if not url.startswith(("postgresql://", "postgres://")):
                raise ConfigError(
                    f"Config {ENV_KEYS[name]}={redact_url(url)!r} is not a PostgreSQL URL: "
                    f"use postgresql://user:pass@host:port/db (or pass {_OPTION_NAMES[name]})."
                )
        if not self.clickhouse_url.startswith(("chdb://", "http://", "https://")):
            raise ConfigError(
                f"Config OLAPSYNC_CLICKHOUSE_URL={redact_url(self.clickhouse_url)!r} is not "
                "supported: use http(s)://user:pass@host:8123 or chdb:///absolute/path."
            )
        if self.clickhouse_url.startswith("chdb://") and not self.chdb_path:
            raise ConfigError(
                "Config OLAPSYNC_CLICKHOUSE_URL='chdb://' names no folder: use chdb:///abs/path."
            )
        if not _IDENTIFIER.match(self.database):
            raise ConfigError(
                f"Config OLAPSYNC_CLICKHOUSE_DATABASE={self.database!r} is not a plain "
                "identifier: use letters, digits and underscores."
            )
        if self.batch_size < 1000:
            raise ConfigError(f"batch_size={self.batch_size} is too small: use 1000 or more.")
        if self.read_partitions < 1:
            raise ConfigError(f"read_partitions={self.read_partitions} must be 1 or more.")

    @property
    def chdb_path(self) -> str | None:
        """The embedded engine's folder, or None for a server URL."""
        if not self.clickhouse_url.startswith("chdb://"):
            return None
        path = self.clickhouse_url.removeprefix("chdb://").split("?", 1)[0]
        return str(Path(path).resolve()) if path else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Build a Config from `OLAPSYNC_*` variables; non-None `overrides` win.

        Args:
            environ: the variables to read; defaults to `os.environ`.
            overrides: field values, e.g. from CLI options; None means "not given".

        Raises:
            ConfigError: a value is malformed (the message names the variable).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, key in ENV_KEYS.items():
            raw = env.get(key, "").strip()
            if raw:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __repr__(self) -> str:
        # Configs end up in logs and tracebacks: never show a password.
        fields = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"Config({fields}, batch_size={self.batch_size}, read_partitions={self.read_partitions})"

    def with_(self, **changes: Any) -> Config:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def describe(self) -> dict[str, str]:
        """The settings with passwords redacted, for display."""
        return {
            "crm_url": redact_url(self.crm_url),
            "telemetry_url": redact_url(self.telemetry_url),
            "clickhouse_url": redact_url(self.clickhouse_url),
            "database": self.database,
        }
