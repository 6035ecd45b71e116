"""Inserting a run's batches on a background thread, so that reading the next batch from
PostgreSQL overlaps loading the previous one into ClickHouse.
"""

from __future__ import annotations

import queue
import threading

import pyarrow as pa

from olapsync import retry
from olapsync.clickhouse import Target
from olapsync.errors import TargetError

# Batches waiting for the insert thread; the queue is short, so memory stays bounded by a few
# batches whatever the table's size.
QUEUE_DEPTH = 2


class Inserter:
    """Inserts Arrow tables into a target in order, on one background thread.

    Each insert carries a token unique to the run and batch (`insert_deduplication_token`);
    an insert that failed transiently (`olapsync.retry`: a lost connection, an overloaded
    server) is retried with the same token, so an insert that did land but whose answer was
    lost is dropped by ClickHouse instead of doubling rows (the tables keep a deduplication
    window: `olapsync.schema.DEDUP`). Any other error (wrong types, a missing table, a
    refused login) fails the insert at once.

    `put` raises the first insert error; `close` waits for the queue to drain and raises it
    too. Attributes: `sent`, batches queued; `retried`, inserts retried.
    """

    def __init__(self, target: Target, run_id: str):
        self.target = target
        self.run_id = run_id
        self.sent = 0
        self.retried = 0
        self.queue: queue.Queue[tuple[str, pa.Table, str] | None] = queue.Queue(QUEUE_DEPTH)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="olapsync-insert", daemon=True)
        self.thread.start()

    def _insert(self, table: str, data: pa.Table, token: str) -> None:
        settings = {"insert_deduplication_token": token}

        def count(_: TargetError) -> None:
            self.retried += 1

        retry.call(
            lambda: self.target.insert_arrow(table, data, settings=settings),
            what=f"insert into {table} (token {token})",
            on_retry=count,
        )

    def _work(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue
            try:
                self._insert(*item)
            except BaseException as exc:
                self.error = exc

    def put(self, table: str, data: pa.Table) -> None:
        """Queue `data` for `table`; blocks while the queue is full."""
        self._raise()
        self.sent += 1
        self.queue.put((table, data, f"{self.run_id}:{table}:{self.sent}"))

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Wait until every queued batch is inserted; raise the first insert error."""
        self.queue.put(None)
        self.thread.join()
        self._raise()
