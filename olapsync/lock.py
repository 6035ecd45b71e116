"""The run lock: at most one olapsync run writes to a target database at a time.

The lock is a table, `olapsync_lock`, and its owner is the table's comment, written by the
one statement that takes it:

    CREATE TABLE db.olapsync_lock (...) ENGINE = Memory COMMENT '{"run_id": ..., "pid": ...}'

`CREATE TABLE` without `IF NOT EXISTS` succeeds for exactly one caller, and the comment is
part of the table from its first moment, so there is no instant at which the lock exists
without its owner: a contender reads the owner from `system.tables` and either finds a live
owner (the run is refused: `RunLockedError`) or a dead one.

A lock whose owner process is gone (the owner ran on this host and its pid no longer exists)
is taken over by renaming it to `olapsync_lock_stale_<its uuid>`. Only one caller can
rename it there: the tombstone stays until the next holder of the lock releases it, so a
second contender that judged the same lock dead finds the name taken and looks again. A
takeover then checks that the table it moved is the one it judged dead (it puts back a
lock created in the meantime, which only a contender stalled across a whole run can meet),
and a release drops the lock only while it is still its own.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from olapsync.clickhouse import Target, string_literal
from olapsync.errors import RunLockedError, TargetError

log = logging.getLogger(__name__)

LOCK = "olapsync_lock"
STALE_PREFIX = "olapsync_lock_stale_"
# ClickHouse error codes (src/Common/ErrorCodes.cpp).
TABLE_ALREADY_EXISTS = 57
UNKNOWN_TABLE = 60
# How often `acquire` tries when the lock changes hands while it looks (each try follows
# another caller's release or takeover, so this bounds nothing but pathological churn).
TRIES = 5


@dataclass(frozen=True)
class Owner:
    """Who holds the lock: the run, the process (host, pid), when it took the lock (UTC),
    and a token unique to that take, which tells a retried `CREATE` its own lock."""

    run_id: str
    host: str
    pid: int
    started_at: str
    token: str

    @classmethod
    def me(cls, run_id: str) -> Owner:
        return cls(
            run_id=run_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            token=uuid.uuid4().hex,
        )

    def comment(self) -> str:
        # ensure_ascii: the literal holds printable ASCII only.
        return json.dumps(asdict(self), ensure_ascii=True, sort_keys=True)

    @classmethod
    def from_comment(cls, text: str) -> Owner | None:
        """The owner a lock's comment names; None for a comment olapsync did not write."""
        try:
            data: Any = json.loads(text)
            return cls(
                run_id=str(data["run_id"]),
                host=str(data["host"]),
                pid=int(data["pid"]),
                started_at=str(data["started_at"]),
                token=str(data["token"]),
            )
        except (ValueError, TypeError, KeyError):
            return None

    def is_gone(self) -> bool:
        """Whether the owner process is known to be dead: it ran on this host and its pid
        no longer exists. An owner on another host is never judged dead."""
        if self.host != socket.gethostname() or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    def describe(self) -> str:
        return f"{self.run_id}, pid {self.pid} on {self.host}, started {self.started_at}"


@dataclass(frozen=True)
class Held:
    """A lock table as a contender sees it: its table uuid and its owner (None when the
    table is not one olapsync made)."""

    uuid: str
    owner: Owner | None


class RunLock:
    """At most one run per target database at a time (see the module docstring).

    Use as a context manager, or `acquire()` and `release()`. Attributes: `owner`, this
    run's `Owner`; `held`, the lock table while this run holds it; `took_over`, whether
    this run moved a dead owner's lock away (it may then still lose the new lock to a
    faster run).

    Raises (from `acquire`):
        RunLockedError: another run holds the lock and its process is alive (or unknown).
        TargetError: ClickHouse refused a statement.
    """

    def __init__(self, target: Target, run_id: str):
        self.target = target
        self.run_id = run_id
        self.owner = Owner.me(run_id)
        self.held: Held | None = None
        self.took_over = False

    # -- looking -------------------------------------------------------------------------
    def inspect(self, name: str = LOCK) -> Held | None:
        """The lock table `name` as it is now; None when there is none. One read of
        `system.tables`, where a table and its comment appear together."""
        rows = self.target.rows(
            "SELECT toString(uuid), comment FROM system.tables "
            "WHERE database = {db:String} AND name = {name:String}",
            {"db": self.target.database, "name": name},
            what="read the run lock",
            table=name,
        )
        if not rows:
            return None
        table_uuid, comment = rows[0]
        return Held(str(table_uuid), Owner.from_comment(str(comment)))

    # -- taking --------------------------------------------------------------------------
    def _create(self) -> None:
        try:
            # A retried CREATE whose first answer was lost finds the table; `acquire` then
            # recognises it by the token, so the statement may be retried.
            self.target.command(
                f"CREATE TABLE {self.target.t(LOCK)} (run_id String) ENGINE = Memory "
                f"COMMENT {string_literal(self.owner.comment())}",
                what="take the run lock",
                table=LOCK,
                idempotent=True,
            )
        except TargetError as exc:
            if exc.code != TABLE_ALREADY_EXISTS:
                raise

    def acquire(self) -> None:
        """Take the lock, taking over a dead owner's; see the class docstring."""
        self._acquire()

    def _acquire(self) -> None:
        for _ in range(TRIES):
            self._create()
            found = self.inspect()
            if found is None:
                continue  # released between our CREATE and our look: try again
            if found.owner is not None and found.owner.token == self.owner.token:
                self.held = found
                return
            if found.owner is None:
                raise RunLockedError(
                    f"Database {self.target.database!r} has a table {LOCK} that olapsync "
                    f"did not make (or an older version made): if no olapsync run is going, "
                    f"DROP TABLE {self.target.database}.{LOCK}.",
                    table=LOCK,
                )
            if not found.owner.is_gone():
                raise RunLockedError(
                    f"Another olapsync run ({found.owner.describe()}) is writing to database "
                    f"{self.target.database!r}: wait for it to finish (if it died on another "
                    f"host, DROP TABLE {self.target.database}.{LOCK}).",
                    table=LOCK,
                )
            self.take_over(found)
        raise RunLockedError(
            f"The run lock of database {self.target.database!r} changed hands {TRIES} times "
            "while this run tried to take it: other runs are starting; try again later.",
            table=LOCK,
        )

    def take_over(self, stale: Held) -> None:
        """Move the dead owner's lock `stale` out of the way, if it is still there; the
        caller then tries `CREATE` again. Does nothing when another caller got there first."""
        assert stale.owner is not None
        tombstone = STALE_PREFIX + stale.uuid.replace("-", "")
        try:
            self.target.command(
                f"RENAME TABLE {self.target.t(LOCK)} TO {self.target.t(tombstone)}",
                what="move a dead run's lock away",
                table=LOCK,
            )
        except TargetError as exc:
            # 57: another caller took this stale lock over and keeps its tombstone;
            # 60: the lock is gone already. Either way, look again.
            if exc.code in (TABLE_ALREADY_EXISTS, UNKNOWN_TABLE):
                return
            raise
        moved = self.inspect(tombstone)
        if moved is not None and moved.uuid != stale.uuid:
            # Between our look and our rename, the stale lock was taken over and released
            # and a live run took the lock: give it back.
            self.target.command(
                f"RENAME TABLE {self.target.t(tombstone)} TO {self.target.t(LOCK)}",
                what="give back a live run's lock",
                table=LOCK,
            )
            return
        log.warning(
            "took over the run lock of %s from %s, whose process is gone",
            self.target.database,
            stale.owner.describe(),
        )
        # The tombstone stays until the run that holds the lock releases it: while it exists
        # no one else can move a lock to this name.
        self.took_over = True

    # -- letting go ----------------------------------------------------------------------
    def release(self) -> None:
        """Drop the lock if it is still this run's, then the tombstones of dead runs' locks
        (whoever moved them: one that moved a lock but lost the new one leaves its
        tombstone to the holder)."""
        if self.held is None:
            return
        found = self.inspect()
        if found is not None and found.uuid == self.held.uuid:
            self.target.command(
                f"DROP TABLE IF EXISTS {self.target.t(LOCK)} SYNC",
                what="release the run lock",
                table=LOCK,
                idempotent=True,
            )
        else:
            log.warning("the run lock of %s was no longer this run's", self.target.database)
        self.held = None
        rows = self.target.rows(
            "SELECT name FROM system.tables WHERE database = {db:String} "
            "AND startsWith(name, {prefix:String})",
            {"db": self.target.database, "prefix": STALE_PREFIX},
            what="list dead runs' locks",
        )
        for (name,) in rows:
            self.target.command(
                f"DROP TABLE IF EXISTS {self.target.t(str(name))} SYNC",
                what="drop a dead run's lock",
                table=str(name),
                idempotent=True,
            )

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
