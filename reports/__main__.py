"""`python -m reports` (or `reports`): serve the reports app with uvicorn. `olapsync serve`
starts the same service with the same options (`olapsync.service.OPTIONS`), and both end
the same way: one `error: ...` line and the status `olapsync.cli.exits` assigns (2 for a
refused or malformed setting, 1 for a start-up failure such as ClickHouse unreachable).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from olapsync.config import ENV_KEYS
from olapsync.errors import OlapsyncError
from olapsync.redact import scrub
from olapsync.service import DESCRIPTION, SERVICE_PACKAGES, missing_extra
from olapsync.urls import secrets_in


def _fail(exc: OlapsyncError) -> NoReturn:
    from olapsync.cli.exits import exit_status  # only now: it loads the whole CLI

    secrets = secrets_in(*(os.environ.get(key, "") for key in ENV_KEYS.values()))
    print(f"error: {scrub(str(exc), secrets)}", file=sys.stderr)
    sys.exit(exit_status(exc))


def main(argv: list[str] | None = None) -> None:
    try:
        from reports.server import serve
        from reports.settings import add_arguments, from_args
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in SERVICE_PACKAGES:
            raise
        _fail(missing_extra(exc))  # the words and the status of `olapsync serve`
    parser = argparse.ArgumentParser(prog="reports", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        serve(from_args(args))
    except OlapsyncError as exc:
        _fail(exc)


if __name__ == "__main__":
    main()
