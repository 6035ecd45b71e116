"""A ClickHouse statement as a value, and the checks on what is formatted into one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from olapsync.errors import TargetError

_PARTITION_ID = re.compile(r"^\d{6}$")


@dataclass(frozen=True)
class Statement:
    """One ClickHouse statement.

    sql: the text, with `{name:Type}` placeholders for every value.
    parameters: the values bound to those placeholders.
    what: what the statement does, for "ClickHouse failed to <what>: ...".
    table: the table it is about, when there is one (kept on the `TargetError`).
    """

    sql: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    what: str = "run a statement"
    table: str | None = None


def qualified(database: str, table: str) -> str:
    """A fully qualified, quoted table name: `` `db`.`table` ``."""
    return f"`{database}`.`{table}`"


def check_partition_id(pid: str) -> str:
    """`pid` itself, once it is known to be what `toYYYYMM` makes.

    Partition ids come from `system.parts` and are formatted into `ALTER` statements, which
    take no parameters.

    Raises:
        TargetError: `pid` is not six digits.
    """
    if not _PARTITION_ID.match(pid):
        raise TargetError(f"Unexpected partition id {pid!r}: expected YYYYMM.")
    return pid
