"""Errors raised by olapsync, chosen by what the caller can do about them.

    OlapsyncError
    ├── ConfigError       a setting is missing or malformed: fix the option or variable
    ├── SourceError       PostgreSQL cannot be reached or returns something unreadable
    ├── TargetError       ClickHouse cannot be reached or refused a statement
    │   └── TargetBusyError   another process holds the target: wait or stop it
    │       └── RunLockedError    another olapsync run holds the run lock: try later
    ├── DataError         the data itself stops the run (bad users, too many rejects,
    │                     a shrinking users table): fix the source or loosen the guard
    └── UnknownUserError  a report asked for a user the users table does not have

Every message is one sentence with the offending value and the fix, and never contains a
password: URLs are redacted before they reach a message.
"""

from __future__ import annotations


class OlapsyncError(Exception):
    """The root of every error olapsync raises on purpose."""


class ConfigError(OlapsyncError):
    """A setting is missing or malformed."""


class SourceError(OlapsyncError):
    """Reading a PostgreSQL source failed."""


class TargetError(OlapsyncError):
    """A ClickHouse statement failed.

    Attributes:
        table: the table the statement was about, when there was one.
        code: ClickHouse's numeric error code, when it sent one.
    """

    def __init__(self, message: str, *, table: str | None = None, code: int | None = None):
        super().__init__(message)
        self.table = table
        self.code = code


class TargetBusyError(TargetError):
    """Another run, or another process, holds the target."""


class RunLockedError(TargetBusyError):
    """Another olapsync run holds the target's run lock; trying again later will do.

    The CLI exits with 75 (EX_TEMPFAIL) for it, so that a scheduler can skip a run quietly.
    """


class DataError(OlapsyncError):
    """The source data stops the run before anything is published."""


class UnknownUserError(OlapsyncError):
    """The user id is not in the users table."""
