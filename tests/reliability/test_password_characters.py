"""Every reserved character in a PostgreSQL password, against a real scram role: percent-
encoded it logs in through both readers (libpq and connectorx); raw it is refused with a
message that says to percent-encode, or, where it is unambiguous, read exactly. And no part
of any of these passwords reaches stdout, stderr, a log record, an exception, the ledger
(`olapsync_runs.error`) or `olapsync status`."""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from psycopg import sql

from olapsync import ConfigError, SourceError, import_olap_data, status
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.pg import check_connection
from olapsync.source import read_arrow
from tests.support import TALLY, PgServer, Source, cli
from tests.unit.test_urls import RAW_REFUSED, RESERVED, password_with

EVERY_CHARACTER = "s3cr" + "".join(RESERVED) + "tPw"


def assert_no_part(*texts: str) -> None:
    """No side of any test password (each is s3cr<char>tPw) appears in any text."""
    for text in texts:
        for part in ("s3cr", "tPw"):
            if part in text:
                TALLY["leaks"] += 1
            assert part not in text, (part, text[-2000:])


def set_password(pg: PgServer, role: str, password: str) -> None:
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )


def role_url(pg: PgServer, role: str, password: str, database: str, *, encode: bool) -> str:
    host = urlsplit(pg.admin_url).netloc.rpartition("@")[2]
    written = quote(password, safe="") if encode else password
    return f"postgresql://{role}:{written}@{host}/{database}"


@pytest.fixture
def readable(source: Source, password_role: str) -> Iterator[Source]:
    """The generated source, readable by the password role."""
    source.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {password_role}")
    yield source
    source.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {password_role}")


@pytest.mark.parametrize("char", RESERVED)
def test_each_reserved_character_logs_in_through_both_readers(
    pg: PgServer, password_role: str, char: str
) -> None:
    password = password_with(char)
    set_password(pg, password_role, password)
    encoded = role_url(pg, password_role, password, "postgres", encode=True)
    raw = role_url(pg, password_role, password, "postgres", encode=False)
    urls = [encoded]
    if char in RAW_REFUSED:
        with pytest.raises(ConfigError, match="percent-encode") as info:
            Config(crm_url=raw)
        assert_no_part(str(info.value))
    else:
        urls.append(raw)
    for url in urls:
        config = Config(crm_url=url, telemetry_url=url)
        check_connection(config.crm_url)  # libpq, through psycopg
        who = read_arrow(config.crm_url, "SELECT current_user AS who")  # connectorx
        assert who.column("who").to_pylist() == [password_role]
        assert_no_part(repr(config), str(config.describe()))


@pytest.mark.parametrize("char", RESERVED)
def test_a_refused_password_leaves_no_part_in_exceptions_logs_ledger_or_status(
    pg: PgServer,
    password_role: str,
    chdb_dir: Path,
    char: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_password(pg, password_role, "the-right-one")
    url = role_url(pg, password_role, password_with(char), "postgres", encode=True)
    database = "pwchars_" + uuid.uuid4().hex[:8]
    config = Config(
        crm_url=url, telemetry_url=url, clickhouse_url=f"chdb://{chdb_dir}", database=database
    )
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(SourceError, match="password authentication failed") as info:
            import_olap_data(config=config)
        st = status(config, last_runs=10)
        with Target(config) as target:
            ledger = target.rows(
                "SELECT argMax(status, finished_at), argMax(error, finished_at) "
                f"FROM `{database}`.olapsync_runs GROUP BY run_id"
            )
    finally:
        with Target(config) as target:
            target.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
    assert [r[0] for r in ledger] == ["failed"]
    assert "password authentication failed" in ledger[0][1]
    assert_no_part(
        str(info.value),
        repr(info.value),
        "".join(traceback.format_exception(info.value)),
        caplog.text,
        *(r[1] for r in ledger),
        json.dumps(st.to_dict(), default=str),
    )


@pytest.fixture(scope="module")
def cli_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One chDB folder for the CLI runs of this module, so `status` sees all their runs."""
    return tmp_path_factory.mktemp("cli_chars") / "clickhouse"


# -v adds tracebacks and the libraries' logs: every character goes through the plain output,
# and the four (refused raw) plus two that are read as written through -v as well.
VERBOSE = ["/", "?", "#", "@", ":", "!"]


@pytest.mark.parametrize(
    ("char", "verbose"),
    [(c, False) for c in RESERVED] + [(c, True) for c in VERBOSE if c in RESERVED],
)
def test_the_cli_prints_no_part_of_a_raw_password(
    pg: PgServer, password_role: str, cli_folder: Path, char: str, verbose: bool
) -> None:
    set_password(pg, password_role, "the-right-one")
    url = role_url(pg, password_role, password_with(char), "postgres", encode=False)
    env = {
        "OLAPSYNC_CRM_URL": url,
        "OLAPSYNC_TELEMETRY_URL": url,
        "OLAPSYNC_CLICKHOUSE_URL": f"chdb://{cli_folder}",
    }
    done = cli("import", *(["-v"] if verbose else []), env=env)
    if char in RAW_REFUSED:  # the '/', '?', '#', '@' among them
        assert done.returncode == 2, done.stderr  # a refused setting: a usage error
        assert "percent-encode the user name and password" in done.stderr
        assert "postgresql://***@127.0.0.1:" in done.stderr
    else:  # read as written: the server refused the wrong password, and said so
        assert done.returncode == 1, done.stderr
        assert "password authentication failed" in done.stderr
    assert_no_part(done.stdout, done.stderr)


def test_status_shows_no_part_of_the_passwords_of_failed_runs(
    pg: PgServer, password_role: str, cli_folder: Path
) -> None:
    # Runs in this module's CLI folder failed with wrong raw passwords of every accepted
    # character (the test above); each left a ledger row whose error is shown here.
    env = {"OLAPSYNC_CLICKHOUSE_URL": f"chdb://{cli_folder}"}
    shown = cli("status", "--runs", "100", env=env)
    as_json = cli("status", "--json", "--runs", "100", env=env)
    assert shown.returncode == as_json.returncode == 0, shown.stderr + as_json.stderr
    runs = json.loads(as_json.stdout)["runs"]
    accepted_raw = [c for c in RESERVED if c not in RAW_REFUSED]
    assert len(runs) >= len(accepted_raw), "the CLI runs above left their ledger rows"
    assert all("password authentication failed" in r["error"] for r in runs)
    assert_no_part(shown.stdout, shown.stderr, as_json.stdout, as_json.stderr)


def test_a_password_of_every_reserved_character_imports_end_to_end(
    pg: PgServer, password_role: str, readable: Source, tmp_path: Path
) -> None:
    set_password(pg, password_role, EVERY_CHARACTER)
    database = urlsplit(readable.url).path.lstrip("/")
    url = role_url(pg, password_role, EVERY_CHARACTER, database, encode=True)
    env = {
        "OLAPSYNC_CRM_URL": url,
        "OLAPSYNC_TELEMETRY_URL": url,
        "OLAPSYNC_CLICKHOUSE_URL": f"chdb://{tmp_path / 'ch'}",
    }
    done = cli("import", "-v", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "success"
    shown = cli("status", env=env)
    assert "success" in shown.stdout
    assert_no_part(done.stdout, done.stderr, shown.stdout, shown.stderr)


def test_driver_text_that_repeats_a_secret_is_scrubbed(pg: PgServer, password_role: str) -> None:
    secret = "s3cr-Echo-tPw"
    # libpq names the user it refuses: a user name equal to the password makes it say it.
    with pytest.raises(SourceError) as libpq:
        check_connection(role_url(pg, secret, secret, "postgres", encode=True))
    # connectorx quotes a value it cannot cast: here, one equal to the password.
    set_password(pg, password_role, secret)
    url = role_url(pg, password_role, secret, "postgres", encode=True)
    with pytest.raises(SourceError) as connectorx:
        read_arrow(url, f"SELECT '{secret}'::int AS n")
    for error in (libpq.value, connectorx.value):
        assert '"***"' in str(error), str(error)
        assert_no_part(str(error), "".join(traceback.format_exception(error)))
