"""Wait until ClickHouse has merged a freshly imported folder the way it leaves it for good
(`python -m benchmarks.settle FOLDER [TIMEOUT_S]`), so that reports are measured on the
layout they are served from, not on the minute after an import.

The data tables ask ClickHouse to merge each month into one part once all its parts are a
minute old (`olapsync.schema.MERGE_AFTER_IMPORT`); with chDB that happens in whichever process
holds the folder, so this one holds it until no month has more than one part. Prints JSON
with the parts before and after and the seconds waited.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from benchmarks.common import add_folder_argument
from olapsync import Config
from olapsync.clickhouse import Target, open_target
from olapsync.schema import ensure_schema
from olapsync.specs import TELEMETRY, USERS


def _parts(target: Target) -> tuple[int, int, int]:
    """Active parts of the events table, the most in one partition, and merges running."""
    n, most = target.rows(
        "SELECT sum(c), max(c) FROM (SELECT partition_id, count() AS c FROM system.parts "
        "WHERE database = {db:String} AND table = {t:String} AND active GROUP BY partition_id)",
        {"db": target.database, "t": TELEMETRY.name},
    )[0]
    merges = target.scalar(
        "SELECT count() FROM system.merges WHERE database = {db:String} AND table = {t:String}",
        {"db": target.database, "t": TELEMETRY.name},
    )
    return int(n), int(most), int(merges)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.settle", description=__doc__.split("\n\n")[0]
    )
    add_folder_argument(parser)
    parser.add_argument(
        "timeout", type=float, nargs="?", default=600.0, help="seconds to wait at most (600)"
    )
    args = parser.parse_args(argv)
    folder, timeout = args.folder, args.timeout
    config = Config(clickhouse_url=f"chdb://{folder}")
    began = time.monotonic()
    with open_target(config) as target:
        # A folder imported by an older version gets the current table settings, as the
        # next olapsync run would give it.
        ensure_schema(target, (USERS, TELEMETRY))
        before, most, merges = _parts(target)
        after, said = before, 0.0
        while most > 1 or merges:
            waited = time.monotonic() - began
            if waited > timeout:
                raise SystemExit(
                    f"{folder}: still {after} parts after {waited:.0f} s of waiting for "
                    "ClickHouse's merges"
                )
            if waited - said >= 15:
                print(
                    f"  waiting for ClickHouse to merge the import's parts: {after} parts, "
                    f"{merges} merges running, {waited:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
                said = waited
            time.sleep(1)
            after, most, merges = _parts(target)
    print(
        json.dumps(
            {"parts_before": before, "parts_after": after, "seconds": time.monotonic() - began}
        )
    )


if __name__ == "__main__":
    main()
