"""Where the data comes from and where it goes: one URL per database.

Build a `Config` directly in a notebook, or from the environment with `Config.from_env()`;
keyword overrides (the CLI's options) win over variables, which win over defaults. Each URL
is parsed once into an `olapsync.urls.Url`, so a malformed or ambiguous one is refused
before anything connects, and no message built from a Config can show a password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from olapsync.errors import ConfigError
from olapsync.redact import scrub
from olapsync.urls import (
    CLICKHOUSE_SCHEMES,
    POSTGRES_SCHEMES,
    Url,
    clickhouse_url,
    postgres_url,
)

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
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def default_clickhouse_url(base: Path | None = None) -> str:
    """`chdb://` plus `./olapsync-data/clickhouse` made absolute (percent-encoded)."""
    root = (base or Path.cwd()) / DEFAULT_DATA_DIR / "clickhouse"
    return "chdb://" + quote(str(root.resolve()), safe="/")


@dataclass(frozen=True, init=False, repr=False)
class Config:
    """Connection settings for one olapsync target.

    Args:
        crm_url: PostgreSQL URL of the CRM database (the `users` table).
        telemetry_url: PostgreSQL URL of the Telemetry database (`telemetry_events`).
        clickhouse_url: `http(s)://user:pass@host:port[/database]` for a server (https means
            TLS), or `chdb:///abs/path` for the embedded engine.
        database: ClickHouse database that holds the tables; created if missing. Default:
            the database in clickhouse_url's path, else `olap`; refused if both name one and
            they differ.
        batch_size: rows per Arrow batch read from PostgreSQL; bounds memory.
        read_partitions: parallel connections for big reads (connectorx `partition_num`).

    URLs may be given as text or as `olapsync.urls.Url`; they are held as `Url` values, whose
    `str` and `repr` never show a password (see `olapsync.urls` for what each part means).

    Raises:
        ConfigError: a value is malformed or ambiguous (the message names the variable).

    Example:
        >>> cfg = Config(clickhouse_url="chdb:///tmp/olap")
        >>> cfg.database
        'olap'
    """

    crm_url: Url
    telemetry_url: Url
    clickhouse_url: Url
    database: str
    batch_size: int
    read_partitions: int

    def __init__(
        self,
        crm_url: Url | str = DEFAULT_CRM_URL,
        telemetry_url: Url | str = DEFAULT_TELEMETRY_URL,
        clickhouse_url: Url | str | None = None,
        database: str | None = None,
        batch_size: int = 250_000,
        read_partitions: int = 2,
    ) -> None:
        ch = _clickhouse(clickhouse_url if clickhouse_url is not None else default_clickhouse_url())
        in_url = ch.database
        if database is None:
            database = in_url or DEFAULT_DATABASE
        elif in_url is not None and in_url != database:
            raise ConfigError(
                f"Config OLAPSYNC_CLICKHOUSE_DATABASE={database!r} differs from the database "
                f"{in_url!r} in OLAPSYNC_CLICKHOUSE_URL={str(ch)!r}: name the database once, "
                "in the URL's path or in --database (OLAPSYNC_CLICKHOUSE_DATABASE)."
            )
        values = {
            "crm_url": _postgres(crm_url, "crm_url"),
            "telemetry_url": _postgres(telemetry_url, "telemetry_url"),
            "clickhouse_url": ch,
            "database": database,
            "batch_size": batch_size,
            "read_partitions": read_partitions,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)
        if not _IDENTIFIER.match(self.database):
            where = (
                "the path of OLAPSYNC_CLICKHOUSE_URL" if in_url else "OLAPSYNC_CLICKHOUSE_DATABASE"
            )
            raise ConfigError(
                f"Config {where} names the database {self.database!r}, which is not a plain "
                "identifier: use letters, digits and underscores."
            )
        if self.batch_size < 1000:
            raise ConfigError(f"batch_size={self.batch_size} is too small: use 1000 or more.")
        if self.read_partitions < 1:
            raise ConfigError(f"read_partitions={self.read_partitions} must be 1 or more.")

    @property
    def chdb_path(self) -> str | None:
        """The embedded engine's folder, absolute, or None for a server URL."""
        if self.clickhouse_url.scheme != "chdb":
            return None
        return str(Path(self.clickhouse_url.path).resolve())

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
        """A copy with some fields changed.

        A new clickhouse_url brings its own database (or the default) unless `database` is
        changed too, or the current one was set apart from the URL.
        """
        if "clickhouse_url" in changes and "database" not in changes:
            implied = self.clickhouse_url.database or DEFAULT_DATABASE
            changes["database"] = None if self.database == implied else self.database
        return replace(self, **changes)

    def describe(self) -> dict[str, str]:
        """The settings with passwords redacted, for display."""
        return {
            "crm_url": str(self.crm_url),
            "telemetry_url": str(self.telemetry_url),
            "clickhouse_url": str(self.clickhouse_url),
            "database": self.database,
        }

    def secrets(self) -> tuple[str, ...]:
        """Every form of every password in the three URLs (see `olapsync.redact.Secret`)."""
        urls = (self.crm_url, self.telemetry_url, self.clickhouse_url)
        return tuple(dict.fromkeys(s for url in urls for s in url.secrets()))

    def scrub(self, text: str) -> str:
        """`text` (a driver's message, a traceback) with every password of this config
        replaced by `***`: for each place where outside text becomes ours."""
        return scrub(text, self.secrets())


def _postgres(value: Url | str, name: str) -> Url:
    setting = ENV_KEYS[name]
    if isinstance(value, Url):
        if value.scheme not in POSTGRES_SCHEMES:
            raise ConfigError(
                f"Config {setting}={str(value)!r} is not a PostgreSQL URL: "
                "use postgresql://user:password@host:port/database."
            )
        return value
    return postgres_url(value, setting=setting)


def _clickhouse(value: Url | str) -> Url:
    setting = ENV_KEYS["clickhouse_url"]
    if isinstance(value, Url):
        if value.scheme not in CLICKHOUSE_SCHEMES:
            raise ConfigError(
                f"Config {setting}={str(value)!r} is not a ClickHouse URL: "
                "use http(s)://user:password@host:port or chdb:///absolute/path."
            )
        return value
    return clickhouse_url(value, setting=setting)
