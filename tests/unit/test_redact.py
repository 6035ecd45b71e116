from __future__ import annotations

import pytest

from olapsync.redact import redact_text, redact_url, url_password


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://app:s3cret@db:5432/crm", "postgresql://app:***@db:5432/crm"),
        ("postgresql://app@db/crm", "postgresql://app@db/crm"),
        ("http://default:p%40ss@ch:8123", "http://default:***@ch:8123"),
        ("chdb:///data/clickhouse", "chdb:///data/clickhouse"),
        (
            "postgresql://db/crm?password=abc&sslmode=require",
            "postgresql://db/crm?password=***&sslmode=require",
        ),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_text_finds_urls_and_named_secrets() -> None:
    text = "could not reach postgresql://u:topsecret@h/db (password topsecret, key k3y)"
    out = redact_text(text, ("k3y",))
    assert "topsecret" not in out
    assert "k3y" not in out
    assert "postgresql://u:***@h/db" in out


def test_url_password() -> None:
    assert url_password("http://u:pw@h") == "pw"
    assert url_password("http://h") == ""
