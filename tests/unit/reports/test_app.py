"""`POST /report` bodies, checked without a server or a database: what is accepted becomes
a user id and a UTC window; anything else is a 4xx whose detail says what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reports.app import BadRequest, parse_report_request


def test_a_full_request_gives_the_user_and_a_utc_window() -> None:
    body = b'{"user_id": 7, "start_ts": "2026-01-01T03:00:00+03:00", "end_ts": "2026-02-01"}'
    assert parse_report_request(body) == (
        7,
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 2, 1, tzinfo=UTC),
    )


def test_the_window_is_optional_on_both_sides() -> None:
    assert parse_report_request(b'{"user_id": -1}') == (-1, None, None)
    assert parse_report_request(b'{"user_id": 1, "end_ts": null}') == (1, None, None)


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"{", 400, "not valid JSON"),
        (b"[1]", 422, "Expected `object`, got `array`"),
        (b'{"user_id": 1, "userid": 2}', 422, "unknown field `userid`"),
        (b"{}", 422, "missing required field `user_id`"),
        (b'{"user_id": "1"}', 422, "user_id: expected `int`, got `str`"),
        (b'{"user_id": true}', 422, "user_id: expected `int`, got `bool`"),
        (b'{"user_id": 1.0}', 422, "user_id: expected `int`, got `float`"),
        (b'{"user_id": 2147483648}', 422, "user_id: expected `int` <= 2147483647"),
        (
            b'{"user_id": 1, "start_ts": 20260101}',
            422,
            "start_ts: expected `str | null`, got `int`",
        ),
        (b'{"user_id": 1, "end_ts": "yesterday"}', 422, "end_ts 'yesterday' is not an ISO-8601"),
        (
            b'{"user_id": 1, "start_ts": "2026-02-01", "end_ts": "2026-01-01"}',
            422,
            "start_ts is after end_ts",
        ),
    ],
)
def test_a_bad_body_is_a_4xx_that_says_why(body: bytes, status: int, detail: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_report_request(body)
    assert info.value.status == status
    assert detail in info.value.detail
