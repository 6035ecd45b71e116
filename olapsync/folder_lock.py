"""The embedded engine's folder lock: chDB opens one folder per process, and two processes
on one folder would corrupt it, so a process holds an exclusive `flock` on a file in the
folder for as long as it has a client open, and writes who it is there for the next one to
name in its error.
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
import threading
from pathlib import Path

from olapsync.errors import RunLockedError, TargetBusyError, TargetError

# One chDB engine folder per process; clients in one process share it, so the folder lock
# is taken once per process and counted.
_folder_locks: dict[str, tuple[int, int]] = {}
_folder_guard = threading.Lock()
LOCK_FILE = "olapsync.pid"
# The holder a folder's lock file names (`_argv`) when it is an olapsync command that ends by
# itself, as opposed to the reports service or a notebook, which hold the folder until stopped.
_A_RUN = re.compile(r"\(olapsync (import|sync|verify|init|demo|status|report|examples)\b")


def lock_folder(path: str, *, create: bool) -> None:
    """Take the folder's lock for this process (counted: clients in one process share it),
    creating the folder when `create`.

    Raises:
        TargetError: the folder does not exist (and `create` is False).
        RunLockedError: another olapsync command that ends by itself holds it (CLI exit 75).
        TargetBusyError: another process holds it until stopped (the reports service, a
            notebook).
    """
    with _folder_guard:
        if path in _folder_locks:
            fd, count = _folder_locks[path]
            _folder_locks[path] = (fd, count + 1)
            return
        if create:
            Path(path).mkdir(parents=True, exist_ok=True)
        elif not Path(path).is_dir():
            raise TargetError(
                f"The embedded ClickHouse folder {path} does not exist: run olapsync import "
                "first, or point OLAPSYNC_CLICKHOUSE_URL at the folder an import wrote."
            )
        fd = os.open(os.path.join(path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if _A_RUN.search(holder):
                # Another command that ends by itself: a scheduler may skip this run (75).
                raise RunLockedError(
                    f"The embedded ClickHouse folder {path} is in use by {holder}: try again "
                    "when it finishes."
                ) from exc
            raise TargetBusyError(
                f"The embedded ClickHouse folder {path} is in use by {holder}: stop that "
                "process (the reports service, a notebook) or point "
                "OLAPSYNC_CLICKHOUSE_URL at another folder."
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({' '.join(_argv())})".encode())
        _folder_locks[path] = (fd, 1)


def _argv() -> list[str]:
    if not sys.argv or not sys.argv[0]:
        return ["python"]
    program = Path(sys.argv[0])
    # `python -m package` runs package/__main__.py: name the package.
    name = program.parent.name if program.name == "__main__.py" else program.name
    return [name, *sys.argv[1:2]]


def unlock_folder(path: str) -> None:
    """Give back one hold of `lock_folder`; the last one releases the lock."""
    with _folder_guard:
        fd, count = _folder_locks.get(path, (-1, 0))
        if count > 1:
            _folder_locks[path] = (fd, count - 1)
        elif count == 1:
            del _folder_locks[path]
            os.close(fd)
