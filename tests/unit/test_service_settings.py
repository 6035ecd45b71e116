"""The service's settings: secure by default, every unsafe combination refused with one line
that says the fix, and the same options from variables and from the command line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from olapsync.errors import ConfigError
from reports.schemas import parse_timestamp
from reports.settings import ServiceSettings, add_arguments, from_args, is_loopback_host

ISSUER = "https://sso.example/realms/clinic"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"])
def test_open_on_loopback(host: str) -> None:
    assert is_loopback_host(host)
    assert not ServiceSettings(host=host).auth_enabled


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "reports.example", "localhost.evil"])
def test_open_elsewhere_is_refused(host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceSettings(host=host)
    message = str(caught.value)
    assert "\n" not in message
    assert f"on {host} without sign-in" in message
    assert "OLAPSYNC_OIDC_ISSUER" in message
    assert "--no-auth" in message
    assert ServiceSettings(host=host, no_auth=True).no_auth
    assert ServiceSettings(host=host, oidc_issuer=ISSUER, oidc_audience="reports").auth_enabled


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        ({"oidc_issuer": ISSUER}, "OLAPSYNC_OIDC_AUDIENCE is missing"),
        ({"oidc_audience": "reports"}, "without OLAPSYNC_OIDC_ISSUER"),
        ({"oidc_jwks_url": ISSUER + "/certs"}, "without OLAPSYNC_OIDC_ISSUER"),
        (
            {"oidc_issuer": "http://sso.example/realms/clinic", "oidc_audience": "r"},
            "plain http on a non-loopback host",
        ),
        (
            {
                "oidc_issuer": ISSUER,
                "oidc_audience": "r",
                "oidc_jwks_url": "http://10.1.1.1/certs",
            },
            "OLAPSYNC_OIDC_JWKS_URL='http://10.1.1.1/certs' is plain http",
        ),
        ({"oidc_issuer": "sso.example", "oidc_audience": "r"}, "is not an http(s) URL"),
        ({"oidc_issuer": ISSUER, "oidc_audience": "r", "no_auth": True}, "drop one of them"),
        ({"pool_timeout": 0}, "OLAPSYNC_REPORTS_POOL_TIMEOUT=0 must be a number of seconds"),
        ({"pool": 0}, "OLAPSYNC_REPORTS_POOL=0"),
        ({"port": 70000}, "not a TCP port"),
        ({"port": -1}, "not a TCP port"),
        ({"cors_origins": ("https://portal.example/app",)}, "is not an origin"),
        ({"admin_role": " "}, "ADMIN_ROLE is empty"),
    ],
)
def test_malformed_combinations_are_refused(kw: dict[str, object], text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceSettings(**kw)  # type: ignore[arg-type]
    assert text in str(caught.value)


def test_http_issuer_on_loopback_is_allowed() -> None:
    settings = ServiceSettings(oidc_issuer="http://127.0.0.1:8080/realms/x", oidc_audience="r")
    assert settings.auth_enabled
    assert settings.admin_role == "reports-admin"


def test_variables_and_options_give_the_same_settings() -> None:
    env = {
        "OLAPSYNC_OIDC_ISSUER": ISSUER,
        "OLAPSYNC_OIDC_AUDIENCE": "reports",
        "OLAPSYNC_OIDC_JWKS_URL": ISSUER + "/protocol/openid-connect/certs",
        "OLAPSYNC_REPORTS_ADMIN_ROLE": "auditor",
        "OLAPSYNC_REPORTS_CORS_ORIGINS": "https://a.example, https://b.example:8443",
        "OLAPSYNC_REPORTS_POOL_TIMEOUT": "1.5",
        "OLAPSYNC_REPORTS_HOST": "0.0.0.0",
    }
    from_env = ServiceSettings.from_env(env)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--oidc-issuer",
            ISSUER,
            "--oidc-audience",
            "reports",
            "--oidc-jwks-url",
            ISSUER + "/protocol/openid-connect/certs",
            "--admin-role",
            "auditor",
            "--cors-origins",
            "https://a.example,https://b.example:8443",
            "--pool-timeout",
            "1.5",
            "--host",
            "0.0.0.0",
        ]
    )
    assert from_args(args, {}) == from_env
    assert from_env.cors_origins == ("https://a.example", "https://b.example:8443")
    # Options win over variables.
    assert from_args(parser.parse_args(["--admin-role", "root"]), env).admin_role == "root"


def test_a_malformed_variable_names_itself() -> None:
    with pytest.raises(ConfigError, match="OLAPSYNC_REPORTS_PORT='http' is not a number"):
        ServiceSettings.from_env({"OLAPSYNC_REPORTS_PORT": "http"})


def test_the_service_refuses_to_start_open_on_a_public_address() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLAPSYNC_")}
    for args in (["--host", "0.0.0.0"], ["--host", "::"]):
        done = subprocess.run(
            [sys.executable, "-m", "reports", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("error: Refusing to serve reports on ")
        assert "OLAPSYNC_OIDC_ISSUER" in lines[0]


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026-01-01", "2026-01-01T00:00:00+00:00"),
        ("2026-01-01T03:00:00+03:00", "2026-01-01T00:00:00+00:00"),
        ("2026-01-01T00:00:00z", "2026-01-01T00:00:00+00:00"),
        ("2026-01-01 00:00:00.1234567", "2026-01-01T00:00:00.123456+00:00"),
        ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00+00:00"),
        ("9999-12-31T23:00:00-05:00", "9999-12-31T23:59:59.999999+00:00"),
    ],
)
def test_timestamps_keep_todays_contract(text: str, iso: str) -> None:
    assert parse_timestamp(text, "start_ts").isoformat() == iso


@pytest.mark.parametrize(
    "text", ["yesterday", "2026-13-01", "20260101", " 2026-01-01", "2026-01-01T25:00", "2026-W01"]
)
def test_timestamps_outside_the_pattern_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not an ISO-8601 date or date-time: use e\.g\."):
        parse_timestamp(text, "end_ts")
