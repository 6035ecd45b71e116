"""How the `olapsync` command ends, in one place: what a script or a scheduler can act on."""

from __future__ import annotations

from enum import IntEnum

from olapsync.errors import ConfigError, RunLockedError


class ExitStatus(IntEnum):
    """The command's exit statuses (docs/operations.md says what a scheduler does with each)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    # Not an error: `verify` ran and found a month that differs, which monitoring alerts on.
    DRIFT = 3
    # EX_TEMPFAIL (sysexits.h): try again later. A scheduler can skip such a run quietly.
    LOCKED = 75


MEANING = {
    ExitStatus.OK: "success",
    ExitStatus.FAILURE: "a failed run (one line on stderr says why)",
    ExitStatus.USAGE: "a usage or configuration error (an unknown option, a malformed or "
    "refused setting, a reversed window)",
    ExitStatus.DRIFT: "`verify` found a month where ClickHouse differs from PostgreSQL",
    ExitStatus.LOCKED: "another olapsync run holds the target's run lock: try again later",
}


def exit_status(error: BaseException) -> ExitStatus:
    """The status a command that failed with `error` exits with.

    A `ConfigError` is a usage error wherever it is found (an option, a variable, the
    service's settings): retrying will not help, fixing the command or the settings will.
    `python -m reports` exits with the same statuses.
    """
    if isinstance(error, RunLockedError):
        return ExitStatus.LOCKED
    if isinstance(error, ConfigError):
        return ExitStatus.USAGE
    return ExitStatus.FAILURE


def describe(*statuses: ExitStatus) -> str:
    """`statuses` (default: all of them) as one line of help text."""
    chosen = statuses or tuple(ExitStatus)
    return "Exit status: " + ", ".join(f"{int(s)} {MEANING[s]}" for s in chosen) + "."
