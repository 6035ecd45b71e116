"""`python -m reports` (or `reports`): serve the reports app with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from olapsync.config import Config
from olapsync.errors import OlapsyncError
from olapsync.redact import SecretFilter, guard_handlers, scrub
from reports.app import ClientPool, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="reports",
        description="Serve POST /report over the data olapsync imported. ClickHouse is "
        "OLAPSYNC_CLICKHOUSE_URL (default: the embedded engine in ./olapsync-data/clickhouse) "
        "and OLAPSYNC_CLICKHOUSE_DATABASE (default olap).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3003, help="port (default 3003)")
    parser.add_argument("--pool", type=int, default=4, help="ClickHouse clients (default 4)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = None
    try:
        config = Config.from_env()
        # Every record the service logs (uvicorn's too: they reach the root handler) loses
        # the config's passwords, whatever code wrote it.
        log_secrets = SecretFilter()
        log_secrets.add(config.secrets())
        guard_handlers(log_secrets)
        pool = ClientPool(config, size=args.pool)
    except OlapsyncError as exc:
        secrets = config.secrets() if config is not None else ()
        print(f"error: {scrub(str(exc), secrets)}", file=sys.stderr)
        sys.exit(1)
    logging.getLogger("reports").info(
        "serving %s database %s on http://%s:%d",
        config.describe()["clickhouse_url"],
        config.database,
        args.host,
        args.port,
    )
    try:
        uvicorn.run(
            create_app(config, pool=pool),
            host=args.host,
            port=args.port,
            access_log=False,  # reports.access logs each request, without bodies
            log_config=None,
        )
    finally:
        pool.close()


if __name__ == "__main__":
    main()
