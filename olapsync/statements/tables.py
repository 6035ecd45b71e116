"""Statements on whole tables and partitions: create, list, count, swap, read the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from olapsync.statements.base import Statement, check_partition_id, qualified
from olapsync.window import Window, epoch


# -- the database and its tables ----------------------------------------------------------
def create_database(database: str) -> Statement:
    # Atomic: EXCHANGE TABLES, which publishes a run, needs it.
    return Statement(
        f"CREATE DATABASE IF NOT EXISTS `{database}` ENGINE = Atomic",
        what=f"create database {database}",
    )


def database_exists(database: str) -> Statement:
    return Statement(
        "SELECT count() FROM system.databases WHERE name = {db:String}",
        {"db": database},
        what="look the database up",
    )


def list_tables(database: str) -> Statement:
    return Statement(
        "SELECT name FROM system.tables WHERE database = {db:String}",
        {"db": database},
        what="list the tables",
    )


def partition_rows(database: str, table: str) -> Statement:
    """Active partition ids of `table` with their row counts, in order: the rows its data
    parts hold, rows masked by a lightweight delete included. Patch parts (ClickHouse 25.7+
    lightweight updates, partition ids `patch-<hash>-<partition>`) are not data parts and
    are left out."""
    return Statement(
        "SELECT partition_id, sum(rows) FROM system.parts "
        "WHERE database = {db:String} AND table = {t:String} AND active "
        "AND NOT startsWith(partition_id, 'patch-') "
        "GROUP BY partition_id ORDER BY partition_id",
        {"db": database, "t": table},
        what=f"list the partitions of {table}",
        table=table,
    )


def count_rows(database: str, table: str) -> Statement:
    return Statement(
        f"SELECT count() FROM {qualified(database, table)}",
        what=f"count the rows of {table}",
        table=table,
    )


def truncate(database: str, table: str) -> Statement:
    return Statement(
        f"TRUNCATE TABLE {qualified(database, table)}", what=f"empty {table}", table=table
    )


def drop_table(database: str, table: str) -> Statement:
    # SYNC: the parts are freed now, not after the Atomic database's delay.
    return Statement(
        f"DROP TABLE IF EXISTS {qualified(database, table)} SYNC",
        what=f"drop {table}",
        table=table,
    )


def create_table_like(database: str, table: str, like: str) -> Statement:
    """A new empty `table` shaped exactly like `like`, settings included."""
    return Statement(
        f"CREATE TABLE {qualified(database, table)} AS {qualified(database, like)}",
        what=f"create {table}",
        table=table,
    )


def modify_settings(database: str, table: str, settings: str) -> Statement:
    """Set table settings (`name = value, ...`); idempotent."""
    return Statement(
        f"ALTER TABLE {qualified(database, table)} MODIFY SETTING {settings}",
        what=f"set {table}'s table settings",
        table=table,
    )


def add_columns(database: str, table: str, columns: Mapping[str, str]) -> Statement:
    """`ALTER TABLE ... ADD COLUMN IF NOT EXISTS` for each (name, type) of `columns`: a
    table made by an older version gains the columns added since; idempotent."""
    adds = ", ".join(f"ADD COLUMN IF NOT EXISTS `{name}` {kind}" for name, kind in columns.items())
    return Statement(
        f"ALTER TABLE {qualified(database, table)} {adds}",
        what=f"add {table}'s new columns",
        table=table,
    )


def add_index(database: str, table: str, index: str) -> Statement:
    """`ALTER TABLE ... ADD INDEX IF NOT EXISTS` with an index clause from a `TableSpec`."""
    return Statement(
        f"ALTER TABLE {qualified(database, table)} ADD {index.replace('INDEX ', 'INDEX IF NOT EXISTS ', 1)}",
        what=f"add an index to {table}",
        table=table,
    )


def reset_settings(database: str, table: str, names: tuple[str, ...]) -> Statement:
    """Return table settings to their defaults."""
    return Statement(
        f"ALTER TABLE {qualified(database, table)} RESET SETTING {', '.join(names)}",
        what=f"reset {table}'s merge settings",
        table=table,
    )


# -- staging the rows outside the window ----------------------------------------------------
def window_predicate(column: str, window: Window) -> tuple[str, dict[str, int]]:
    """A ClickHouse condition true for the rows of `window` (`start <= column < end`), with its
    parameters; `"1"` for a full window. Bounds are whole seconds, as `DateTime` holds, and
    compared as Int64 epoch seconds, so a bound beyond `DateTime`'s range selects what it
    should instead of overflowing its UInt32."""
    parts, params = [], {}
    if window.start is not None:
        parts.append(f"toUnixTimestamp(`{column}`) >= {{start:Int64}}")
        params["start"] = epoch(window.start)
    if window.end is not None:
        parts.append(f"toUnixTimestamp(`{column}`) < {{end:Int64}}")
        params["end"] = epoch(window.end)
    return " AND ".join(parts) or "1", params


@dataclass(frozen=True)
class Outside:
    """The rows of a target table a run keeps without rereading them: those outside its
    window whose parent row is in the new parent set.

    database / table: the target table; column: its time column.
    parent_column: the column naming each row's parent (the same name in the parent table).
    parents: the table holding the new parent set (the users staging table).
    window: the run's window.
    """

    database: str
    table: str
    column: str
    parent_column: str
    parents: str
    window: Window

    def _conditions(self) -> tuple[str, str, dict[str, int]]:
        # A row whose parent is not in the new set is an orphan.
        col = self.parent_column
        known = f"`{col}` IN (SELECT `{col}` FROM {qualified(self.database, self.parents)})"
        inside, params = window_predicate(self.column, self.window)
        return known, inside, params

    def orphans_per_partition(self) -> Statement:
        """Per partition, the rows outside the window whose parent is gone."""
        known, inside, params = self._conditions()
        return Statement(
            f"SELECT _partition_id, count() FROM {qualified(self.database, self.table)} "
            f"WHERE NOT {known} AND NOT ({inside}) GROUP BY 1",
            params,
            what="count orphaned events",
            table=self.table,
        )

    def _kept(self, pid: str, *, edge: bool) -> tuple[str, dict[str, Any]]:
        known, inside, params = self._conditions()
        cond = f"_partition_id = {{pid:String}} AND {known}"
        if edge:
            cond += f" AND NOT ({inside})"
        return cond, {**params, "pid": check_partition_id(pid)}

    def count_kept(self, pid: str, *, edge: bool) -> Statement:
        """How many rows of partition `pid` are kept: those with a parent, and on an `edge`
        partition (one the window covers only partly) only those outside the window."""
        cond, params = self._kept(pid, edge=edge)
        return Statement(
            f"SELECT count() FROM {qualified(self.database, self.table)} WHERE {cond}",
            params,
            what=f"count the rows kept in partition {pid}",
            table=self.table,
        )

    def copy_kept(self, pid: str, *, edge: bool, into: str) -> Statement:
        """Copy the rows `count_kept` counts into the table `into`."""
        cond, params = self._kept(pid, edge=edge)
        return Statement(
            f"INSERT INTO {qualified(self.database, into)} "
            f"SELECT * FROM {qualified(self.database, self.table)} WHERE {cond}",
            params,
            what=f"copy partition {pid} into staging",
            table=into,
        )


def attach_partition(database: str, table: str, pid: str, source: str) -> Statement:
    """Hard-link partition `pid` of `source` into `table` (no data is copied)."""
    return Statement(
        f"ALTER TABLE {qualified(database, table)} ATTACH PARTITION ID "
        f"'{check_partition_id(pid)}' FROM {qualified(database, source)}",
        what=f"keep partition {pid}",
        table=table,
    )


def copy_partition(database: str, table: str, pid: str, source: str) -> Statement:
    """Copy the rows of `source`'s partition `pid` into `table`, as a query reads them (with
    its deletes applied): for a partition `ATTACH PARTITION ... FROM` refuses."""
    return Statement(
        f"INSERT INTO {qualified(database, table)} SELECT * FROM {qualified(database, source)} "
        "WHERE _partition_id = {pid:String}",
        {"pid": check_partition_id(pid)},
        what=f"copy partition {pid}",
        table=table,
    )


# -- publishing ---------------------------------------------------------------------------
def exchange(database: str, table: str, staging: str) -> Statement:
    """Swap two tables' names in one atomic rename (Atomic databases)."""
    return Statement(
        f"EXCHANGE TABLES {qualified(database, table)} AND {qualified(database, staging)}",
        what=f"swap {table}",
        table=table,
    )


# -- reading back ---------------------------------------------------------------------------
def rows_per_parent(
    database: str, table: str, parent_column: str, *, outside: tuple[str, Window] | None = None
) -> Statement:
    """Rows of `table` per value of its parent column (to count orphans in a plan); with
    `outside` (a time column and a window), only the rows outside the window."""
    where, params = "", dict[str, int]()
    if outside is not None:
        inside, params = window_predicate(*outside)
        where = f" WHERE NOT ({inside})"
    return Statement(
        f"SELECT `{parent_column}`, count() FROM {qualified(database, table)}{where} GROUP BY 1",
        params,
        what=f"count {table} per {parent_column}",
        table=table,
    )


def latest_runs(database: str, ledger: str, columns: tuple[str, ...], last: int) -> Statement:
    """The `last` runs of the run ledger, newest first, one row each: a run appends a row at
    each step (`olapsync.ledger`), and its latest row says how it ended (`started_at` is
    its first row's)."""
    picked = ", ".join(
        "run_id"
        if c == "run_id"
        else "min(started_at) AS started"
        if c == "started_at"
        else f"argMax({c}, finished_at)"
        for c in columns
    )
    return Statement(
        f"SELECT {picked} FROM {qualified(database, ledger)} GROUP BY run_id "
        "ORDER BY started DESC LIMIT {n:UInt32}",
        {"n": last},
        what="read the run ledger",
        table=ledger,
    )
