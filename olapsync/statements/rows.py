"""Statements on a run's rows: copy a partition, count and remove rows (orphans, repeated
keys), a sync's scratch tables and the rows it appends."""

from __future__ import annotations

from collections.abc import Mapping

from olapsync.fingerprint import ch_row_hash
from olapsync.statements.base import Statement, check_partition_id, qualified


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


def repeated_keys(
    database: str,
    table: str,
    key: str,
    months: list[str] | None,
    held: Mapping[int, list[str]] | None = None,
) -> Statement:
    """Keys held by more than one row of `table`, or held back already in a month the run
    keeps (`held`: key -> those months, `olapsync.repeats.held_in`), where at least one of
    the rows is in `months` (None: anywhere); with their count, partitions, and the months
    holding them back (comma-separated, '' if none). The key's skip index
    (`TableSpec.key_index`) keeps the check to the granules that could hold such keys."""
    held = held or {}
    scope = (
        ""
        if months is None
        else f"WHERE `{key}` IN (SELECT `{key}` FROM {qualified(database, table)} "
        "WHERE _partition_id IN {months:Array(String)}) "
    )
    return Statement(
        f"SELECT `{key}`, count(), arraySort(groupUniqArray(_partition_id)), "
        f"arrayElement({{held_months:Array(String)}}, indexOf({{held_keys:Array(Int64)}}, `{key}`)) "
        f"FROM {qualified(database, table)} {scope}GROUP BY `{key}` "
        f"HAVING count() > 1 OR has({{held_keys:Array(Int64)}}, `{key}`)",
        {
            **({} if months is None else {"months": [check_partition_id(p) for p in months]}),
            "held_keys": list(held),
            "held_months": [", ".join(m) for m in held.values()],
        },
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
        "if(r.n = 1, ' time', ' times'), ' (months ', arrayStringConcat(r.months, ', '), ')', "
        "if(r.held = '', '', concat(' and is held back already in months ', r.held)), "
        "': every copy is quarantined'), "
        f"formatRowNoNewline('JSONEachRow', {values}) "
        f"FROM {qualified(database, table)} AS s INNER JOIN ({repeated.sql}) "
        f"AS r(`{key}`, n, months, held) ON s.`{key}` = r.`{key}`",
        {**repeated.parameters, "run_id": run_id},
        what=f"quarantine repeated keys of {table}",
        table=rejected,
    )


def users_of_keys(database: str, table: str, key: str, parent: str, keys: list[int]) -> Statement:
    """Per partition of `table`, the rows whose key is in `keys`: their keys and users."""
    return Statement(
        f"SELECT _partition_id, groupUniqArray(`{key}`), groupUniqArray(`{parent}`) "
        f"FROM {qualified(database, table)} WHERE `{key}` IN {{keys:Array(Int64)}} "
        "GROUP BY _partition_id",
        {"keys": keys},
        what=f"read the users of repeated keys in {table}",
        table=table,
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
