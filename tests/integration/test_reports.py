"""Report queries, the CLI's `report` and `examples`, and the service, on imported data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from olapsync import ImportResult, import_olap_data, user_report
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.generate import generate
from olapsync.pgembed import free_port
from olapsync.queries import Reports, UnknownUserError
from reports.app import create_app
from tests.support import VALID, PgServer, Source, cli, start_service, urls

USERS, EVENTS = 30, 8000


@pytest.fixture(scope="module")
def data(pg: PgServer, clickhouse_url: str) -> Iterator[tuple[Config, Source]]:
    name = "rep_" + uuid.uuid4().hex[:8]
    url = pg.create(name)
    generate(url, url, users=USERS, events=EVENTS)
    config = Config(crm_url=url, telemetry_url=url, clickhouse_url=clickhouse_url, database=name)
    assert isinstance(import_olap_data(config=config), ImportResult)
    yield config, Source(url)
    with Target(config) as target:
        target.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")
    pg.drop(name)


@pytest.fixture(scope="module")
def client(data: tuple[Config, Source]) -> Iterator[TestClient]:
    with TestClient(create_app(data[0])) as test_client:
        yield test_client


def expected_report(
    source: Source, user_id: int, start: str | None, end: str | None
) -> dict[str, Any]:
    where = f"user_id = {int(user_id)} AND {VALID}"
    params: list[str] = []
    if start:
        where += " AND event_timestamp >= %s::timestamptz AT TIME ZONE 'UTC'"
        params.append(start)
    if end:
        where += " AND event_timestamp <= %s::timestamptz AT TIME ZONE 'UTC'"
        params.append(end)
    rows = source.execute(
        "SELECT prosthesis_type, count(*), sum(signal_duration), avg(signal_amplitude), "
        f"avg(signal_frequency) FROM telemetry_events WHERE {where} GROUP BY 1 ORDER BY 1",
        params,
    )
    name, email = source.execute("SELECT name, email FROM users WHERE user_id = %s", [user_id])[0]
    stats = [
        {
            "prosthesis_type": p,
            "events_count": n,
            "total_duration": int(d),
            "avg_amplitude": round(float(a), 2),
            "avg_frequency": round(float(f), 2),
        }
        for p, n, d, a, f in rows
    ]
    return {
        "user_name": name,
        "user_email": email,
        "total_events": sum(s["events_count"] for s in stats),
        "total_duration": sum(s["total_duration"] for s in stats),
        "prosthesis_stats": stats,
    }


def assert_report(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Equal, except that averages may differ by one in the last rounded digit: ClickHouse
    and PostgreSQL sum doubles in different orders, which can flip a rounding at .xx5."""
    assert list(got) == list(want)
    assert {k: v for k, v in got.items() if k != "prosthesis_stats"} == {
        k: v for k, v in want.items() if k != "prosthesis_stats"
    }
    assert len(got["prosthesis_stats"]) == len(want["prosthesis_stats"])
    for g, w in zip(got["prosthesis_stats"], want["prosthesis_stats"], strict=True):
        assert list(g) == list(w)
        for key in ("prosthesis_type", "events_count", "total_duration"):
            assert g[key] == w[key]
        for key in ("avg_amplitude", "avg_frequency"):
            assert g[key] == pytest.approx(w[key], abs=0.0100001)


WINDOWS = [
    (None, None),
    ("2026-01-01T00:00:00", "2026-03-01T23:59:59"),
    ("2025-10-15T12:00:00Z", None),
    (None, "2025-12-01T03:00:00+03:00"),
]


@pytest.mark.parametrize(("start", "end"), WINDOWS)
def test_user_report_matches_the_source(
    data: tuple[Config, Source], start: str | None, end: str | None
) -> None:
    config, source = data
    with Reports(config) as reports:
        got = reports.user_report(
            3,
            None if start is None else datetime.fromisoformat(start),
            None if end is None else datetime.fromisoformat(end),
        )
    assert_report(got.to_dict(), expected_report(source, 3, start, end))
    assert got.total_events > 0


def test_a_report_for_its_owner_only(data: tuple[Config, Source]) -> None:
    # The service's authorization is this query: the owner check is in the same statement.
    config, source = data
    mine, other = (
        str(source.execute("SELECT user_uuid FROM users WHERE user_id = %s", [uid])[0][0])
        for uid in (3, 4)
    )
    start, end = datetime(2025, 11, 1), datetime(2026, 2, 28, 23, 59, 59)
    with Reports(config) as reports:
        report = reports.user_report(3, start, end)
        assert report.total_events > 0
        assert reports.user_report(3, start, end, owner=mine) == report
        assert reports.user_report_by_uuid(mine, start, end) == report
        for uid, owner in ((3, other), (999_999, mine), (3, "' OR 1=1 --")):
            with pytest.raises(UnknownUserError):
                reports.user_report(uid, owner=owner)
        for stranger in (mine.upper(), "", "' OR '1'='1"):
            with pytest.raises(UnknownUserError):
                reports.user_report_by_uuid(stranger)


def test_examples_match_the_source(data: tuple[Config, Source]) -> None:
    config, source = data
    with Reports(config) as reports:
        assert reports.total_users().item() == USERS
        assert (
            reports.total_events().item()
            == source.execute(f"SELECT count(*) FROM telemetry_events WHERE {VALID}")[0][0]
        )
        by_month = dict(reports.events_by_month().iter_rows())
        want = source.execute(
            f"SELECT date_trunc('month', event_timestamp)::date, count(*) FROM telemetry_events "
            f"WHERE {VALID} GROUP BY 1"
        )
        assert by_month == dict(want)
        top = reports.top_users(3).to_dicts()
        want_top = source.execute(
            f"SELECT e.user_id, u.name, count(*) FROM telemetry_events e JOIN users u USING (user_id) "
            f"WHERE {VALID} GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT 3"
        )
        assert [(r["user_id"], r["name"], r["events"]) for r in top] == want_top
        muscles = reports.muscle_groups()
        assert muscles["share_pct"].sum() == pytest.approx(100, abs=0.05)
        latest = reports.user_events(5, limit=3)
        want_latest = source.execute(
            f"SELECT id, event_timestamp FROM telemetry_events WHERE user_id = 5 AND {VALID} "
            "ORDER BY event_timestamp DESC, id DESC LIMIT 3"
        )
        assert [
            (r["id"], r["event_timestamp"].replace(tzinfo=None)) for r in latest.to_dicts()
        ] == want_latest
        averages = reports.prosthesis_averages()
        assert averages["prosthesis_type"].to_list() == ["arm", "hand", "leg"]
        detail = reports.user_detail(5)
        assert (
            detail["events"].sum()
            == source.execute(
                f"SELECT count(*) FROM telemetry_events WHERE user_id = 5 AND {VALID}"
            )[0][0]
        )
        with pytest.raises(UnknownUserError):
            reports.user_report(10_000)


def test_post_report_returns_the_seed_shape(
    client: TestClient, data: tuple[Config, Source]
) -> None:
    body = {"user_id": 3, "start_ts": "2026-01-01T00:00:00", "end_ts": "2026-03-01T23:59:59"}
    response = client.post("/report", json=body)
    assert response.status_code == 200
    assert_report(response.json(), expected_report(data[1], 3, body["start_ts"], body["end_ts"]))
    assert list(response.json()) == [
        "user_name",
        "user_email",
        "total_events",
        "total_duration",
        "prosthesis_stats",
    ]


def test_a_user_without_events_in_the_window_gets_zeros(client: TestClient) -> None:
    response = client.post("/report", json={"user_id": 3, "start_ts": "2030-01-01T00:00:00"})
    assert response.status_code == 200
    assert response.json()["total_events"] == 0
    assert response.json()["prosthesis_stats"] == []


def test_unknown_user_is_404(client: TestClient) -> None:
    response = client.post("/report", json={"user_id": 999_999})
    assert response.status_code == 404
    assert "999999" in response.json()["detail"]


# The texts come from the declared types (msgspec) or the timestamp rule (reports.schemas).
INVALID = [
    ({"user_id": "3"}, 422, "user_id: expected `int`, got `str`"),
    ({"user_id": 3.0}, 422, "user_id: expected `int`, got `float`"),
    ({"user_id": 3.5}, 422, "user_id: expected `int`, got `float`"),
    ({"user_id": True}, 422, "user_id: expected `int`, got `bool`"),
    ({"user_id": None}, 422, "user_id: expected `int`, got `null`"),
    ({"user_id": 2**31}, 422, "user_id: expected `int` <= 2147483647"),
    ({"user_id": -(2**31) - 1}, 422, "user_id: expected `int` >= -2147483648"),
    ({}, 422, "missing required field `user_id`"),
    ({"user_id": 3, "start_ts": "yesterday"}, 422, "start_ts 'yesterday' is not an ISO-8601"),
    ({"user_id": 3, "end_ts": 20260101}, 422, "end_ts: expected `str | null`, got `int`"),
    ({"user_id": 3, "end_ts": "2026-01-01T00:00:00+25:00"}, 422, "end_ts '2026-01-01T00:00:00"),
    (
        {"user_id": 3, "start_ts": "2026-02-01", "end_ts": "2026-01-01"},
        422,
        "start_ts is after end_ts",
    ),
    ({"user_id": 3, "extra": 1}, 422, "unknown field `extra`"),
    ([1, 2], 422, "Expected `object`, got `array`"),
    ("3", 422, "Expected `object`, got `str`"),
]


@pytest.mark.parametrize(("body", "status", "detail"), INVALID)
def test_invalid_input_is_a_4xx_that_says_why(
    client: TestClient, body: Any, status: int, detail: str
) -> None:
    response = client.post("/report", json=body)
    assert response.status_code == status
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    "raw", [b"{", b"", b"\xff\xfe", b'{"user_id": 1,}', b"[" * 60_000, b'{"user_id": NaN}']
)
def test_unparsable_json_is_400(client: TestClient, raw: bytes) -> None:
    # NaN is not JSON (RFC 8259), whatever Python's own parser accepts.
    response = client.post("/report", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"detail": "The body is not valid JSON."}


def test_bodies_over_64_kib_are_413(client: TestClient) -> None:
    big = json.dumps({"user_id": 3, "pad": "x" * 70_000})
    assert client.post("/report", content=big).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    assert client.post("/report", content=chunks()).status_code == 413


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    # Without sign-in there is no /me/report and no security scheme.
    assert set(spec["paths"]) == {"/report", "/health", "/metrics"}
    assert "securitySchemes" not in spec["components"]
    assert spec["components"]["schemas"]["ReportRequest"]["required"] == ["user_id"]
    assert client.get("/report").status_code == 405


def test_access_log_has_no_body(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="reports.access"):
        client.post("/report", json={"user_id": 3, "start_ts": "2026-01-01T00:00:00Z"})
    lines = [r.getMessage() for r in caplog.records if r.name == "reports.access"]
    assert any("method=POST path=/report status=200" in line for line in lines)
    assert not any("2026-01-01" in line for line in lines)


def test_cli_report_and_examples(data: tuple[Config, Source], tmp_path: Path) -> None:
    # The test process holds the shared chDB folder: give the CLI its own import.
    source = data[1]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(*args, env=urls(source, tmp_path))

    assert run("import").returncode == 0
    done = run("report", "3", "--start-ts", "2026-01-01", "--json")
    assert done.returncode == 0, done.stderr
    assert_report(json.loads(done.stdout), expected_report(data[1], 3, "2026-01-01T00:00:00", None))
    done = run("examples", "--top", "3")
    assert done.returncode == 0, done.stderr
    for n in range(1, 9):
        assert f"{n}. " in done.stdout
    done = run("report", "999999")
    assert done.returncode == 1
    assert done.stderr.strip() == "error: User 999999 is not in the users table."
    # Equal bounds: the one instant, as the API and the service read them.
    instant = an_event_instant(source, 3)
    done = run("report", "3", "--start-ts", instant, "--end-ts", instant, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total_events"] >= 1
    assert_report(json.loads(done.stdout), expected_report(source, 3, instant, instant))


def an_event_instant(source: Source, user_id: int) -> str:
    """The whole-second time of one of the user's events, as ISO-8601 text."""
    return str(
        source.execute(
            'SELECT to_char(event_timestamp, \'YYYY-MM-DD"T"HH24:MI:SS"Z"\') '
            f"FROM telemetry_events WHERE user_id = %s AND {VALID} "
            "AND event_timestamp = date_trunc('second', event_timestamp) ORDER BY id LIMIT 1",
            [user_id],
        )[0][0]
    )


def test_equal_bounds_are_one_instant_for_the_api_and_the_service(
    data: tuple[Config, Source], client: TestClient
) -> None:
    config, source = data
    instant = an_event_instant(source, 3)
    want = expected_report(source, 3, instant, instant)
    assert want["total_events"] >= 1
    assert_report(user_report(3, instant, instant, config=config).to_dict(), want)
    response = client.post("/report", json={"user_id": 3, "start_ts": instant, "end_ts": instant})
    assert response.status_code == 200, response.text
    assert_report(response.json(), want)


def test_the_real_service_process(data: tuple[Config, Source], tmp_path: Path) -> None:
    source = data[1]
    env = urls(source, tmp_path)
    assert cli("import", env=env).returncode == 0
    server, base = start_service(env)
    try:
        response = httpx.post(f"{base}/report", json={"user_id": 3})
        assert response.status_code == 200
        assert_report(response.json(), expected_report(source, 3, None, None))
        # While it holds the embedded folder, a second service (or an import) cannot start.
        second = subprocess.run(
            [sys.executable, "-m", "reports", "--port", str(free_port())],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert f"is in use by pid {server.pid} (reports" in second.stderr
        blocked = cli("import", env=env)
        assert blocked.returncode == 1
        assert "is in use by" in blocked.stderr
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "path=/report status=200" in output
    assert '"user_id"' not in output


def test_olapsync_serve_is_the_same_service(data: tuple[Config, Source], tmp_path: Path) -> None:
    source = data[1]
    env = urls(source, tmp_path)
    assert cli("import", env=env).returncode == 0
    server, base = start_service(env, command=("-m", "olapsync", "serve"))
    try:
        response = httpx.post(f"{base}/report", json={"user_id": 3})
        assert response.status_code == 200
        assert_report(response.json(), expected_report(source, 3, None, None))
        # It fails as every command does: one line, exit 1, naming who holds the folder.
        second = cli("serve", "--port", str(free_port()), env=env)
        assert second.returncode == 1
        (line,) = second.stderr.strip().splitlines()
        assert line.startswith(f"error: The embedded ClickHouse folder {tmp_path} is in use")
        assert f"by pid {server.pid} (olapsync serve)" in line
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "path=/report status=200" in output
