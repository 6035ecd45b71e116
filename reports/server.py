"""Run the reports service under uvicorn: the one entry point `python -m reports` (and any
other front end, such as `olapsync serve`) calls once it has its `ServiceSettings`."""

from __future__ import annotations

import logging

import uvicorn

from olapsync.config import Config
from olapsync.logs import OWN_LOGGERS, OwnRecords
from olapsync.redact import SecretFilter, guard_handlers
from reports.app import create_app
from reports.pool import ClientPool
from reports.settings import ServiceSettings

log = logging.getLogger("reports")


def serve(settings: ServiceSettings, config: Config | None = None) -> None:
    """Open the ClickHouse clients, then serve until interrupted (blocking).

    Args:
        settings: checked service settings (bind address, sign-in, timeouts).
        config: where the data is; defaults to `Config.from_env()`.

    Raises:
        OlapsyncError: the configuration is malformed or ClickHouse cannot be opened (before
            the port is bound).
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", force=True
    )
    config = config or Config.from_env()
    # Every record the service logs (uvicorn's too: they reach the root handler) loses the
    # config's passwords, whatever code wrote it.
    log_secrets = SecretFilter()
    log_secrets.add(config.secrets())
    guard_handlers(log_secrets)
    # The service's own records and uvicorn's (the server's: a port in use, a crashed
    # request); not the drivers' warnings, which repeat what `reports` logs in one line.
    for handler in logging.getLogger().handlers:
        handler.addFilter(OwnRecords((*OWN_LOGGERS, "uvicorn")))
    pool = ClientPool(config, size=settings.pool, timeout=settings.pool_timeout)
    sign_in = (
        f"sign-in by {settings.oidc_issuer} for audience {settings.oidc_audience}"
        if settings.auth_enabled
        else "no sign-in (--no-auth)"
        if settings.no_auth
        else "no sign-in (loopback only)"
    )
    log.info(
        "serving %s database %s on http://%s:%d, %s",
        config.describe()["clickhouse_url"],
        config.database,
        settings.host,
        settings.port,
        sign_in,
    )
    try:
        uvicorn.run(
            create_app(config, pool=pool, settings=settings),
            host=settings.host,
            port=settings.port,
            access_log=False,  # reports.access logs each request, without headers or bodies
            log_config=None,
        )
    finally:
        pool.close()
