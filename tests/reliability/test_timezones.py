"""The import and the reports give identical results under any TZ, for `timestamp` and
`timestamptz` sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Source

ZONES = ["UTC", "America/New_York", "Asia/Kolkata"]

# One process per zone: a full import, a window import, reports and checksums, all under TZ.
SCRIPT = """
import json, sys
from olapsync import Config, Reports, import_olap_data
from olapsync.window import parse_ts
from tests.support import checksums, users_checksum
url, folder = sys.argv[1], sys.argv[2]
cfg = Config(crm_url=url, telemetry_url=url, clickhouse_url="chdb://" + folder)
import_olap_data(config=cfg)
window = import_olap_data(parse_ts("2026-01-15 12:00:00"), parse_ts("2026-02-01"), config=cfg)
loaded = {k: v for k, v in window.to_dict().items() if k not in ("run_id", "seconds")}
windows = [(None, None), ("2026-01-01", "2026-01-31 23:59:59"),
           ("2025-11-02T01:30:00-04:00", "2025-11-02T01:30:00-05:00")]
with Reports(cfg) as reports:
    got = [reports.user_report(3, *(None if t is None else parse_ts(t) for t in w)).to_dict()
           for w in windows]
    parts, users = checksums(reports.target), users_checksum(reports.target)
print(json.dumps({"parts": parts, "users": users, "window": loaded, "reports": got}))
"""


@pytest.mark.parametrize("column_type", ["timestamp", "timestamptz"])
def test_results_do_not_depend_on_tz(source: Source, tmp_path: Path, column_type: str) -> None:
    if column_type == "timestamptz":
        source.execute(
            "ALTER TABLE telemetry_events "
            "ALTER COLUMN event_timestamp TYPE timestamptz USING event_timestamp AT TIME ZONE 'UTC',"
            "ALTER COLUMN saved_ts TYPE timestamptz USING saved_ts AT TIME ZONE 'UTC'"
        )
    results = {}
    for zone in ZONES:
        folder = tmp_path / zone.replace("/", "_")
        env = {**os.environ, "TZ": zone, "PGTZ": zone}
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, source.url, str(folder)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        results[zone] = json.loads(done.stdout)
    first = results["UTC"]
    assert first["reports"][0]["total_events"] > first["reports"][1]["total_events"] > 0
    assert first["window"]["edge_rows_kept"] > 0
    for zone in ZONES[1:]:
        assert results[zone] == first, zone
