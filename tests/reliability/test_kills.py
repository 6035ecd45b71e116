"""SIGKILL an import at every named step and at random moments: every partition and the users
table stay entirely old or entirely new, no id appears twice, the ledger never claims a killed
run, and the next run completes."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from olapsync.failpoints import KILL_POINTS, SYNC_ONLY
from olapsync.generate import generate
from tests.support import TALLY, PgServer, Source, cli, state, urls

NAMED = [p for p in KILL_POINTS if p not in SYNC_ONLY]  # in the order an import passes them


def toggle(source: Source, version: int) -> None:
    """Make the source version 0 or 1: every partition and the users differ between them."""
    sign = "+" if version else "-"
    source.execute(f"UPDATE telemetry_events SET signal_duration = signal_duration {sign} 1")
    suffix = " Jr." if version else ""
    source.execute("UPDATE users SET name = regexp_replace(name, ' Jr\\.$', '') || %s", [suffix])


def assert_old_or_new(now: dict[str, Any], versions: list[dict[str, Any]], what: str) -> None:
    for pid, value in now["parts"].items():
        assert value in [v["parts"].get(pid) for v in versions], (what, pid)
    assert set(now["parts"]) <= set().union(*(v["parts"] for v in versions)), what
    # Stronger: the table is swapped whole, so all its months come from one version.
    assert now["parts"] in [v["parts"] for v in versions], what
    assert now["users"] in [v["users"] for v in versions], what
    assert now["dupes"] == 0, what


@pytest.fixture
def big_source(pg: PgServer) -> Any:
    name = "kill_" + str(random.randrange(10**9))
    url = pg.create(name)
    # Big enough that a run lasts about a second after start-up, so random kills land in it.
    generate(url, url, users=200, events=100_000)
    yield Source(url)
    pg.drop(name)


def test_kill_at_each_named_step(source: Source, tmp_path: Path) -> None:
    folder, reference = tmp_path / "target", tmp_path / "reference"
    for path in (folder, reference):
        assert cli("import", env=urls(source, path)).returncode == 0
    old = state(folder)
    # The run under test rebuilds the window and, outside it, drops the orphans of user 6.
    toggle(source, 1)
    source.execute("DELETE FROM users WHERE user_id = 6")
    window = ("--telemetry-start-ts", "2026-01-15", "--telemetry-end-ts", "2026-03-01")
    assert cli("import", *window, env=urls(source, reference)).returncode == 0
    new_ref = state(reference)
    assert all(old["parts"][p] != new_ref["parts"][p] for p in old["parts"])

    for point in NAMED:
        done = cli("import", *window, env={**urls(source, folder), "OLAPSYNC_FAILPOINT": point})
        assert done.returncode == -signal.SIGKILL, (point, done.stderr)
        now = state(folder)
        assert now["dupes"] == 0, point
        successes = [r for r in old["ledger"] if r[1] == "success"]
        assert [r for r in now["ledger"] if r[1] == "success"] == successes, point
        assert_old_or_new(now, [old, new_ref], point)
        TALLY["kills"] += 1
    done = cli("import", *window, env=urls(source, folder))
    assert done.returncode == 0, done.stderr
    final = state(folder)
    # Every killed run ends with a ledger row: the next run marked it interrupted.
    statuses = [status for _, status in final["ledger"]]
    assert statuses.count("interrupted") == len(NAMED)
    assert set(statuses) == {"success", "interrupted"}
    assert final["users"] == new_ref["users"]
    # Every partition as the run meant it: the window reloaded, user 6's events gone elsewhere.
    assert final["parts"] == new_ref["parts"]


def test_kill_at_random_moments(big_source: Source, tmp_path: Path) -> None:
    source = big_source
    versions = []
    for version in (0, 1):
        toggle(source, version) if version else None
        folder = tmp_path / f"version{version}"
        assert cli("import", env=urls(source, folder)).returncode == 0
        versions.append(state(folder))
    toggle(source, 0)
    target = tmp_path / "target"
    assert cli("import", env=urls(source, target)).returncode == 0
    assert state(target)["parts"] == versions[0]["parts"]

    # How long a whole run takes here, start-up included, to spread kills over it.
    started = time.monotonic()
    assert cli("import", env=urls(source, target)).returncode == 0
    span = time.monotonic() - started
    rng = random.Random(20261127)
    version, completed = 0, len(state(target)["ledger"])
    for kill in range(10):
        version = 1 - version
        toggle(source, version)
        env = {**urls(source, target)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "olapsync", "import"],
            env={**__import__("os").environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Every other kill lands in the last quarter of a run, where it publishes.
        low = 0.3 if kill % 2 else 0.75
        time.sleep(rng.uniform(low * span, 1.05 * span))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        now = state(target)
        assert_old_or_new(now, versions, f"kill {kill}")
        successes = [r for r in now["ledger"] if r[1] == "success"]
        if len(successes) > completed:
            # The run finished before the kill: everything is the version it loaded.
            assert now["parts"] == versions[version]["parts"], kill
            assert now["users"] == versions[version]["users"], kill
            completed = len(successes)
        TALLY["kills"] += 1
    done = cli("import", env=urls(source, target))
    assert done.returncode == 0, done.stderr
    final = state(target)
    assert final["parts"] == versions[version]["parts"]
    assert final["users"] == versions[version]["users"]


def sync(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`olapsync.sync()` in a process of its own, configured by `env` like the CLI."""
    import os

    return subprocess.run(
        [sys.executable, "-c", "import olapsync; olapsync.sync()"],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("OLAPSYNC_")}, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_kill_sync_at_each_named_step(source: Source, tmp_path: Path) -> None:
    """A sync killed at each step leaves each table old or new; the next sync finds the
    killed run (marked interrupted), and ends where an uninterrupted sync ends."""
    import shutil

    before, reference, pristine = (tmp_path / n for n in ("before", "reference", "pristine"))
    assert sync(urls(source, before)).returncode == 0
    # Copies are made of a folder no process has open (the state helper keeps one open),
    # keeping its relative symlinks (an Atomic database links metadata and data to `store`).
    shutil.copytree(before, pristine, symlinks=True)
    shutil.copytree(before, reference, symlinks=True)
    old = state(before)
    # A day of changes: new rows (appended), a row saved again (its month rebuilt), a user
    # deleted (their events removed from the months kept).
    source.execute(
        "INSERT INTO telemetry_events SELECT 100000 + g, 1 + g % 30, 'hand', 'biceps', 120, "
        "300, 1.5, timestamp '2026-03-02' + g * interval '1 hour', now() AT TIME ZONE 'UTC' "
        "FROM generate_series(1, 20) AS g"
    )
    source.execute(
        "UPDATE telemetry_events SET signal_duration = 7, saved_ts = now() "
        "AT TIME ZONE 'UTC' WHERE id = 1500"
    )
    source.execute("DELETE FROM users WHERE user_id = 6")
    assert sync(urls(source, reference)).returncode == 0
    new = state(reference)
    assert new["parts"] != old["parts"]
    assert new["users"] != old["users"]

    for point in KILL_POINTS:
        folder = tmp_path / f"killed-{point}"
        shutil.copytree(pristine, folder, symlinks=True)
        done = sync({**urls(source, folder), "OLAPSYNC_FAILPOINT": point})
        assert done.returncode == -signal.SIGKILL, (point, done.stderr)
        now = state(folder)
        successes = [r for r in old["ledger"] if r[1] == "success"]
        assert [r for r in now["ledger"] if r[1] == "success"] == successes, point
        assert_old_or_new(now, [old, new], point)
        done = sync(urls(source, folder))
        assert done.returncode == 0, (point, done.stderr)
        final = state(folder)
        assert (final["parts"], final["users"]) == (new["parts"], new["users"]), point
        assert "interrupted" in [status for _, status in final["ledger"]], point
        TALLY["kills"] += 1
