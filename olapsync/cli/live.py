"""A run's progress on stderr (import, sync, and verify's steps): a live table on a terminal,
one line per step in a log."""

from __future__ import annotations

from typing import Any

import click
from rich.live import Live
from rich.table import Table

from olapsync import words
from olapsync.cli.render import err_console
from olapsync.progress import ProgressEvent


class ImportDisplay:
    """A `ProgressEvent` callback: one line per partition with rows, rows/s and what happened
    to it. The demo's "source" steps are printed as lines above it."""

    def __init__(self) -> None:
        # On a terminal, a live table; in a log (cron, CI), one plain line per step.
        self.interactive = err_console.is_terminal
        self.logged_at = 0.0
        self.live = Live(console=err_console, refresh_per_second=4, transient=False)
        self.last: ProgressEvent | None = None
        self.extract_started: float | None = None
        self.extract_seconds = 0.0
        self.rows: dict[str, int] = {}
        self.state: dict[str, str] = {}

    def __enter__(self) -> ImportDisplay:
        if self.interactive:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.interactive:
            self.live.__exit__(*exc)

    def __call__(self, event: ProgressEvent) -> None:
        if event.phase == "source":
            # One line each, however long its folder's path: not wrapped, and no markup.
            err_console.print(event.message, soft_wrap=True, markup=False)
            return
        if event.phase == "extract":
            if self.extract_started is None:
                self.extract_started = event.seconds
            self.extract_seconds = max(event.seconds - self.extract_started, 1e-3)
            self.rows.update(event.partitions)
            for pid in event.partitions:
                self.state.setdefault(pid, "reading")
        if event.partition is not None:
            self.state[event.partition] = event.message
            if event.phase == "publish" and event.rows:
                self.rows[event.partition] = event.rows
        self.last = event
        if self.interactive:
            self.live.update(self._render())
        elif event.phase != "extract" or event.seconds - self.logged_at >= 5:
            self.logged_at = event.seconds
            where = f"{event.partition}: " if event.partition else ""
            rows = (
                f" ({words.count(event.rows, 'row')})"
                if event.rows and event.phase == "publish"
                else ""
            )
            click.echo(
                f"[{event.seconds:6.1f}s] {event.phase}: {where}{event.message}{rows}", err=True
            )

    def _render(self) -> Table:
        event = self.last
        table = Table(box=None, header_style="bold")
        for name in ("partition", "rows", "rows/s", "state"):
            table.add_column(name, justify="left" if name in ("partition", "state") else "right")
        if event is None:
            return table
        span = self.extract_seconds or 1e-3
        for pid in sorted(self.state):
            rows = self.rows.get(pid, 0)
            table.add_row(pid, f"{rows:,}", f"{rows / span:,.0f}", self.state[pid])
        total = sum(self.rows.values())
        table.add_row("[bold]all[/bold]", f"{total:,}", f"{total / span:,.0f}", "")
        table.caption = f"{event.phase}: {event.message}  ({event.seconds:.1f}s)"
        return table
