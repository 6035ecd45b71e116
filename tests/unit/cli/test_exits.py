"""The command's exit statuses, named once: what a scheduler can act on."""

from __future__ import annotations

import pytest

from olapsync import ConfigError, DataError, RunLockedError, SourceError, TargetBusyError
from olapsync.cli.exits import ExitStatus, describe, exit_status


def test_a_held_run_lock_is_a_temporary_failure_and_everything_else_a_failure() -> None:
    assert exit_status(RunLockedError("another run")) == 75  # EX_TEMPFAIL
    # A chDB folder held by another process is busy too, but waiting is not the fix.
    assert exit_status(TargetBusyError("folder in use")) == ExitStatus.FAILURE == 1
    for error in (SourceError("down"), DataError("bad"), RuntimeError("bug")):
        assert exit_status(error) == 1


@pytest.mark.parametrize("status", list(ExitStatus))
def test_the_help_text_names_every_status(status: ExitStatus) -> None:
    assert f" {int(status)} " in describe()


def test_a_refused_or_malformed_setting_is_a_usage_error_wherever_it_is_found() -> None:
    # An option, a variable, the service's settings, a reversed window: retrying will not
    # help, so a scheduler should not treat it as a failed run worth retrying.
    assert exit_status(ConfigError("Refusing to serve reports on 0.0.0.0")) == ExitStatus.USAGE
    assert exit_status(ConfigError("Config OLAPSYNC_CRM_URL ...")) == 2


def test_drift_is_3_and_a_command_can_name_only_its_own_statuses() -> None:
    assert ExitStatus.DRIFT == 3
    text = describe(ExitStatus.OK, ExitStatus.LOCKED)
    assert text.startswith("Exit status: 0 success, 75 another olapsync run")
    assert " 3 " not in text
