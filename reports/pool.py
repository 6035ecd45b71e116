"""ClickHouse clients for the request threads: a bounded wait for one, and a separate client
for `/health`, so that neither a burst of reports nor a slow query can hang a request or the
health check."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.queries import Reports


class PoolBusy(Exception):
    """Every client stayed busy for the whole wait: the service answers 503 "busy"."""


class ClientPool:
    """`size` ClickHouse targets shared by the request threads, one per request at a time,
    and one more that only answers `/health`.

    Args:
        config: where the data is.
        size: clients for reports (chDB serialises calls per client; several let requests
            run side by side).
        timeout: seconds a request waits for a free client before `PoolBusy`.

    The service takes a slot (an async semaphore of `size`) before it calls `reports()`, so
    the wait happens on the event loop, bounded, without holding a worker thread.
    """

    def __init__(self, config: Config, size: int = 4, *, timeout: float = 3.0):
        self.config = config
        self.size = size
        self.timeout = timeout
        # Last in, first out: at low concurrency the same (warm) client serves every request.
        self._idle: queue.LifoQueue[Target] = queue.LifoQueue()
        self._all: list[Target] = []
        self._health_lock = threading.Lock()
        try:
            for _ in range(size + 1):
                self._all.append(Target(config, create_database=False))
        except BaseException:
            self.close()
            raise
        self._health = self._all[0]
        for target in self._all[1:]:
            self._idle.put(target)

    @contextlib.contextmanager
    def reports(self) -> Iterator[Reports]:
        """A `Reports` on a free client, for the duration of the block (blocking).

        Raises:
            PoolBusy: no client came free within `timeout` seconds.
        """
        try:
            target = self._idle.get(timeout=self.timeout)
        except queue.Empty:
            raise PoolBusy(f"no ClickHouse client came free in {self.timeout:g} s") from None
        try:
            yield Reports(target=target)
        finally:
            self._idle.put(target)

    def ping(self) -> bool:
        """Whether ClickHouse answers, on the health client (blocking); False at once while
        an earlier check still waits for its answer."""
        if not self._health_lock.acquire(blocking=False):
            return False
        try:
            return bool(self._health.client.ping())
        except Exception:
            return False
        finally:
            self._health_lock.release()

    def close(self) -> None:
        for target in self._all:
            target.close()
        self._all.clear()
