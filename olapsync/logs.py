"""Which log records reach the handlers the CLI and the service own.

Libraries olapsync drives log their own view of a failure that olapsync reports anyway, in
one redacted sentence: urllib3 "Retrying (Retry(total=0, ...)) after connection broken by
...", clickhouse-connect "Unexpected Http Driver Exception". Printed first, they bury that
sentence (and may quote what they were given), so the handlers pass only the records of
olapsync's own loggers unless the user asks for everything (`-v`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

# The loggers whose records an olapsync command shows without -v.
OWN_LOGGERS = ("olapsync", "reports")


class OwnRecords(logging.Filter):
    """A handler filter passing only records of the loggers named (and their children)."""

    def __init__(self, names: Iterable[str] = OWN_LOGGERS) -> None:
        super().__init__()
        self.names = tuple(names)

    def filter(self, record: logging.LogRecord) -> bool:
        return any(record.name == n or record.name.startswith(n + ".") for n in self.names)
