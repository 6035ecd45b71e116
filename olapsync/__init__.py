"""olapsync: move operational data from PostgreSQL into ClickHouse, partition by partition and
atomically, and serve analytics reports from it.

    >>> from datetime import datetime
    >>> from olapsync import import_olap_data
    >>> import_olap_data(datetime(2026, 1, 1), datetime(2026, 2, 1))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.metadata

from olapsync.api import import_olap_data, init, plan_import, status, sync
from olapsync.config import Config
from olapsync.errors import (
    ConfigError,
    DataError,
    OlapsyncError,
    RunLockedError,
    SourceError,
    TargetBusyError,
    TargetError,
    UnknownUserError,
)
from olapsync.progress import ProgressEvent
from olapsync.queries import ProsthesisStats, Reports, UserReport, user_report
from olapsync.results import ImportPlan, ImportResult, RunRecord, Status
from olapsync.specs import TELEMETRY, USERS, Column, Rule, TableSpec, telemetry_spec
from olapsync.verify import MonthCheck, VerifyReport, verify
from olapsync.window import Window

try:
    __version__ = importlib.metadata.version("olapsync")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "TELEMETRY",
    "USERS",
    "Column",
    "Config",
    "ConfigError",
    "DataError",
    "ImportPlan",
    "ImportResult",
    "MonthCheck",
    "OlapsyncError",
    "ProgressEvent",
    "ProsthesisStats",
    "Reports",
    "Rule",
    "RunLockedError",
    "RunRecord",
    "SourceError",
    "Status",
    "TableSpec",
    "TargetBusyError",
    "TargetError",
    "UnknownUserError",
    "UserReport",
    "VerifyReport",
    "Window",
    "import_olap_data",
    "init",
    "plan_import",
    "status",
    "sync",
    "telemetry_spec",
    "user_report",
    "verify",
]
