"""One step of the refresh benchmark in its own process (`python -m benchmarks.refresh_run
STEP --folder F --crm-url U --telemetry-url U`), so that each timed run starts fresh and its
peak RSS is its own. Prints one JSON object as its last line.

Timed steps (libraries are loaded before the clock starts, for every step alike; opening the
embedded ClickHouse is inside it):
- `pull`: ClickHouse's own full reload: fresh tables, `INSERT ... SELECT FROM postgresql(...)`
  for users and for the events of users the CRM has, then `EXCHANGE TABLES` for both;
- `import`, `sync`, `sync_verify`, `verify`: the `olapsync` command (`import --json`,
  `sync --json`, `sync --verify --json`, `verify --json`), run in this process through its
  click entry point. A command or option olapsync does not have yet (click's usage error,
  exit 2) is reported as `"available": false`, not as a failure.

Untimed tools: `checksum` (the parity fingerprints of what ClickHouse holds, see
`benchmarks.refresh_parity`) and `optimize` (merge each month into one part, as ClickHouse
does on its own a minute after an import).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from benchmarks.refresh_parity import Fingerprints, ch_months_sql, ch_table_sql

if TYPE_CHECKING:
    from olapsync.clickhouse import Target

COMMANDS = {
    "import": ["import", "--json"],
    "sync": ["sync", "--json"],
    "sync_verify": ["sync", "--verify", "--json"],
    "verify": ["verify", "--json"],
}
# click's own words for a command or option it does not know (click 8.1-8.3).
NOT_AVAILABLE = ("No such command", "No such option")
DATABASE = os.environ.get("OLAPSYNC_CLICKHOUSE_DATABASE", "olap")


def run_command(name: str) -> dict[str, Any]:
    """Run `olapsync <COMMANDS[name]>` in this process; return its exit code, whether the
    command exists, its JSON output (or None) and, when it failed, the end of its stderr."""
    from olapsync.cli import main as cli

    out, err = io.StringIO(), io.StringIO()
    # Both streams are captured: stdout holds the JSON, and rich draws no live table on a
    # stream that is not a terminal (as under cron).
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(args=COMMANDS[name], prog_name="olapsync", standalone_mode=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    errors = err.getvalue()
    available = not (code == 2 and any(words in errors for words in NOT_AVAILABLE))
    try:
        output = json.loads(out.getvalue())
    except ValueError:
        output = None
    return {
        "exit_code": code,
        "available": available,
        "output": output,
        "message": "" if code in (0, 3) else errors.strip()[-2000:],
    }


def pull(args: argparse.Namespace) -> dict[str, Any]:
    """ClickHouse's own full reload of both tables from PostgreSQL."""
    import clickhouse_connect

    from olapsync.specs import TELEMETRY, USERS

    client = clickhouse_connect.get_client(dsn=f"chdb://{args.folder}")

    def remote(url: str, table: str) -> tuple[str, dict[str, str]]:
        src = urlsplit(url)
        params = {
            f"{table}_hp": f"{src.hostname}:{src.port}",
            f"{table}_db": src.path.lstrip("/"),
            f"{table}_user": src.username or "postgres",
            f"{table}_pw": src.password or "",
        }
        call = (
            f"postgresql({{{table}_hp:String}}, {{{table}_db:String}}, '{table}', "
            f"{{{table}_user:String}}, {{{table}_pw:String}})"
        )
        return call, params

    users, user_params = remote(args.crm_url, "users")
    events, event_params = remote(args.telemetry_url, "telemetry_events")
    params = {**user_params, **event_params}
    for spec in (USERS, TELEMETRY):
        # A fresh table shaped exactly like the live one (engine and settings included).
        client.command(f"DROP TABLE IF EXISTS {DATABASE}.{spec.name}_pull SYNC")
        client.command(f"CREATE TABLE {DATABASE}.{spec.name}_pull AS {DATABASE}.{spec.name}")
    user_cols = ", ".join(f"`{c.name}`" for c in USERS.columns)
    event_cols = ", ".join(f"`{c.name}`" for c in TELEMETRY.columns)
    client.command(
        f"INSERT INTO {DATABASE}.users_pull ({user_cols}) SELECT {user_cols} FROM {users}",
        parameters=params,
    )
    # The same job as olapsync's: events of users the CRM no longer has are left out.
    client.command(
        f"INSERT INTO {DATABASE}.telemetry_events_pull ({event_cols}) SELECT {event_cols} "
        f"FROM {events} WHERE user_id IN (SELECT user_id FROM {users})",
        parameters=params,
    )
    for spec in (USERS, TELEMETRY):
        client.command(f"EXCHANGE TABLES {DATABASE}.{spec.name} AND {DATABASE}.{spec.name}_pull")
    rows = client.query(f"SELECT count() FROM {DATABASE}.telemetry_events").result_rows[0][0]
    client.close()
    return {"exit_code": 0, "available": True, "output": {"events_loaded": rows}, "message": ""}


def target_fingerprints(target: Target) -> Fingerprints:
    """The parity fingerprints of what `target`'s database holds."""
    months = target.rows(ch_months_sql(target.database))
    users = target.rows(ch_table_sql(target.database))[0]
    return Fingerprints.from_rows(months, users)


def checksum(args: argparse.Namespace) -> dict[str, Any]:
    from olapsync import Config
    from olapsync.clickhouse import open_target

    config = Config(clickhouse_url=f"chdb://{args.folder}", database=DATABASE)
    with open_target(config) as target:
        return target_fingerprints(target).to_dict()


def optimize(args: argparse.Namespace) -> dict[str, Any]:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{args.folder}")
    client.command(f"OPTIMIZE TABLE {DATABASE}.telemetry_events FINAL")
    parts = client.query(
        "SELECT count() FROM system.parts WHERE database = {db:String} "
        "AND table = 'telemetry_events' AND active",
        parameters={"db": DATABASE},
    ).result_rows[0][0]
    client.close()
    return {"parts": int(parts)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.refresh_run")
    parser.add_argument("step", choices=[*COMMANDS, "pull", "checksum", "optimize"])
    parser.add_argument("--folder", required=True, help="the embedded ClickHouse folder")
    parser.add_argument("--crm-url", default="", help="the CRM database (pull)")
    parser.add_argument("--telemetry-url", default="", help="the telemetry database (pull)")
    args = parser.parse_args()
    if args.step == "checksum":
        print(json.dumps(checksum(args)))
        return
    if args.step == "optimize":
        print(json.dumps(optimize(args)))
        return
    # Libraries load before the clock starts, for every step alike.
    import clickhouse_connect  # noqa: F401
    import connectorx  # noqa: F401
    import psycopg  # noqa: F401

    import olapsync.cli  # noqa: F401  (click, rich, polars, pyarrow)

    started, cpu = time.perf_counter(), time.process_time()
    result = pull(args) if args.step == "pull" else run_command(args.step)
    result["seconds"] = time.perf_counter() - started
    result["cpu_seconds"] = time.process_time() - cpu
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
