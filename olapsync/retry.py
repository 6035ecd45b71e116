"""Which ClickHouse failures are worth another try, and how a statement is retried.

One rule for every statement olapsync retries: a `TargetError` is transient when its
ClickHouse error code says the server (or the way to it) was briefly unable, never when it
says the statement, its data or the login is wrong. The codes and their names are
ClickHouse's own (`src/Common/ErrorCodes.cpp`, also `system.errors`). A failure without an
answer from the server (a reset or refused connection, a timeout) has no code from the
server; `olapsync.clickhouse` gives it NETWORK_ERROR (210), as clickhouse-client reports
the same failure, so that it is classified here like any other.

Only statements that can be sent twice with the same effect are retried: reads, statements
written to be idempotent (`... IF NOT EXISTS`), and inserts that carry an
`insert_deduplication_token` (ClickHouse drops the second copy). The waits and limits are
tenacity's exponential backoff with jitter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import tenacity

from olapsync.errors import TargetError

log = logging.getLogger(__name__)
T = TypeVar("T")

NETWORK_ERROR = 210

# Retried: the same statement can succeed a moment later.
TRANSIENT: dict[int, str] = {
    # The connection: nothing, or not all, reached the server or came back.
    95: "CANNOT_READ_FROM_SOCKET",
    96: "CANNOT_WRITE_TO_SOCKET",
    198: "DNS_ERROR",
    203: "NO_FREE_CONNECTION",
    209: "SOCKET_TIMEOUT",
    210: "NETWORK_ERROR",
    279: "ALL_CONNECTION_TRIES_FAILED",
    # Load: the server refused or gave up for now because of what else it was doing.
    # TIMEOUT_EXCEEDED also ends waits for a table lock or a distributed DDL queue.
    159: "TIMEOUT_EXCEEDED",
    173: "CANNOT_ALLOCATE_MEMORY",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES",
    # Debatable: a query that needs more memory than its own limit fails every time, but a
    # run's statements are bounded (one batch, one count), so here it is nearly always the
    # server's total limit, reached by other queries; a true excess costs a few retries.
    241: "MEMORY_LIMIT_EXCEEDED",
    252: "TOO_MANY_PARTS",
    364: "RECEIVED_ERROR_TOO_MANY_REQUESTS",
    439: "CANNOT_SCHEDULE_TASK",
    473: "DEADLOCK_AVOIDED",
    745: "SERVER_OVERLOADED",
    # Replication and Keeper: a replica or the coordinator is briefly away.
    225: "NO_ZOOKEEPER",
    242: "TABLE_IS_READ_ONLY",
    285: "TOO_FEW_LIVE_REPLICAS",
    286: "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE",
    289: "REPLICA_IS_NOT_IN_QUORUM",
    319: "UNKNOWN_STATUS_OF_INSERT",
    384: "PART_IS_TEMPORARILY_LOCKED",
    999: "KEEPER_EXCEPTION",
}

# Attempts in all (the first included), and the backoff between them: 0.5 s, then doubling
# up to 8 s, plus up to 0.5 s of jitter, so that a server restart of ~10 s is ridden out.
ATTEMPTS = 5
WAIT_INITIAL = 0.5
WAIT_MAX = 8.0
WAIT_JITTER = 0.5
# No new attempt starts after this long (seconds) since the first.
DEADLINE = 60.0


def is_transient(error: BaseException) -> bool:
    """Whether `error` is a `TargetError` whose ClickHouse code is in `TRANSIENT`.

    Everything else is final: an unknown code, a code-less error (the driver refused the
    call before anything was sent), and every error that is not a `TargetError`.
    """
    return isinstance(error, TargetError) and error.code in TRANSIENT


def call(
    attempt: Callable[[], T],
    *,
    what: str,
    on_retry: Callable[[TargetError], None] | None = None,
) -> T:
    """`attempt()`, tried again while it raises a transient `TargetError`.

    Args:
        attempt: the idempotent call; it raises `TargetError` on failure.
        what: what it does, for the warning logged before each retry.
        on_retry: called with the error before each retry (e.g. to count retries).

    Returns:
        What `attempt` returned.

    Raises:
        TargetError: a final error at once, or the last transient one after `ATTEMPTS`
            attempts or `DEADLINE` seconds.
    """

    def before_sleep(state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        assert isinstance(error, TargetError)
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s failed (attempt %d of %d): %s; retrying in %.1fs",
            what,
            state.attempt_number,
            ATTEMPTS,
            error,
            wait,
        )
        if on_retry is not None:
            on_retry(error)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=tenacity.stop_after_attempt(ATTEMPTS) | tenacity.stop_after_delay(DEADLINE),
        wait=tenacity.wait_exponential(multiplier=WAIT_INITIAL, max=WAIT_MAX)
        + tenacity.wait_random(0, WAIT_JITTER),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(attempt)
