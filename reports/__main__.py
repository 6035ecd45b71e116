"""`python -m reports` (or `reports`): serve the reports app with uvicorn. `olapsync serve`
starts the same `serve`, with the same options (`olapsync.service.SERVICE_OPTIONS`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from olapsync.config import ENV_KEYS, Config
from olapsync.errors import OlapsyncError
from olapsync.redact import SecretFilter, guard_handlers, scrub
from olapsync.service import DESCRIPTION, SERVICE_OPTIONS
from olapsync.urls import secrets_in
from reports.app import ClientPool, create_app


def serve(*, host: str, port: int, pool: int) -> None:
    """Serve until interrupted, with `pool` ClickHouse clients.

    Raises:
        ConfigError, TargetError: the settings are malformed or ClickHouse cannot be opened.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", force=True
    )
    config = Config.from_env()
    # Every record the service logs (uvicorn's too: they reach the root handler) loses the
    # config's passwords, whatever code wrote it.
    log_secrets = SecretFilter()
    log_secrets.add(config.secrets())
    guard_handlers(log_secrets)
    clients = ClientPool(config, size=pool)
    logging.getLogger("reports").info(
        "serving %s database %s on http://%s:%d",
        config.describe()["clickhouse_url"],
        config.database,
        host,
        port,
    )
    try:
        uvicorn.run(
            create_app(config, pool=clients),
            host=host,
            port=port,
            access_log=False,  # reports.access logs each request, without bodies
            log_config=None,
        )
    finally:
        clients.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reports", description=DESCRIPTION)
    for option in SERVICE_OPTIONS:
        parser.add_argument(
            option.name,
            type=option.type,
            default=option.default,
            help=f"{option.help} (default {option.default})",
        )
    args = parser.parse_args(argv)
    try:
        serve(host=args.host, port=args.port, pool=args.pool)
    except OlapsyncError as exc:
        secrets = secrets_in(*(os.environ.get(key, "") for key in ENV_KEYS.values()))
        print(f"error: {scrub(str(exc), secrets)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
