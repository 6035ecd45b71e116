"""The command group and what every command shares: the options that say where the data is,
`-v`, timestamps and durations as option values, and the one place errors are caught.

Every command runs inside `OlapsyncGroup.invoke`. An error ends the command there, with one
line on stderr (`error: ...`, passwords redacted; with -v the redacted traceback first) and
the exit status `olapsync.cli.exits` assigns to it. click's own usage errors keep their
exit status 2 and their usage lines, and end with the same `error: ...` line
(`OlapsyncGroup.main`). Without -v only olapsync's own log records reach stderr
(`olapsync.logs`): a library's view of the failure would bury ours.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import click

from olapsync.cli.exits import exit_status
from olapsync.config import ENV_KEYS, Config
from olapsync.delta import parse_lag
from olapsync.errors import OlapsyncError
from olapsync.logs import OwnRecords
from olapsync.redact import scrub
from olapsync.urls import secrets_in
from olapsync.window import parse_ts

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    """What the options of the running command said: where the data is, and -v.

    It lives on click's context object, so the group can redact and explain an error even
    when the command failed before it built its `Config`.
    """

    options: dict[str, str] = field(default_factory=dict)  # Config field -> value given
    verbose: bool = False

    def config(self) -> Config:
        """The settings: these options, else `OLAPSYNC_*` variables, else the defaults.

        Raises:
            ConfigError: a value is malformed.
        """
        return Config.from_env(None, **self.options)

    def secrets(self) -> tuple[str, ...]:
        """The passwords in every URL this command may have used."""
        urls = [*self.options.values(), *(os.environ.get(key, "") for key in ENV_KEYS.values())]
        return secrets_in(*urls)


pass_state = click.make_pass_decorator(CliState)


class OlapsyncGroup(click.Group):
    """A click group that catches every command's errors in one place (httpx's `_main.py`
    pattern): one redacted line, and an exit status from `olapsync.cli.exits`."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """click's `main`, printing click's own errors (usage errors, an aborted command)
        with the prefix every other error has: `error: ...`, not click's `Error: ...`."""
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        try:
            status = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.exceptions.ClickException as exc:
            _show(exc)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("error: aborted.", err=True)
            sys.exit(1)
        # Without standalone mode click returns the status `ctx.exit` was given, else what
        # the command returned (None for every olapsync command).
        sys.exit(status if isinstance(status, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        state = ctx.ensure_object(CliState)
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            secrets = state.secrets()
            if state.verbose:
                text = "".join(traceback.format_exception(exc))
                click.echo(scrub(text, secrets), err=True)
            if isinstance(exc, OlapsyncError):
                message = str(exc)
            else:
                message = f"unexpected {type(exc).__name__}: {exc} (rerun with -v for details)"
            click.echo(f"error: {scrub(message, secrets)}", err=True)
            ctx.exit(exit_status(exc))


def _show(exc: click.exceptions.ClickException) -> None:
    if type(exc).show not in (click.ClickException.show, click.UsageError.show):
        exc.show()  # e.g. `olapsync` alone prints the help, not an error
        return
    ctx = exc.ctx if isinstance(exc, click.UsageError) else None
    if ctx is not None:
        click.echo(ctx.get_usage(), err=True)
        if ctx.command.get_help_option(ctx) is not None:
            click.echo(f"Try '{ctx.command_path} --help' for help.\n", err=True)
    click.echo(f"error: {exc.format_message()}", err=True)


class _RedactingFormatter(logging.Formatter):
    # The state, not its secrets now: options given after -v are parsed after it.
    def __init__(self, fmt: str, state: CliState):
        super().__init__(fmt)
        self.state = state

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record), self.state.secrets())


def _verbose(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    state = ctx.ensure_object(CliState)
    state.verbose = state.verbose or value
    # Without -v, a handler like logging's last resort (warnings, bare), so that warnings
    # are scrubbed too, for olapsync's own records only; with it, every step of every library.
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(asctime)s %(name)s %(message)s" if state.verbose else "%(message)s"
    handler.setFormatter(_RedactingFormatter(fmt, state))
    if not state.verbose:
        handler.addFilter(OwnRecords())
    logging.basicConfig(
        level=logging.INFO if state.verbose else logging.WARNING, handlers=[handler], force=True
    )


def verbose_option(func: F) -> F:
    """-v: log each step and show tracebacks."""
    option = click.option(
        "-v",
        "--verbose",
        is_flag=True,
        expose_value=False,
        callback=_verbose,
        help="Log each step; show tracebacks.",
    )
    return option(func)


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None and param.name is not None:
        ctx.ensure_object(CliState).options[param.name] = value


def connection_options(func: F) -> F:
    """--crm-url, --telemetry-url, --clickhouse-url, --database and -v; the command receives
    them as its first argument, a `CliState`."""
    options = [
        ("--crm-url", "URL", "CRM PostgreSQL URL [env OLAPSYNC_CRM_URL]."),
        ("--telemetry-url", "URL", "Telemetry PostgreSQL URL [env OLAPSYNC_TELEMETRY_URL]."),
        (
            "--clickhouse-url",
            "URL",
            "http(s)://user:pass@host:8123 or chdb:///abs/path "
            "[env OLAPSYNC_CLICKHOUSE_URL; default chdb://./olapsync-data/clickhouse].",
        ),
        (
            "--database",
            "NAME",
            "ClickHouse database [env OLAPSYNC_CLICKHOUSE_DATABASE; default olap].",
        ),
    ]
    func = cast(F, pass_state(func))
    func = verbose_option(func)
    for name, metavar, text in reversed(options):
        option = click.option(
            name, metavar=metavar, help=text, expose_value=False, callback=_remember
        )
        func = option(func)
    return func


def run_options(func: F) -> F:
    """--allow-shrink and --max-rejected-ratio, the guards of a run that publishes (import,
    sync)."""
    func = click.option(
        "--max-rejected-ratio",
        type=click.FloatRange(0, 1),
        default=0.01,
        show_default=True,
        help="Fail, publishing nothing, when a larger share of the table's source rows would "
        "be rejected (the rows read, and for months not read those their last load found).",
    )(func)
    return click.option(
        "--allow-shrink", is_flag=True, help="Accept a users table less than half its current size."
    )(func)


class Timestamp(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+ only
    """`YYYY-MM-DD[ HH:MM:SS]` or ISO-8601, as a UTC datetime (naive times are UTC)."""

    name = "TS"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_ts(str(value), name=param.opts[0] if param else "timestamp")
        except OlapsyncError as exc:
            self.fail(str(exc), param, ctx)


TS = Timestamp()


class Lag(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+ only
    """A duration such as `15m`, `90s`, `1h30m` or `0` (`olapsync.delta.parse_lag`), as a
    timedelta; anything else is a usage error (exit 2) quoting the value."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_lag(str(value))
        except OlapsyncError as exc:
            self.fail(str(exc), param, ctx)


LAG = Lag()
