"""`python -m reports` (or `reports`): serve the reports app with uvicorn. `olapsync serve`
starts the same service with the same options (`olapsync.service.OPTIONS`)."""

from __future__ import annotations

import argparse
import os
import sys

from olapsync.config import ENV_KEYS
from olapsync.errors import ConfigError, OlapsyncError
from olapsync.redact import scrub
from olapsync.service import DESCRIPTION, SERVICE_PACKAGES
from olapsync.urls import secrets_in


def main(argv: list[str] | None = None) -> None:
    try:
        from reports.server import serve
        from reports.settings import add_arguments, from_args
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in SERVICE_PACKAGES:
            raise
        print(
            f"error: the reports service needs {exc.name}: install olapsync[service] "
            "(pip install 'olapsync[service]').",
            file=sys.stderr,
        )
        sys.exit(1)
    parser = argparse.ArgumentParser(prog="reports", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        serve(settings)
    except OlapsyncError as exc:
        secrets = secrets_in(*(os.environ.get(key, "") for key in ENV_KEYS.values()))
        print(f"error: {scrub(str(exc), secrets)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
