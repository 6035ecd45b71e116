"""Which ClickHouse failures are retried: by error code, decided in one place."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError

from olapsync import retry
from olapsync.clickhouse import error_code
from olapsync.errors import DataError, TargetError

# The server was briefly unable: the same statement can succeed a moment later.
TRANSIENT = {
    159: "TIMEOUT_EXCEEDED",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES",
    209: "SOCKET_TIMEOUT",
    210: "NETWORK_ERROR",
    241: "MEMORY_LIMIT_EXCEEDED",
    242: "TABLE_IS_READ_ONLY",
    252: "TOO_MANY_PARTS",
    319: "UNKNOWN_STATUS_OF_INSERT",
    999: "KEEPER_EXCEPTION",
}
# The statement, its data or the login is wrong: it fails the same way every time.
FINAL = {
    53: "TYPE_MISMATCH",
    57: "TABLE_ALREADY_EXISTS",
    60: "UNKNOWN_TABLE",
    62: "SYNTAX_ERROR",
    81: "UNKNOWN_DATABASE",
    164: "READONLY",
    497: "ACCESS_DENIED",
    516: "AUTHENTICATION_FAILED",
}


@pytest.mark.parametrize("code", sorted(TRANSIENT))
def test_transient_codes_are_retried(code: int) -> None:
    assert retry.TRANSIENT[code] == TRANSIENT[code]
    assert retry.is_transient(TargetError("x", code=code))


@pytest.mark.parametrize("code", [*sorted(FINAL), None, 1, 1002])
def test_other_codes_are_final(code: int | None) -> None:
    assert code not in retry.TRANSIENT
    assert not retry.is_transient(TargetError("x", code=code))


def test_only_target_errors_are_retried() -> None:
    assert not retry.is_transient(DataError("too many rejects"))
    assert not retry.is_transient(OSError("connection reset"))


def test_driver_errors_get_their_code() -> None:
    # No answer from the server: NETWORK_ERROR, as clickhouse-client names it.
    assert error_code(OperationalError("Error executing HTTP request")) == 210
    # The server's own code wins, also when clickhouse-connect raised it after retrying.
    assert error_code(OperationalError("HTTP 503", code=202)) == 202
    assert error_code(DatabaseError("Code: 62. Syntax error", code=62)) == 62
    # The driver refused the call itself (a misuse): no code, never retried.
    assert error_code(ProgrammingError("Setting x is readonly")) is None


def test_a_final_error_is_raised_after_one_attempt() -> None:
    attempts = []

    def syntax_error() -> None:
        attempts.append(1)
        raise TargetError("Syntax error", code=62)

    with pytest.raises(TargetError, match="Syntax error"):
        retry.call(syntax_error, what="run a query")
    assert len(attempts) == 1


def test_a_transient_error_is_retried_until_it_passes(caplog: pytest.LogCaptureFixture) -> None:
    attempts = []
    retried: list[TargetError] = []

    def busy_once() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise TargetError("Too many simultaneous queries", code=202)
        return "done"

    assert retry.call(busy_once, what="count rows", on_retry=retried.append) == "done"
    assert len(attempts) == 2
    assert [e.code for e in retried] == [202]
    assert "count rows failed (attempt 1 of 5)" in caplog.text
