"""The run lock: its owner is written by the statement that takes it, a live owner's lock is
never taken, and a dead owner's lock is taken over exactly once.

Two ways: in this process on chDB (contenders as threads or as `RunLock` objects stopped
between their steps), and as separate processes sharing one ClickHouse over HTTP
(tests/chhttp.py), which race as real runs on several machines' cron would.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.errors import RunLockedError
from olapsync.lock import LOCK, Owner, RunLock
from tests.chhttp import ChdbHttpServer


def lock_tables(target: Target) -> list[str]:
    return sorted(t for t in target.tables() if t.startswith(LOCK))


def dead_pid() -> int:
    """The pid of a process of this host that has exited."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def dead_owners_lock(target: Target) -> None:
    """Leave the lock as a run killed on this host leaves it: taken, never released."""
    lock = RunLock(target, "killed-run")
    lock.owner = dataclasses.replace(lock.owner, pid=dead_pid())
    lock.acquire()


@pytest.fixture
def target(clickhouse_url: str) -> Iterator[Target]:
    config = Config(clickhouse_url=clickhouse_url, database="lock_" + uuid.uuid4().hex[:10])
    with Target(config) as t:
        yield t
        t.command(f"DROP DATABASE IF EXISTS `{config.database}` SYNC")


# -- in this process ----------------------------------------------------------------------
def test_the_owner_is_part_of_the_lock(target: Target) -> None:
    with RunLock(target, "run-1") as lock:
        found = lock.inspect()
        assert found is not None
        assert found.owner == lock.owner
        assert (found.owner.run_id, found.owner.pid) == ("run-1", os.getpid())
        # The owner lives in the table's definition, not in rows written after it.
        assert target.count(LOCK) == 0
        comment = target.scalar(
            "SELECT comment FROM system.tables WHERE database = {db:String} AND name = {n:String}",
            {"db": target.database, "n": LOCK},
        )
        assert json.loads(comment)["run_id"] == "run-1"
    assert lock_tables(target) == []


def test_a_live_owners_lock_is_never_taken(target: Target) -> None:
    with RunLock(target, "owner-run"):
        for contender in ("second-run", "third-run"):
            with pytest.raises(RunLockedError, match=r"Another olapsync run \(owner-run, pid "):
                RunLock(target, contender).acquire()
    # Released: the next run takes it.
    with RunLock(target, "second-run") as lock:
        assert not lock.took_over


def test_the_lock_never_exists_without_its_owner(clickhouse_url: str, target: Target) -> None:
    # One thread takes and releases the lock over and over; another looks at it meanwhile.
    # Every look finds either no lock or a lock with its owner: the moment after CREATE in
    # which the old lock had no owner row (and a contender took it over) does not exist.
    stop = threading.Event()
    cycles = 0

    def churn() -> None:
        nonlocal cycles
        with Target(dataclasses.replace(target.config), create_database=False) as mine:
            while not stop.is_set():
                with RunLock(mine, f"churn-{cycles}"):
                    cycles += 1

    thread = threading.Thread(target=churn)
    thread.start()
    seen: list[Any] = []
    try:
        looker = RunLock(target, "looker")
        for _ in range(300):
            seen.append(looker.inspect())
    finally:
        stop.set()
        thread.join()
    held = [s for s in seen if s is not None]
    assert cycles > 10
    assert held
    assert all(s.owner is not None and s.owner.run_id.startswith("churn-") for s in held)


@pytest.mark.parametrize(
    "run_id",
    ["it's a 'quoted' run", "back\\slash\\run", 'json "and" {braces}', "unicode ☃ ünïcode"],
)
def test_any_run_id_survives_the_comment(target: Target, run_id: str) -> None:
    with RunLock(target, run_id):
        with pytest.raises(RunLockedError) as refused:
            RunLock(target, "other").acquire()
        assert f"Another olapsync run ({run_id}, pid {os.getpid()}" in str(refused.value)


def test_a_dead_owners_lock_is_taken_over(target: Target) -> None:
    dead_owners_lock(target)
    with RunLock(target, "next-run") as lock:
        assert lock.took_over
        found = lock.inspect()
        assert found is not None
        assert found.owner == lock.owner
    assert lock_tables(target) == []


def test_two_contenders_judging_the_same_dead_owner_take_it_over_once(target: Target) -> None:
    dead_owners_lock(target)
    late, quick = RunLock(target, "late-run"), RunLock(target, "quick-run")
    stale = late.inspect()  # `late` judges the lock dead, then stalls
    assert stale is not None
    assert stale.owner is not None
    assert stale.owner.is_gone()
    quick.acquire()  # `quick` takes it over meanwhile
    assert quick.took_over
    late.take_over(stale)  # `late` resumes: the dead lock's tombstone stops it
    with pytest.raises(RunLockedError, match=r"Another olapsync run \(quick-run, "):
        late.acquire()
    found = quick.inspect()
    assert quick.held is not None
    assert found is not None
    assert found.uuid == quick.held.uuid
    quick.release()
    assert lock_tables(target) == []


def test_a_takeover_that_comes_too_late_gives_the_lock_back(target: Target) -> None:
    dead_owners_lock(target)
    late = RunLock(target, "late-run")
    stale = late.inspect()
    assert stale is not None
    with RunLock(target, "quick-run") as quick:  # takes over, runs, releases
        assert quick.took_over
    live = RunLock(target, "live-run")
    live.acquire()
    late.take_over(stale)  # moves the live lock, sees it is not the dead one, puts it back
    found = live.inspect()
    assert live.held is not None
    assert found is not None
    assert found.uuid == live.held.uuid
    with pytest.raises(RunLockedError, match=r"\(live-run, "):
        late.acquire()
    live.release()
    assert lock_tables(target) == []


def test_a_release_leaves_another_runs_lock_alone(target: Target) -> None:
    first = RunLock(target, "first-run")
    first.acquire()
    target.command(f"DROP TABLE {target.t(LOCK)}")  # an operator clears it by hand
    with RunLock(target, "second-run") as second:
        first.release()
        found = second.inspect()
        assert found is not None
        assert found.owner == second.owner


def test_a_lock_table_olapsync_did_not_make_is_refused_clearly(target: Target) -> None:
    target.command(f"CREATE TABLE {target.t(LOCK)} (run_id String) ENGINE = Memory")
    with pytest.raises(RunLockedError, match=rf"DROP TABLE {target.database}\.{LOCK}"):
        RunLock(target, "run").acquire()


def test_an_owner_on_another_host_is_never_judged_dead() -> None:
    owner = dataclasses.replace(Owner.me("r"), host="another-host", pid=dead_pid())
    assert not owner.is_gone()
    assert dataclasses.replace(owner, host=Owner.me("r").host).is_gone()


# -- separate processes over HTTP ---------------------------------------------------------
CONTENDER = """
import json, os, signal, sys, time
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.errors import RunLockedError
from olapsync.lock import RunLock

url, database, run_id, hold, go = sys.argv[1:6]
with Target(Config(clickhouse_url=url, database=database), create_database=False) as target:
    lock = RunLock(target, run_id)
    print("ready", flush=True)
    while not os.path.exists(go):  # start together
        time.sleep(0.002)
    try:
        lock.acquire()
    except RunLockedError as exc:
        print(json.dumps({"run": run_id, "refused": str(exc), "took_over": lock.took_over}),
              flush=True)
        sys.exit(0)
    held = time.time()
    if hold == "die":
        print(json.dumps({"run": run_id, "held": held}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(hold))
    released = time.time()
    took_over = lock.took_over
    lock.release()
    print(json.dumps({"run": run_id, "held": held, "released": released,
                      "took_over": took_over}), flush=True)
"""


@pytest.fixture(scope="module")
def endpoint(chdb_dir: Path) -> Iterator[ChdbHttpServer]:
    with ChdbHttpServer(str(chdb_dir), password="lock-pw") as server:
        yield server


@pytest.fixture
def shared(endpoint: ChdbHttpServer) -> Iterator[Target]:
    config = Config(clickhouse_url=endpoint.url(), database="lock_" + uuid.uuid4().hex[:10])
    with Target(config) as t:
        yield t
        t.command(f"DROP DATABASE IF EXISTS `{config.database}` SYNC")


def race(target: Target, tmp_path: Path, runs: list[str], hold: str) -> list[dict[str, Any]]:
    """Start one process per run id on `target`'s ClickHouse, let them all try to take the
    lock at once, and return what each one reports."""
    go = tmp_path / f"go-{uuid.uuid4().hex[:6]}"
    url = target.config.clickhouse_url.reveal()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONTENDER, url, target.database, run, hold, str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for run in runs
    ]
    reports = []
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        go.touch()
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            reports.extend(json.loads(line) for line in out.splitlines() if line.strip())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return reports


def check_one_holder_at_a_time(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    holders = sorted((r for r in reports if "held" in r), key=lambda r: r["held"])
    assert holders, reports
    for before, after in itertools.pairwise(holders):
        assert after["held"] >= before["released"], (before, after)
    # A refused run was refused by a run that held the lock, i.e. a live owner.
    names = {r["run"] for r in holders}
    for refused in (r for r in reports if "refused" in r):
        owner = refused["refused"].split("Another olapsync run (", 1)[1].split(",")[0]
        assert owner in names, refused
    return holders


def test_racing_processes_never_both_hold_the_lock(shared: Target, tmp_path: Path) -> None:
    reports = race(shared, tmp_path, [f"race-{i}" for i in range(6)], hold="0.5")
    assert len(reports) == 6
    check_one_holder_at_a_time(reports)
    assert not any(r["took_over"] for r in reports)
    assert lock_tables(shared) == []


def test_a_killed_runs_lock_is_taken_over_once_by_racing_processes(
    shared: Target, tmp_path: Path
) -> None:
    (killed,) = race(shared, tmp_path, ["killed-run"], hold="die")
    assert "held" in killed
    found = RunLock(shared, "look").inspect()
    assert found is not None
    assert found.owner is not None
    assert found.owner.run_id == "killed-run"
    assert found.owner.is_gone()

    reports = race(shared, tmp_path, [f"after-{i}" for i in range(5)], hold="1.0")
    assert len(reports) == 5
    check_one_holder_at_a_time(reports)
    # Exactly one process moved the dead lock away (it may then lose the new lock to a
    # faster one: what matters is one holder at a time and one takeover).
    assert sum(r["took_over"] for r in reports) == 1, reports
    # Nothing is left behind: neither the lock nor the dead run's tombstone.
    assert lock_tables(shared) == []
