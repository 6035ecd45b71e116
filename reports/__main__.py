"""`python -m reports` (or `reports`): serve the reports app with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

from olapsync.errors import ConfigError, OlapsyncError
from olapsync.redact import redact_text

_SERVICE_EXTRA = {"jwt", "msgspec", "prometheus_client", "cryptography"}


def main(argv: list[str] | None = None) -> None:
    try:
        from reports.server import serve
        from reports.settings import add_arguments, from_args
    except ModuleNotFoundError as exc:
        if exc.name not in _SERVICE_EXTRA:
            raise
        print(
            f"error: the reports service needs {exc.name}: install olapsync[service] "
            "(pip install 'olapsync[service]').",
            file=sys.stderr,
        )
        sys.exit(1)
    parser = argparse.ArgumentParser(
        prog="reports",
        description="Serve POST /report and GET /me/report over the data olapsync imported. "
        "ClickHouse is OLAPSYNC_CLICKHOUSE_URL (default: the embedded engine in "
        "./olapsync-data/clickhouse) and OLAPSYNC_CLICKHOUSE_DATABASE (default olap). Without "
        "an OIDC issuer the service binds only to loopback; see docs/service.md.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        serve(settings)
    except OlapsyncError as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
