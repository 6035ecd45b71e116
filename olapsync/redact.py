"""Keep passwords out of every message, log line, exception text and table.

Redaction here is by structure, not by pattern:
- a password is a `Secret`, shown as `***`; a URL olapsync understood is an
  `olapsync.urls.Url`, which holds its password as a `Secret`;
- a URL olapsync refused is quoted through `mask_url`, which masks everything that could be
  user-info without trying to understand it;
- text a driver wrote (which may echo what it was given) goes through `scrub` with every form
  of every password olapsync knows, at each boundary where it becomes our text;
- `SecretFilter` does the same to log records, for the handlers the CLI and the service own.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote

MASK = "***"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Query keys whose values are secrets (libpq, clickhouse-connect, common habits).
SECRET_KEYS = frozenset({"password", "sslpassword", "pass", "pwd", "access_token", "token"})


class Secret:
    """A password: `str`, `repr` and format show `***`; `reveal()` hands it to a driver."""

    __slots__ = ("_value", "_written")

    def __init__(self, value: str, written: str | None = None) -> None:
        self._value = value
        self._written = value if written is None else written

    def reveal(self) -> str:
        """The password itself, for a driver's connect call and nothing else."""
        return self._value

    def forms(self) -> tuple[str, ...]:
        """Every spelling under which a driver or a message may repeat the password: as
        written, decoded, percent- and form-encoded, and escaped by repr and JSON."""
        value = self._value
        spellings = (
            value,
            self._written,
            quote(value, safe=""),
            quote_plus(value, safe=""),
            repr(value)[1:-1],
            json.dumps(value)[1:-1],
        )
        return tuple(dict.fromkeys(s for s in spellings if s))

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each of `secrets` replaced by `***`.

    Longer secrets go first, so a secret that holds another is removed whole.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class DriverError(Exception):
    """What a driver raised, kept as the cause of olapsync's own error with its text scrubbed.

    `raise TargetError(...) from driver_error(exc, secrets)` keeps what a caller debugging a
    failure needs (the driver's exception type, its message, ClickHouse's error code) in the
    chain a traceback prints, without the original exception, whose text may repeat a
    password it was given.

    Attributes:
        driver_type: the driver exception's qualified class name.
        code: its `code` attribute (ClickHouse's error code), when it has one.
    """

    def __init__(self, message: str, *, driver_type: str, code: object = None):
        super().__init__(message)
        self.driver_type = driver_type
        self.code = code


def driver_error(exc: BaseException, secrets: Iterable[str]) -> DriverError:
    """`exc` as a `DriverError` whose text has none of `secrets` (nor its cause's)."""
    kind = type(exc)
    name = f"{kind.__module__}.{kind.__qualname__}"
    text = scrub(str(exc), secrets)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and not isinstance(cause, DriverError):
        text += f" (caused by {type(cause).__qualname__}: {scrub(str(cause), secrets)})"
    return DriverError(f"{name}: {text}", driver_type=name, code=getattr(exc, "code", None))


def mask_url(text: str) -> str:
    """A URL olapsync could not (or would not) parse, safe to quote in a message.

    Masked without parsing, so that no reading of an ambiguous URL can expose a password:
    everything between `://` and the last `@` (the user-info, wherever it really ends), a
    port that is not a number (`user:password` written without a host), the whole query
    when it names a secret, and any fragment.

    >>> mask_url("postgresql://app:pa/ss@db:5432/crm")
    'postgresql://***@db:5432/crm'
    >>> mask_url("postgresql://app:secret/crm")
    'postgresql://app:***/crm'
    """
    scheme = _SCHEME.match(text)
    head = scheme.group(0) if scheme else ""
    rest = text[len(head) :]
    if "@" in rest:
        rest = MASK + "@" + rest.rpartition("@")[2]
    rest, hash_, _fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    end = len(rest) if "/" not in rest else rest.index("/")
    authority, path = rest[:end], rest[end:]
    host_start = authority.rfind("@") + 1
    host = authority[host_start:]
    bracket = host.rfind("]")
    colon = host.find(":", bracket + 1)
    if colon >= 0 and not host[colon + 1 :].isdigit():
        authority = authority[: host_start + colon + 1] + MASK
    if query and not _plain_query(query):
        query = MASK
    return head + authority + path + question + query + (hash_ and hash_ + MASK)


def _plain_query(query: str) -> bool:
    """Whether every item is key=value with a key that names no secret (decoded, so that
    `pass%77ord` counts too)."""
    for item in query.split("&"):
        key, eq, _value = item.partition("=")
        if not eq or unquote(key).strip().lower() in SECRET_KEYS:
            return False
    return True


class SecretFilter(logging.Filter):
    """A handler filter that removes every registered secret from each record it passes.

    The record's message is rendered, scrubbed and stored back (its arguments dropped), and
    an attached traceback is rendered and scrubbed too, so no formatter sees the original.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        """Remove these from every later record too."""
        with self._lock:
            self._secrets = self._secrets | {s for s in secrets if s}

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        if not secrets:
            return True
        record.msg = scrub(record.getMessage(), secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, secrets)
        return True


def guard_handlers(log_filter: SecretFilter, logger: logging.Logger | None = None) -> None:
    """Attach `log_filter` to every handler of `logger` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if log_filter not in handler.filters:
            handler.addFilter(log_filter)
