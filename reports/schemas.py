"""The service's request and response types, declared once.

msgspec validates each request against these types (unknown fields refused) and encodes each
answer through them; `reports.openapi` generates the OpenAPI schemas from the same classes.

Timestamps are strings matching `TIMESTAMP_PATTERN`: a date (`2026-01-01`, midnight) or a
date and time with optional seconds, fraction, and `Z` or `±HH:MM` offset; naive values are
UTC (the seed's rule). The pattern is published in the schema and checked with the calendar
in `Window.__post_init__`, so the message can quote the value and say the fix.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from olapsync.errors import ConfigError
from olapsync.queries import UserReport
from olapsync.window import check_order

MAX_BODY = 64 * 1024
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?)?$"
)
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN.removesuffix("$"))
_EXAMPLE = "2026-01-01T00:00:00Z"

Timestamp = Annotated[
    str,
    Meta(
        description="ISO-8601 date or date-time; `Z` and offsets are converted, naive is UTC",
        examples=["2026-01-01", "2026-01-01T00:00:00", "2026-01-01T03:00:00+03:00"],
        extra_json_schema={"pattern": TIMESTAMP_PATTERN},
    ),
]
Int32 = Annotated[int, Meta(ge=-(2**31), le=2**31 - 1, description="users.user_id (Int32)")]


class BadRequest(Exception):
    """An answer other than 200, with its status, a `detail` for the body and headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def parse_timestamp(value: str, name: str) -> datetime:
    """`value` (matching `TIMESTAMP_PATTERN`) as an aware UTC datetime.

    An offset that pushes the instant past year 1 or 9999 is clamped to that end: ClickHouse
    `DateTime` ends long before either, so the window selects the same rows.

    Raises:
        ValueError: not a timestamp, or not a calendar date/time (the message quotes it).
    """
    try:
        if not _TIMESTAMP.fullmatch(value):
            raise ValueError
        parsed = datetime.fromisoformat(value[:-1] + "Z" if value.endswith("z") else value)
    except ValueError:
        raise ValueError(
            f"{name} {value[:64]!r} is not an ISO-8601 date or date-time: use e.g. {_EXAMPLE}."
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return (datetime.min if parsed.year == 1 else datetime.max).replace(tzinfo=UTC)


class Window(Struct, forbid_unknown_fields=True, kw_only=True):
    """`start_ts <= event_timestamp <= end_ts`, both bounds optional and inclusive."""

    start_ts: Timestamp | None = None
    end_ts: Timestamp | None = None

    def __post_init__(self) -> None:
        self.bounds()  # msgspec turns the ValueError into a ValidationError with its text

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """The bounds as aware UTC datetimes.

        Raises:
            ValueError: a bound is not a timestamp, or `start_ts` is after `end_ts`.
        """
        start = None if self.start_ts is None else parse_timestamp(self.start_ts, "start_ts")
        end = None if self.end_ts is None else parse_timestamp(self.end_ts, "end_ts")
        try:  # the words the CLI and the Python API refuse a reversed window with
            check_order(start, end)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return start, end


class ReportRequest(Window, forbid_unknown_fields=True, kw_only=True):
    """The body of `POST /report`."""

    user_id: Int32


class ProsthesisStats(Struct):
    prosthesis_type: str
    events_count: int
    total_duration: int
    avg_amplitude: float
    avg_frequency: float


class Report(Struct):
    """The seed's report: one user's events in a window, per prosthesis type (sorted), with
    averages rounded to 2 decimals; zeros and an empty list when there are no events."""

    user_name: str
    user_email: str
    total_events: int
    total_duration: int
    prosthesis_stats: list[ProsthesisStats]


class Health(Struct):
    status: Literal["ok", "unavailable"]


class Error(Struct):
    detail: str


_report_request = msgspec.json.Decoder(ReportRequest)
_encoder = msgspec.json.Encoder()


def decode_report_request(body: bytes) -> ReportRequest:
    """A `POST /report` body as a `ReportRequest`.

    Raises:
        BadRequest: 400 when the body is not JSON (RFC 8259: no NaN, no trailing commas),
            422 when it is JSON but not a valid request; the detail says why.
    """
    try:
        return _report_request.decode(body)
    except msgspec.ValidationError as exc:
        # msgspec validates while it parses: tell "not JSON" apart from "not a request".
        try:
            msgspec.json.decode(body)
        except (msgspec.DecodeError, RecursionError):
            raise BadRequest(400, "The body is not valid JSON.") from None
        raise BadRequest(422, _detail(exc)) from None
    except (msgspec.DecodeError, RecursionError):
        raise BadRequest(400, "The body is not valid JSON.") from None


def decode_window_query(items: list[tuple[str, str]]) -> Window:
    """Query parameters (`start_ts`, `end_ts`) as a `Window`.

    Raises:
        BadRequest: 422 for an unknown, repeated or invalid parameter.
    """
    names = [name for name, _ in items]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BadRequest(422, f"Query parameter {repeated[0][:40]!r} is given more than once.")
    try:
        return msgspec.convert(dict(items), Window)
    except msgspec.ValidationError as exc:
        raise BadRequest(422, _detail(exc)) from None


def _detail(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    if text.endswith("."):  # raised by `Window.bounds`: already says the fix
        return text
    # msgspec's "Expected `int`, got `str` - at `$.user_id`" as "user_id: expected ...".
    found = re.fullmatch(r"(.+) - at `\$\.?(.*)`", text)
    if found:
        text = f"{found[2]}: {found[1][0].lower()}{found[1][1:]}"
    return f"{text} (the request's schema is in GET /openapi.json)."


def encode_report(report: UserReport) -> bytes:
    """The JSON body of a report, through the declared `Report` type."""
    return _encoder.encode(msgspec.convert(report, Report, from_attributes=True))


def encode(value: Struct) -> bytes:
    return _encoder.encode(value)
