"""The ClickHouse statements a run and its bookkeeping send, built in one place. Pure: each
function returns a `Statement` (SQL text, bound parameters, and what it does, for the error
message) and talks to nothing.

Values are bound parameters (`{name:Type}`). What ClickHouse does not take as a parameter, table
and database names and the partition ids of `ALTER ... PARTITION`, is formatted in only after it
is checked: names are identifiers (`olapsync.config`, `olapsync.specs`), partition ids `YYYYMM`.

`base`: the `Statement` value; `tables`: whole tables and partitions; `rows`: a run's rows.
"""

from __future__ import annotations

from olapsync.statements.base import Statement, check_partition_id, qualified
from olapsync.statements.rows import (
    create_keys,
    create_scratch,
    delete_rows,
    fingerprint_of,
    insert_from,
    keys_in,
    new_rows,
    orphans,
    orphans_exist,
    present_keys,
    quarantine_repeated,
    removed_per_partition,
    repeated_keys,
    users_of_keys,
    visible_rows,
)
from olapsync.statements.tables import (
    Outside,
    add_columns,
    add_index,
    attach_partition,
    copy_partition,
    count_rows,
    create_database,
    create_table_like,
    database_exists,
    drop_table,
    exchange,
    latest_runs,
    list_tables,
    modify_settings,
    partition_rows,
    reset_settings,
    rows_per_parent,
    truncate,
    window_predicate,
)

__all__ = [
    "Outside",
    "Statement",
    "add_columns",
    "add_index",
    "attach_partition",
    "check_partition_id",
    "copy_partition",
    "count_rows",
    "create_database",
    "create_keys",
    "create_scratch",
    "create_table_like",
    "database_exists",
    "delete_rows",
    "drop_table",
    "exchange",
    "fingerprint_of",
    "insert_from",
    "keys_in",
    "latest_runs",
    "list_tables",
    "modify_settings",
    "new_rows",
    "orphans",
    "orphans_exist",
    "partition_rows",
    "present_keys",
    "qualified",
    "quarantine_repeated",
    "removed_per_partition",
    "repeated_keys",
    "reset_settings",
    "rows_per_parent",
    "truncate",
    "users_of_keys",
    "visible_rows",
    "window_predicate",
]
