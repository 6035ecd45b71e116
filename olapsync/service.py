"""Starting the reports service (`reports/`) from olapsync: its options, declared once for
both `olapsync serve` and `python -m reports`, and the check that the `service` extra is
installed. The service itself lives in `reports`; this module imports it only when asked to
serve.
"""

from __future__ import annotations

from dataclasses import dataclass

from olapsync.errors import ConfigError

# The `service` extra (pyproject.toml): what `reports` needs beyond olapsync's own packages.
SERVICE_PACKAGES = frozenset({"starlette", "uvicorn", "httptools", "uvloop"})


@dataclass(frozen=True)
class ServiceOption:
    """One option of the service's command line: `--name VALUE`."""

    name: str
    type: type[int] | type[str]
    default: int | str
    help: str

    @property
    def dest(self) -> str:
        """The parameter name it fills, e.g. `pool` for `--pool`."""
        return self.name.removeprefix("--").replace("-", "_")


SERVICE_OPTIONS = (
    ServiceOption("--host", str, "127.0.0.1", "address to bind"),
    ServiceOption("--port", int, 3003, "port"),
    ServiceOption("--pool", int, 4, "ClickHouse clients (requests served side by side)"),
)

DESCRIPTION = (
    "Serve POST /report over the data olapsync imported. ClickHouse is "
    "OLAPSYNC_CLICKHOUSE_URL (default: the embedded engine in ./olapsync-data/clickhouse) "
    "and OLAPSYNC_CLICKHOUSE_DATABASE (default olap)."
)


def serve(*, host: str, port: int, pool: int) -> None:
    """Serve `POST /report` until interrupted; see `reports.__main__.serve`.

    Raises:
        ConfigError: the `service` extra is not installed, or a setting is malformed.
        TargetError: ClickHouse cannot be opened (e.g. TargetBusyError: the embedded
            folder is in use by another process).
    """
    try:
        from reports.__main__ import serve as run_service
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in SERVICE_PACKAGES:
            raise
        raise ConfigError(
            f"The reports service needs the 'service' extra ({exc.name} is missing): "
            "pip install 'olapsync[service]' (`uv run` in a clone installs it)."
        ) from exc
    run_service(host=host, port=port, pool=pool)
