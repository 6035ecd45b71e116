"""The ClickHouse statements a run and its bookkeeping send, built in one place. Pure: each
function returns a `Statement` (SQL text, bound parameters, and what it does, for the error
message) and talks to nothing.

Values are bound parameters (`{name:Type}`). What ClickHouse does not take as a parameter, table
and database names and the partition ids of `ALTER ... PARTITION`, is formatted in only after it
is checked: names are identifiers (`olapsync.config`, `olapsync.specs`), partition ids `YYYYMM`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from olapsync.errors import TargetError
from olapsync.fingerprint import ch_row_hash
from olapsync.window import Window, epoch

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


def visible_rows(database: str, table: str, pids: list[str]) -> Statement:
    """Rows per partition as a query sees them (a delete's masked rows left out)."""
    return Statement(
        f"SELECT _partition_id, count() FROM {qualified(database, table)} "
        "WHERE _partition_id IN {pids:Array(String)} GROUP BY 1",
        {"pids": [check_partition_id(p) for p in pids]},
        what=f"count the rows of {table}",
        table=table,
    )


def removed_per_partition(
    database: str, table: str, parent: str, columns: list[str], condition: Statement
) -> Statement:
    """Per partition, the rows `condition` (a `WHERE` clause) selects: count, fingerprint
    hash (`row_hash`) and their distinct parents."""
    return Statement(
        f"SELECT _partition_id, count(), sum({ch_row_hash(columns)}), groupUniqArray(`{parent}`) "
        f"FROM {qualified(database, table)} WHERE {condition.sql} GROUP BY 1",
        condition.parameters,
        what=f"count the rows to remove from {table}",
        table=table,
    )


def delete_rows(database: str, table: str, condition: Statement, *, patches: bool) -> Statement:
    """A lightweight `DELETE` of the rows `condition` selects; with `patches`, written as
    patch parts (`lightweight_delete_mode = 'lightweight_update_force'`, ClickHouse 25.7+),
    which costs about the rows deleted instead of a rewrite of every part they are in."""
    mode = " SETTINGS lightweight_delete_mode = 'lightweight_update_force'" if patches else ""
    return Statement(
        f"DELETE FROM {qualified(database, table)} WHERE {condition.sql}{mode}",
        condition.parameters,
        what=f"remove rows from {table}",
        table=table,
    )


def orphans(database: str, parent: str, parents: str, months: list[str]) -> Statement:
    """A condition (for `removed_per_partition` / `delete_rows`): rows of partitions
    `months` whose parent is not in table `parents`."""
    return Statement(
        f"_partition_id IN {{months:Array(String)}} AND `{parent}` NOT IN "
        f"(SELECT `{parent}` FROM {qualified(database, parents)})",
        {"months": [check_partition_id(p) for p in months]},
    )


def orphans_exist(database: str, table: str, parent: str, parents: str) -> Statement:
    """1 when `table` holds a row whose parent is not in table `parents`, else 0."""
    return Statement(
        f"SELECT count() > 0 FROM (SELECT 1 FROM {qualified(database, table)} WHERE `{parent}` "
        f"NOT IN (SELECT `{parent}` FROM {qualified(database, parents)}) LIMIT 1)",
        what=f"look for orphans in {table}",
        table=table,
    )


def repeated_keys(database: str, table: str, key: str, months: list[str] | None) -> Statement:
    """Keys held by more than one row of `table`, where at least one of those rows is in
    `months` (None: anywhere), with their count and partitions. The key's skip index
    (`TableSpec.key_index`) keeps the check to the granules that could hold such keys."""
    scope = (
        ""
        if months is None
        else f"WHERE `{key}` IN (SELECT `{key}` FROM {qualified(database, table)} "
        "WHERE _partition_id IN {months:Array(String)}) "
    )
    return Statement(
        f"SELECT `{key}`, count(), arraySort(groupUniqArray(_partition_id)) "
        f"FROM {qualified(database, table)} {scope}GROUP BY `{key}` HAVING count() > 1",
        {} if months is None else {"months": [check_partition_id(p) for p in months]},
        what=f"look for repeated keys in {table}",
        table=table,
    )


def quarantine_repeated(
    database: str,
    table: str,
    rejected: str,
    key: str,
    columns: list[str],
    run_id: str,
    repeated: Statement,
) -> Statement:
    """Copy every row whose key `repeated` finds (`repeated_keys`) into the quarantine table,
    with a reason naming the key, how many times it appears and in which months."""
    values = ", ".join(f"`{c}`" for c in columns)
    return Statement(
        f"INSERT INTO {qualified(database, rejected)} "
        f"SELECT {{run_id:String}}, now(), s.`{key}`, "
        f"concat('{key} ', toString(s.`{key}`), ' appears ', toString(r.n), "
        "' times (months ', arrayStringConcat(r.months, ', '), '): every copy is quarantined'), "
        f"formatRowNoNewline('JSONEachRow', {values}) "
        f"FROM {qualified(database, table)} AS s INNER JOIN ({repeated.sql}) "
        f"AS r(`{key}`, n, months) ON s.`{key}` = r.`{key}`",
        {**repeated.parameters, "run_id": run_id},
        what=f"quarantine repeated keys of {table}",
        table=rejected,
    )


def new_rows(
    database: str, delta: str, table: str, key: str, time_column: str, months: list[str]
) -> Statement:
    """A condition on a sync's delta table: its rows of `months` whose key is not in `table`
    (the rows the append fast path adds; a candidate whose key is there is already loaded)."""
    return Statement(
        f"toYYYYMM(`{time_column}`) IN {{months:Array(UInt32)}} AND `{key}` NOT IN "
        f"(SELECT `{key}` FROM {qualified(database, table)} WHERE `{key}` IN "
        f"(SELECT `{key}` FROM {qualified(database, delta)}))",
        {"months": [int(check_partition_id(m)) for m in months]},
    )


def fingerprint_of(
    database: str, table: str, columns: list[str], time_column: str, condition: Statement
) -> Statement:
    """Per month of `time_column`, count and hash sum of `table`'s rows `condition` selects."""
    return Statement(
        f"SELECT toString(toYYYYMM(`{time_column}`)), count(), sum({ch_row_hash(columns)}) "
        f"FROM {qualified(database, table)} WHERE {condition.sql} GROUP BY 1",
        condition.parameters,
        what=f"fingerprint the new rows in {table}",
        table=table,
    )


def insert_from(database: str, table: str, source: str, condition: Statement) -> Statement:
    """Copy the rows of `source` that `condition` selects into `table`."""
    return Statement(
        f"INSERT INTO {qualified(database, table)} SELECT * FROM {qualified(database, source)} "
        f"WHERE {condition.sql}",
        condition.parameters,
        what=f"insert new rows into {table}",
        table=table,
    )


def create_scratch(database: str, table: str, like: str) -> Statement:
    """A scratch table with `like`'s columns, in memory (a sync's new rows)."""
    return Statement(
        f"CREATE TABLE {qualified(database, table)} AS {qualified(database, like)} ENGINE = Memory",
        what=f"create {table}",
        table=table,
    )


def create_keys(database: str, table: str, key: str) -> Statement:
    """A scratch table of keys, in memory."""
    return Statement(
        f"CREATE TABLE {qualified(database, table)} (`{key}` Int64) ENGINE = Memory",
        what=f"create {table}",
        table=table,
    )


def present_keys(database: str, table: str, delta: str, key: str, columns: list[str]) -> Statement:
    """For each row of `table` whose key is in `<delta>_ids`: its key, its partition, and
    whether it equals the row of `delta` with that key (ClickHouse's row hash)."""
    h = ch_row_hash(columns)
    return Statement(
        f"SELECT t.k, t.pid, d.found = 1 AND t.h = d.h FROM "
        f"(SELECT `{key}` AS k, _partition_id AS pid, {h} AS h FROM {qualified(database, table)} "
        f"WHERE `{key}` IN (SELECT `{key}` FROM {qualified(database, delta + '_ids')})) AS t "
        f"LEFT JOIN (SELECT `{key}` AS k, {h} AS h, toUInt8(1) AS found "
        f"FROM {qualified(database, delta)}) AS d ON t.k = d.k",
        what=f"look up the new rows' keys in {table}",
        table=table,
    )


def keys_in(key: str, values: list[int]) -> Statement:
    """A condition: rows whose key is one of `values`."""
    return Statement(f"`{key}` IN {{keys:Array(Int64)}}", {"keys": values})


# -- publishing ---------------------------------------------------------------------------
def exchange(database: str, table: str, staging: str) -> Statement:
    """Swap two tables' names in one atomic rename (Atomic databases)."""
    return Statement(
        f"EXCHANGE TABLES {qualified(database, table)} AND {qualified(database, staging)}",
        what=f"swap {table}",
        table=table,
    )


# -- reading back ---------------------------------------------------------------------------
def rows_per_parent(database: str, table: str, parent_column: str) -> Statement:
    """Rows of `table` per value of its parent column (to count orphans in a plan)."""
    return Statement(
        f"SELECT `{parent_column}`, count() FROM {qualified(database, table)} GROUP BY 1",
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
