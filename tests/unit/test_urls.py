"""URLs as values: every reserved character in a password, every part of a URL honoured or
refused, and no message that shows any part of a password."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from olapsync.clickhouse import client_arguments
from olapsync.config import Config
from olapsync.errors import ConfigError
from olapsync.urls import Url, clickhouse_url, postgres_url

# RFC 3986 section 2.2: gen-delims and sub-delims; then '%', a space and non-ASCII text.
GEN_DELIMS = ":/?#[]@"
SUB_DELIMS = "!$&'()*+,;="
RESERVED = [*GEN_DELIMS, *SUB_DELIMS, "%", " ", "é", "密"]
# Raw, these end the user-info early or start an escape: the URL cannot be read as meant.
RAW_REFUSED = set("/?#@%")


def password_with(char: str) -> str:
    return f"s3cr{char}tPw"


def assert_no_part(password: str, *texts: str) -> None:
    """Neither side of the reserved character, nor the whole, appears anywhere."""
    for text in texts:
        for part in ("s3cr", "tPw", password):
            assert part not in text, (part, text)


@pytest.mark.parametrize("char", RESERVED)
@pytest.mark.parametrize(
    ("parse", "shape"),
    [(postgres_url, "postgresql://app:{}@db:5432/crm"), (clickhouse_url, "https://app:{}@ch")],
)
def test_a_percent_encoded_password_holds_any_character(
    char: str, parse: object, shape: str
) -> None:
    password = password_with(char)
    url = parse(shape.format(quote(password, safe="")))  # type: ignore[operator]
    assert isinstance(url, Url)
    assert url.password is not None
    assert url.password.reveal() == password
    assert url.username == "app"
    assert parse(url.reveal()) == url  # type: ignore[operator]  # what the driver gets
    assert_no_part(password, str(url), repr(url), f"{url}", f"{url:>80}", repr(url.password))


@pytest.mark.parametrize("char", RESERVED)
def test_a_raw_reserved_character_is_refused_or_read_exactly(char: str) -> None:
    password = password_with(char)
    text = f"postgresql://app:{password}@db:5432/crm"
    if char in RAW_REFUSED:
        with pytest.raises(ConfigError, match="percent-encode the user name and password") as info:
            postgres_url(text, setting="OLAPSYNC_CRM_URL")
        message = str(info.value)
        assert message.startswith("Config OLAPSYNC_CRM_URL='postgresql://***@db:5432/crm' ")
        assert_no_part(password, message, repr(info.value))
        assert info.value.__cause__ is None
        assert info.value.__suppress_context__
    else:
        url = postgres_url(text)
        assert url.password is not None
        assert url.password.reveal() == password
        assert (url.host, url.port, url.path) == ("db", 5432, "crm")
        assert_no_part(password, str(url), repr(url))


@pytest.mark.parametrize("user", ["an@lyst", "o'sync#ops", "ü ser/1", "50%"])
def test_percent_encoded_user_names_are_decoded(user: str) -> None:
    pg = postgres_url(f"postgresql://{quote(user, safe='')}:pw@db/crm")
    ch = clickhouse_url(f"http://{quote(user, safe='')}:pw@ch:8123")
    assert pg.username == ch.username == user
    assert client_arguments(ch)["username"] == user


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("postgresql://app:s3cr@tPw@db/crm", "cannot be split into user-info and host"),
        ("postgresql://app:s3cr/tPw@db/crm", "cannot be split into user-info and host"),
        ("postgresql://app:s3crtPw@db/crm@x", "cannot be split into user-info and host"),
        ("postgresql://app:s3cr%zztPw@db/crm", "starts no %XX escape"),
        ("postgresql://app:s3cr%FFtPw@db/crm", "not UTF-8"),
        ("postgresql://app:s3cr%00tPw@db/crm", "NUL"),
        ("postgresql://app:s3cr\ntPw@db/crm", "control character"),
        ("postgresql://:s3crtPw@db/crm", "no user name"),
        ("postgresql://app:s3crtPw/crm", "invalid port"),
        ("postgresql://app:s3crtPw@db:99999/crm", "invalid port"),
        ("postgresql://app:s3crtPw@db:/crm", "invalid port"),
        ("postgresql://app:s3crtPw@[::zz]:5432/crm", "invalid IPv6"),
        ("postgresql://app:s3crtPw@db<1>/crm", "invalid host"),
        ("postgresql://app:s3crtPw@db1,db2/crm", "several hosts"),
        ("postgresql://app:s3crtPw@/crm", "names no host"),
        ("postgresql://app:s3crtPw@db/crm/x", "more than one path segment"),
        ("postgresql://app:s3crtPw@db/crm#x", "fragment"),
        ("postgresql://db/crm?password=s3crtPw", "puts a secret in its query"),
        ("postgresql://db/crm?sslpassword=s3cr&tPw", "puts a secret in its query"),
        ("postgresql://db/crm?sslmode", "not key=value"),
        ("postgresql://db/crm?sslmode=require&sslmode=disable", "repeats a query parameter"),
        ("mysql://app:s3crtPw@db/crm", "is not a postgresql/postgres URL"),
        ("app:s3crtPw@db/crm", "is not a postgresql/postgres URL"),
    ],
)
def test_refusals_say_why_and_show_no_part_of_the_password(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        postgres_url(text, setting="OLAPSYNC_CRM_URL")
    message = str(info.value)
    assert message.startswith("Config OLAPSYNC_CRM_URL='")
    assert message.endswith(".")
    assert_no_part("s3crtPw", message)


# -- kind 3: every part is honoured or refused -------------------------------------------


@pytest.mark.parametrize(
    ("text", "secure", "port"),
    [
        ("https://default:secret@ch:8123", True, 8123),  # the example: TLS on 8123
        ("https://default:secret@ch", True, 8443),
        ("https://default:secret@ch?secure=true", True, 8443),
        ("http://default:secret@ch:8443", False, 8443),  # plain, as written, even on 8443
        ("http://default:secret@ch", False, 8123),
        ("http://default:secret@ch?secure=false", False, 8123),
    ],
)
def test_the_scheme_alone_decides_tls(text: str, secure: bool, port: int) -> None:
    args = client_arguments(clickhouse_url(text))
    assert args["interface"] == ("https" if secure else "http")
    assert args["secure"] is secure
    assert args["port"] == port
    assert (args["host"], args["username"], args["password"]) == ("ch", "default", "secret")


def test_query_parameters_become_typed_client_arguments() -> None:
    url = clickhouse_url(
        "https://u:p@ch/analytics?verify=false&ca_cert=/etc/ca%20dir/ca.pem&server_host_name=db"
        "&client_cert=/c.pem&client_cert_key=/k.pem&compress=zstd&connect_timeout=3"
        "&send_receive_timeout=30"
    )
    args = client_arguments(url)
    assert args["verify"] is False
    assert args["ca_cert"] == "/etc/ca dir/ca.pem"
    assert args["server_host_name"] == "db"
    assert (args["client_cert"], args["client_cert_key"]) == ("/c.pem", "/k.pem")
    assert args["compress"] == "zstd"
    assert (args["connect_timeout"], args["send_receive_timeout"]) == (3, 30)
    assert args["secure"] is True
    assert "database" not in args  # the database goes to Config
    assert client_arguments(clickhouse_url("http://ch?compress=false"))["compress"] is False


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("http://u:p@ch?secure=true", "says secure=true but its scheme is http"),
        ("https://u:p@ch?secure=false", "says secure=false but its scheme is https"),
        ("https://u:p@ch?secure=maybe", "where true or false belongs"),
        ("http://u:p@ch?ca_cert=/ca.pem", "applies to https only"),
        ("http://u:p@ch?verify=false", "applies to https only"),
        ("https://u:p@ch?verify=nope", "where true or false belongs"),
        ("http://u:p@ch?compress=snappy", "where true or false belongs"),
        ("http://u:p@ch?connect_timeout=1.5", "whole seconds"),
        ("http://u:p@ch?max_threads=2", "does not use: use secure"),
        ("http://u:p@ch?database=x", "does not use: use secure"),
        ("http://u:p@ch?user=x", "does not use: use secure"),
        ("http://u:p@ch?password=x", "puts a secret in its query"),
        ("http://u:p@ch/a/b", "more than one path segment"),
        ("http://:p@ch", "no user name"),
        ("http://u%3Ax:p@ch", "HTTP Basic auth cannot carry"),
        ("http://u:p@:8123", "names no host"),
        ("tcp://u:p@ch:9000", "is not a http/https URL"),
        ("chdb://u:p@/data", "names a user, password, host or port"),
        ("chdb://localhost:9000/data", "names a user, password, host or port"),
        ("chdb:///data?readonly=1", "has a query or fragment"),
        ("chdb:///data#x", "has a query or fragment"),
        ("chdb://", "names no folder"),
    ],
)
def test_clickhouse_parts_that_would_be_ignored_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        clickhouse_url(text, setting="OLAPSYNC_CLICKHOUSE_URL")
    assert "u:p@" not in str(info.value)


def test_a_refusal_lists_what_is_accepted() -> None:
    with pytest.raises(ConfigError) as info:
        clickhouse_url("http://ch?max_threads=2")
    for key in ("secure", "verify", "ca_cert", "compress", "connect_timeout"):
        assert key in str(info.value)
    with pytest.raises(ConfigError) as info:
        postgres_url("postgresql://db/crm?options=-csearch_path%3Dx")
    for key in ("sslmode", "sslrootcert", "sslcert", "sslkey", "application_name"):
        assert key in str(info.value)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("sslmode=verify-full", "cannot honour"),
        ("sslmode=allow", "cannot honour"),
        ("sslcert=/c.pem", "only one of sslcert and sslkey"),
        ("sslkey=/k.pem", "only one of sslcert and sslkey"),
        ("application_name=my%20app", "space in application_name"),
        ("connect_timeout=ten", "whole seconds"),
        ("cxprotocol=binary", "does not use"),
        ("target_session_attrs=read-write", "does not use"),
    ],
)
def test_postgres_parameters_both_readers_cannot_honour_are_refused(
    query: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        postgres_url(f"postgresql://app:pw@db/crm?{query}")


def test_postgres_parameters_both_readers_honour_are_kept() -> None:
    url = postgres_url(
        "postgresql://app:pw@db/crm?sslmode=require&sslrootcert=/ca%20dir/ca.pem"
        "&sslcert=/c.pem&sslkey=/k.pem&application_name=olapsync&connect_timeout=5"
    )
    assert url.options["sslrootcert"] == "/ca dir/ca.pem"
    assert postgres_url(url.reveal()) == url
    assert "sslrootcert=/ca%20dir/ca.pem" in url.reveal()


def test_chdb_folders_are_percent_decoded_and_may_be_relative() -> None:
    assert clickhouse_url("chdb:///data/my%20folder%3F").path == "/data/my folder?"
    assert clickhouse_url("chdb://olapsync-data/clickhouse").path == "olapsync-data/clickhouse"
    folder = "/tmp/odd ?#@% folder"
    cfg = Config(clickhouse_url="chdb://" + quote(folder, safe="/"))
    assert cfg.chdb_path == folder


def test_a_database_in_the_path_is_the_database() -> None:
    assert Config(clickhouse_url="http://u:p@ch:8123/analytics").database == "analytics"
    assert Config(clickhouse_url="http://u:p@ch:8123/analytics", database="analytics")
    assert Config(clickhouse_url="http://u:p@ch:8123/").database == "olap"
    env = {"OLAPSYNC_CLICKHOUSE_URL": "http://u:p@ch:8123/analytics"}
    assert Config.from_env(env).database == "analytics"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Config(clickhouse_url="http://u:p@ch:8123/analytics", database="olap"),
        lambda: Config.from_env(
            {
                "OLAPSYNC_CLICKHOUSE_URL": "http://u:p@ch:8123/analytics",
                "OLAPSYNC_CLICKHOUSE_DATABASE": "olap",
            }
        ),
        lambda: Config.from_env(
            {"OLAPSYNC_CLICKHOUSE_DATABASE": "olap"}, clickhouse_url="http://ch/analytics"
        ),
        lambda: Config(clickhouse_url="http://ch/analytics").with_(database="olap"),
    ],
)
def test_a_database_named_twice_differently_is_refused(build: object) -> None:
    with pytest.raises(ConfigError, match="differs from the database 'analytics'"):
        build()  # type: ignore[operator]


def test_a_database_in_the_path_must_be_an_identifier() -> None:
    with pytest.raises(ConfigError, match="path of OLAPSYNC_CLICKHOUSE_URL"):
        Config(clickhouse_url="http://ch/ana-lytics")


def test_with_a_new_clickhouse_url_brings_its_database() -> None:
    cfg = Config(clickhouse_url="http://ch/analytics")
    assert cfg.with_(clickhouse_url="http://ch/other").database == "other"
    assert cfg.with_(clickhouse_url="chdb:///tmp/x").database == "olap"
    explicit = Config(clickhouse_url="chdb:///tmp/x", database="mine")
    assert explicit.with_(clickhouse_url="chdb:///tmp/y").database == "mine"
    assert cfg.with_(batch_size=5000).database == "analytics"


def test_urls_given_as_values_are_checked_for_their_kind() -> None:
    with pytest.raises(ConfigError, match="not a PostgreSQL URL"):
        Config(crm_url=clickhouse_url("http://u:s3crtPw@ch"))
    with pytest.raises(ConfigError, match="not a ClickHouse URL"):
        Config(clickhouse_url=postgres_url("postgresql://u:s3crtPw@db/crm"))
    url = postgres_url("postgresql://u:s3crtPw@db/crm")
    assert Config(crm_url=url).crm_url is url


def test_no_part_of_a_url_shows_the_password_even_where_it_is_repeated() -> None:
    # A user name (or host) that happens to hold the password is masked too.
    url = postgres_url("postgresql://s3crtPw:s3crtPw@db/crm")
    assert str(url) == "postgresql://***:***@db/crm"
