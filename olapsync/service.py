"""Starting the reports service (`reports/`) from olapsync: its options, declared once for
both `olapsync serve` and `python -m reports`, and the check that the `service` extra is
installed. The service itself lives in `reports` (which imports olapsync, never the other way
round); this module imports it only when asked to serve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from olapsync.errors import ConfigError

# The `service` extra (pyproject.toml): what `reports` needs beyond olapsync's own packages.
SERVICE_PACKAGES = frozenset(
    {"starlette", "uvicorn", "httptools", "uvloop", "jwt", "msgspec", "prometheus_client"}
)
DEFAULT_ADMIN_ROLE = "reports-admin"


@dataclass(frozen=True)
class Option:
    """One setting: its field, command-line flag, environment variable and help text."""

    field: str
    flag: str
    env: str | None
    kind: Literal["str", "int", "float", "list", "flag"]
    help: str


OPTIONS: tuple[Option, ...] = (
    Option("host", "--host", "OLAPSYNC_REPORTS_HOST", "str", "address to bind (default 127.0.0.1)"),
    Option("port", "--port", "OLAPSYNC_REPORTS_PORT", "int", "port (default 3003)"),
    Option("pool", "--pool", "OLAPSYNC_REPORTS_POOL", "int", "ClickHouse clients (default 4)"),
    Option(
        "pool_timeout",
        "--pool-timeout",
        "OLAPSYNC_REPORTS_POOL_TIMEOUT",
        "float",
        "seconds a request waits for a free ClickHouse client before a 503 (default 3)",
    ),
    Option(
        "body_timeout",
        "--body-timeout",
        "OLAPSYNC_REPORTS_BODY_TIMEOUT",
        "float",
        "seconds a request body may take to arrive before a 408 (default 10)",
    ),
    Option(
        "oidc_issuer",
        "--oidc-issuer",
        "OLAPSYNC_OIDC_ISSUER",
        "str",
        "OIDC issuer, e.g. https://sso.example/realms/clinic: turns sign-in on",
    ),
    Option(
        "oidc_audience",
        "--oidc-audience",
        "OLAPSYNC_OIDC_AUDIENCE",
        "str",
        "the `aud` a token must carry (required with an issuer)",
    ),
    Option(
        "oidc_jwks_url",
        "--oidc-jwks-url",
        "OLAPSYNC_OIDC_JWKS_URL",
        "str",
        "JWKS URL to use instead of the issuer's discovery document",
    ),
    Option(
        "oidc_timeout",
        "--oidc-timeout",
        "OLAPSYNC_OIDC_TIMEOUT",
        "float",
        "seconds to wait for the discovery document or the JWKS (default 5)",
    ),
    Option(
        "admin_role",
        "--admin-role",
        "OLAPSYNC_REPORTS_ADMIN_ROLE",
        "str",
        f"role that may read every user's report (default {DEFAULT_ADMIN_ROLE})",
    ),
    Option(
        "cors_origins",
        "--cors-origins",
        "OLAPSYNC_REPORTS_CORS_ORIGINS",
        "list",
        "comma-separated origins browsers may call from (default: none, CORS off)",
    ),
    Option(
        "no_auth",
        "--no-auth",
        None,  # a flag only: serving everyone's health data openly must be typed out
        "flag",
        "serve without sign-in even on a non-loopback address: anyone who reaches the port "
        "reads every report",
    ),
)


DESCRIPTION = (
    "Serve POST /report and GET /me/report over the data olapsync imported. ClickHouse is "
    "OLAPSYNC_CLICKHOUSE_URL (default: the embedded engine in ./olapsync-data/clickhouse) and "
    "OLAPSYNC_CLICKHOUSE_DATABASE (default olap). Without an OIDC issuer the service binds "
    "only to loopback; see docs/service.md."
)


def serve(**overrides: Any) -> None:
    """Serve until interrupted, with the `OPTIONS` given (None: the variable, else the
    default); see `reports.server.serve`.

    Raises:
        ConfigError: the `service` extra is not installed, or a setting is malformed or
            unsafe (e.g. no sign-in on a non-loopback address).
        TargetError: ClickHouse cannot be opened (e.g. TargetBusyError: the embedded
            folder is in use by another process).
    """
    try:
        from reports.server import serve as run_service
        from reports.settings import ServiceSettings
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in SERVICE_PACKAGES:
            raise
        raise missing_extra(exc) from exc
    run_service(ServiceSettings.from_env(**overrides))


def missing_extra(exc: ImportError) -> ConfigError:
    """The error both entry points end with when the `service` extra is not installed."""
    return ConfigError(
        f"The reports service needs the 'service' extra ({exc.name} is missing): "
        "pip install 'olapsync[service]' (`uv run` in a clone installs it)."
    )
