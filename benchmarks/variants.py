"""One benchmark variant per process (`python -m benchmarks.variants NAME ...`), so each one's
peak RSS is its own. Prints `{"seconds": ..., "cpu_seconds": ..., "rows": ...}` as its last line
(CPU of all the process's threads while the clock ran)."""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

VARIANTS: dict[str, Callable[[argparse.Namespace], int]] = {}
QUERY = "SELECT * FROM telemetry_events"


def variant(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    VARIANTS[func.__name__] = func
    return func


def _copy(url: str, where: str) -> int:
    """Drain one COPY; return the rows the server says it sent (its `COPY n` tag)."""
    import psycopg

    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            f"COPY (SELECT * FROM telemetry_events {where}) TO STDOUT (FORMAT binary)"
        ) as copy:
            for _ in copy:
                pass
        return cur.rowcount


@variant
def copy_binary(args: argparse.Namespace) -> int:
    """How fast PostgreSQL hands the rows over: COPY binary, one connection, drained."""
    return _copy(args.telemetry_url, "")


@variant
def copy_binary_2(args: argparse.Namespace) -> int:
    """The same over two connections, each half of the id range."""
    half = args.rows // 2
    parts = [f"WHERE id <= {half}", f"WHERE id > {half}"]
    rows = [0, 0]

    def drain(i: int) -> None:
        rows[i] = _copy(args.telemetry_url, parts[i])

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(rows)


@variant
def connectorx_read(args: argparse.Namespace) -> int:
    """connectorx reading the table into Arrow batches, discarded."""
    import connectorx as cx

    reader = cx.read_sql(
        args.telemetry_url, QUERY, return_type="arrow_stream", batch_size=args.batch_size
    )
    rows = 0
    for batch in reader:
        rows += batch.num_rows
    return rows


@variant
def extract_only(args: argparse.Namespace) -> int:
    """olapsync's own read, discarded: the import's query, protocol, connections and key
    ranges (`olapsync.importer.read_telemetry`).

    Not an alternative: the floor the import's extraction sets, to show how much of the
    loading is hidden behind it.
    """
    from olapsync import Config
    from olapsync.importer import read_telemetry
    from olapsync.specs import TELEMETRY
    from olapsync.window import Window

    config = Config(
        crm_url=args.crm_url, telemetry_url=args.telemetry_url, batch_size=args.batch_size
    )
    return sum(batch.num_rows for batch in read_telemetry(config, TELEMETRY, Window()))


def _fresh_client(folder: Path):  # type: ignore[no-untyped-def]
    import clickhouse_connect

    from olapsync.specs import TELEMETRY

    shutil.rmtree(folder, ignore_errors=True)
    client = clickhouse_connect.get_client(dsn=f"chdb://{folder}")
    client.command("CREATE DATABASE olap ENGINE = Atomic")
    client.command(TELEMETRY.ddl("olap"))
    return client


@variant
def clickhouse_postgresql(args: argparse.Namespace) -> int:
    """ClickHouse's own pull: INSERT ... SELECT FROM postgresql(...), embedded engine."""
    client = _fresh_client(args.folder)
    src = urlsplit(args.telemetry_url)
    client.command(
        "INSERT INTO olap.telemetry_events SELECT * FROM postgresql("
        "{hp:String}, {db:String}, 'telemetry_events', {user:String}, {pw:String})",
        parameters={
            "hp": f"{src.hostname}:{src.port}",
            "db": src.path.lstrip("/"),
            "user": src.username or "postgres",
            "pw": src.password or "",
        },
    )
    return int(client.command("SELECT count() FROM olap.telemetry_events"))


@variant
def naive_pandas(args: argparse.Namespace) -> int:
    """The seed's approach: pandas.read_sql (SQLAlchemy + psycopg), then insert_df."""
    import pandas as pd
    import sqlalchemy

    client = _fresh_client(args.folder)
    engine = sqlalchemy.create_engine(
        args.telemetry_url.replace("postgresql://", "postgresql+psycopg://")
    )
    frame = pd.read_sql(QUERY, engine)
    client.insert_df("olap.telemetry_events", frame)
    return len(frame)


@variant
def olapsync(args: argparse.Namespace) -> int:
    """The real import: validation, staging, swap and orphan handling included."""
    from olapsync import Config, import_olap_data

    shutil.rmtree(args.folder, ignore_errors=True)
    config = Config(
        crm_url=args.crm_url,
        telemetry_url=args.telemetry_url,
        clickhouse_url=f"chdb://{args.folder}",
        batch_size=args.batch_size,
    ).with_(**dict(setting(s) for s in args.set))
    return import_olap_data(config=config).events_loaded


def setting(text: str) -> tuple[str, Any]:
    """`name=value`; the value is read as JSON when it parses (numbers), else as text."""
    name, _, value = text.partition("=")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=sorted(VARIANTS))
    parser.add_argument("--crm-url", required=True)
    parser.add_argument("--telemetry-url", required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=250_000)
    parser.add_argument(
        "--set", action="append", default=[], help="olapsync: a Config field, name=value"
    )
    args = parser.parse_args()
    # Libraries load before the clock starts, for every variant alike.
    import clickhouse_connect  # noqa: F401
    import connectorx  # noqa: F401
    import psycopg  # noqa: F401

    import olapsync as _  # noqa: F401  (polars, pyarrow)

    started, cpu = time.perf_counter(), time.process_time()
    rows = VARIANTS[args.name](args)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    shutil.rmtree(args.folder, ignore_errors=True)
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "rows": rows}))


if __name__ == "__main__":
    main()
