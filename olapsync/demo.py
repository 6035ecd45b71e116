"""The demo: an embedded PostgreSQL with `crm` and `telemetry` databases of generated,
seed-shaped data, imported into the embedded ClickHouse. `olapsync demo` runs it; the
benchmarks start their sources with `start_source`, and the tests run the command.

Needs the `demo` extra (`pip install 'olapsync[demo]'`; `uv run` installs it).

    >>> from olapsync.demo import run_demo
    >>> run_demo("./olapsync-data", users=100, events=10_000).result.events_loaded  # doctest: +SKIP
    10000
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from olapsync.api import import_olap_data
from olapsync.config import DEFAULT_DATA_DIR, Config
from olapsync.generate import Generated, describe, ensure_databases, generate
from olapsync.pgembed import EmbeddedPostgres
from olapsync.progress import ProgressCallback, ProgressEvent
from olapsync.results import ImportResult
from olapsync.window import Window


@dataclass(frozen=True)
class DemoSource:
    """A running embedded PostgreSQL holding the generated data.

    server: the server (`server.stop()` stops it, if `start_source` started it).
    generated: what the databases hold; `generated.created` is False when it was reused.
    seconds: the time spent generating (0 when reused).
    """

    server: EmbeddedPostgres
    generated: Generated
    seconds: float

    @property
    def crm_url(self) -> str:
        return self.server.url("crm")

    @property
    def telemetry_url(self) -> str:
        return self.server.url("telemetry")


def start_source(
    folder: str | Path,
    *,
    users: int,
    events: int,
    bad_rows: bool = True,
    orphans: bool = True,
    on_progress: ProgressCallback | None = None,
) -> DemoSource:
    """Start (or attach to) an embedded PostgreSQL in `folder` whose `crm` and `telemetry`
    databases hold `users` users and `events` events (`olapsync.generate`: data generated
    there with these sizes is reused as it is, edits included; other data is replaced, and
    a progress line says why first).

    Args:
        bad_rows / orphans: also plant one bad row of each kind, and events of users the CRM
            does not have (the benchmarks leave them out: ClickHouse's own pull cannot skip
            them).
        on_progress: told each step as a `ProgressEvent` of phase "source".

    Raises:
        ConfigError: the `demo` extra is not installed.
        SourceError: the server did not start.
    """
    t0 = time.monotonic()

    def progress(message: str) -> None:
        if on_progress is not None:
            on_progress(ProgressEvent("source", message, seconds=time.monotonic() - t0))

    server = EmbeddedPostgres(folder)
    progress(f"Starting PostgreSQL in {server.data_dir} …")
    server.start()
    try:
        started = time.monotonic()
        ensure_databases(server.url())
        made = generate(
            server.url("crm"),
            server.url("telemetry"),
            users=users,
            events=events,
            bad_rows=bad_rows,
            orphans=orphans,
        )
    except BaseException:
        server.stop()
        raise
    seconds = time.monotonic() - started if made.created else 0.0
    for line in describe_source(made, server.data_dir, seconds):
        progress(line)
    return DemoSource(server, made, seconds)


def describe_source(made: Generated, folder: Path, seconds: float) -> list[str]:
    """What `start_source` did with the data in `folder`, in a line or two: generated (after
    a line saying why, when it replaced data that was there), or reused, with the row counts
    now when they differ from those generated (the data was edited)."""
    sizes = describe(made.users, made.events, made.bad_rows, made.orphan_events)
    if made.created:
        why = [f"The demo data in {folder} {made.why}: generating it again."] * bool(made.why)
        return [*why, f"Generated {sizes} in {seconds:.1f}s"]
    if made.edited:
        now = describe(made.users_now, made.events_now)
        return [
            f"Reusing the demo data in {folder} as edited since it was generated: {now} now, "
            f"generated as {sizes}"
        ]
    return [f"Reusing {sizes}"]


@dataclass(frozen=True)
class DemoRun:
    """What `run_demo` did: the import's result, the settings it ran with (where the data
    now is) and its source (still running with `keep_postgres`)."""

    result: ImportResult
    config: Config
    source: DemoSource


def run_demo(
    data_dir: str | Path = DEFAULT_DATA_DIR,
    *,
    users: int = 1000,
    events: int = 1_000_000,
    window: Window | None = None,
    keep_postgres: bool = False,
    on_progress: ProgressCallback | None = None,
) -> DemoRun:
    """The whole job on generated data: PostgreSQL under `data_dir/postgres`, filled by
    `start_source` (a few bad rows and orphans included), imported into the embedded
    ClickHouse under `data_dir/clickhouse`. A second run with the same sizes reuses the
    data, edited or not (see `start_source`).

    Args:
        window: import only these event times (default: everything).
        keep_postgres: leave the PostgreSQL server running (for `olapsync import`).
        on_progress: told every step, the source's and the import's.

    Raises:
        ConfigError, SourceError, TargetError, DataError: see `olapsync.errors`.
    """
    data_dir = Path(data_dir).resolve()
    window = window or Window()
    source = start_source(
        data_dir / "postgres", users=users, events=events, on_progress=on_progress
    )
    try:
        config = Config(
            crm_url=source.crm_url,
            telemetry_url=source.telemetry_url,
            clickhouse_url="chdb://" + str(data_dir / "clickhouse"),
        )
        result = import_olap_data(window.start, window.end, config=config, on_progress=on_progress)
    finally:
        if not keep_postgres:
            source.server.stop()
    return DemoRun(result, config, source)
