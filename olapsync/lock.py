"""The run lock: at most one olapsync run writes to a target database at a time."""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime

import polars as pl

from olapsync.clickhouse import Target
from olapsync.errors import RunLockedError, TargetError

LOCK = "olapsync_lock"
# ClickHouse error code for "table already exists".
TABLE_ALREADY_EXISTS = 57


class RunLock:
    """At most one run per target database at a time.

    The lock is a table: `CREATE TABLE` without `IF NOT EXISTS` succeeds for exactly one
    caller. The table holds the owner (run id, host, pid); a lock whose owner process is
    gone (same host), or whose rows vanished with a server restart (Memory engine), is
    stale and taken over by renaming it away, which again only one caller can do.
    """

    def __init__(self, target: Target, run_id: str):
        self.target = target
        self.run_id = run_id
        self.held = False

    def _create(self) -> bool:
        try:
            self.target.command(
                f"CREATE TABLE {self.target.t(LOCK)} (run_id String, host String, pid UInt32, "
                "started_at DateTime('UTC')) ENGINE = Memory",
                what="take the run lock",
                table=LOCK,
            )
        except TargetError as exc:
            if exc.code == TABLE_ALREADY_EXISTS or "already exists" in str(exc):
                return False
            raise
        self.target.insert_arrow(
            LOCK,
            pl.DataFrame(
                {
                    "run_id": [self.run_id],
                    "host": [socket.gethostname()],
                    "pid": pl.Series([os.getpid()], dtype=pl.UInt32),
                    "started_at": pl.Series([int(time.time())], dtype=pl.UInt32),
                }
            ).to_arrow(),
        )
        return True

    def _owner(self) -> tuple[str, str, int, datetime] | None:
        rows = self.target.rows(
            f"SELECT run_id, host, pid, started_at FROM {self.target.t(LOCK)} LIMIT 1",
            what="read the run lock",
            table=LOCK,
        )
        if not rows:
            return None
        run_id, host, pid, started = rows[0]
        return str(run_id), str(host), int(pid), started

    def acquire(self) -> None:
        if self._create():
            self.held = True
            return
        owner = self._owner()
        if owner is None:
            # Either the owner has not written its row yet, or a restart emptied the table.
            time.sleep(1.0)
            owner = self._owner()
        if owner is not None and not _is_stale(owner[1], owner[2]):
            run_id, host, pid, started = owner
            raise RunLockedError(
                f"Another olapsync run ({run_id}, pid {pid} on {host}, started {started}) is "
                f"writing to database {self.target.database!r}: wait for it to finish (if it "
                f"died on another host, DROP TABLE {self.target.database}.{LOCK}).",
                table=LOCK,
            )
        # Stale: rename it away (only one taker can), then take it.
        stale = f"{LOCK}_stale_{self.run_id}"
        self.target.command(
            f"RENAME TABLE {self.target.t(LOCK)} TO {self.target.t(stale)}",
            what="clear a stale run lock",
            table=LOCK,
        )
        self.target.command(f"DROP TABLE IF EXISTS {self.target.t(stale)}", table=stale)
        if not self._create():
            raise RunLockedError(
                f"Another olapsync run took the lock on database {self.target.database!r} "
                "just now: wait for it to finish.",
                table=LOCK,
            )
        self.held = True

    def release(self) -> None:
        if self.held:
            self.target.command(f"DROP TABLE IF EXISTS {self.target.t(LOCK)}", table=LOCK)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _is_stale(host: str, pid: int) -> bool:
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
