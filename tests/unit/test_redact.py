from __future__ import annotations

import io
import logging

import pytest

from olapsync.redact import SecretFilter, guard_handlers, mask_url, scrub


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # The whole user-info goes, wherever a raw '@', '/', '?' or '#' made it end.
        ("postgresql://app:pa/ss@db:5432/crm", "postgresql://***@db:5432/crm"),
        ("postgresql://app:p@ss@db/crm", "postgresql://***@db/crm"),
        ("postgresql://app:pa?ss@db/crm", "postgresql://***@db/crm"),
        ("postgresql://app:pa#ss@db/crm", "postgresql://***@db/crm"),
        ("mysql://root:hunter2@h/crm", "mysql://***@h/crm"),
        ("root:hunter2@h/crm", "***@h/crm"),
        # `user:password` with no host reads as host:port: a port that is no number goes.
        ("postgresql://app:secret/crm", "postgresql://app:***/crm"),
        ("postgresql://[::1]:5432/crm", "postgresql://[::1]:5432/crm"),
        # A query naming a secret, even percent-encoded, goes whole; so does a fragment.
        ("postgresql://db/crm?password=a&b", "postgresql://db/crm?***"),
        ("postgresql://db/crm?pass%77ord=abc", "postgresql://db/crm?***"),
        ("postgresql://db/crm?sslmode=require", "postgresql://db/crm?sslmode=require"),
        ("postgresql://db/crm#frag", "postgresql://db/crm#***"),
        ("chdb:///data/clickhouse", "chdb:///data/clickhouse"),
    ],
)
def test_mask_url_hides_anything_that_could_be_user_info(url: str, expected: str) -> None:
    assert mask_url(url) == expected


def test_scrub_removes_longer_secrets_first() -> None:
    text = "could not log in with s3cret-long (also s3cret)"
    assert scrub(text, ("s3cret", "s3cret-long", "")) == "could not log in with *** (also ***)"


def test_a_log_record_cannot_carry_a_registered_secret() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("olapsync.test_redact")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    secrets = SecretFilter()
    guard_handlers(secrets, logger)
    guard_handlers(secrets, logger)  # idempotent
    secrets.add(("Pw-in-a-log-1",))
    try:
        logger.warning("connecting with %s", "Pw-in-a-log-1")
        try:
            raise RuntimeError("driver said Pw-in-a-log-1")
        except RuntimeError:
            logger.exception("failed")
        logger.warning("stack", stack_info=True)
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "connecting with ***" in out
    assert "driver said ***" in out
    assert "Pw-in-a-log-1" not in out
    assert handler.filters == [secrets]
