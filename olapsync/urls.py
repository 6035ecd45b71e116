"""Connection URLs as values: parsed once (RFC 3986), refused when ambiguous, shown redacted.

A `Url` holds each part the user wrote, percent-decoded: user name, password, host, port,
path (the database, or chDB's folder) and query. `str`, `repr` and format show the password
as `***`; the password itself comes out only through `Url.reveal()` (the whole URL,
percent-encoded, for a driver) and `olapsync.redact.Secret.reveal()`, where a driver
connects.

Why refuse rather than guess: a raw `@`, `/`, `?` or `#` in a user name or password moves
the boundary between the user-info and the host (RFC 3986 section 3.2), so each driver reads
a different host, port or database than the user meant, and echoes pieces of the password
back in its errors. Every part is either honoured or refused: a query parameter a driver
would ignore, or read differently from the other driver, is refused with what is accepted.

    >>> url = postgres_url("postgresql://app:p%40ss@db:5432/crm")
    >>> str(url), url.password.reveal() if url.password else None
    ('postgresql://app:***@db:5432/crm', 'p@ss')
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from olapsync.errors import ConfigError
from olapsync.redact import MASK, SECRET_KEYS, Secret, mask_url, scrub
from olapsync.url_options import (
    Refused,
    check_clickhouse_options,
    check_postgres_options,
)

POSTGRES_SCHEMES = ("postgresql", "postgres")
CLICKHOUSE_SCHEMES = ("http", "https", "chdb")
DEFAULT_PORTS = {"http": 8123, "https": 8443}

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_REG_NAME = re.compile(r"[A-Za-z0-9._~%-]+")
_PORT = re.compile(r"[0-9]{1,5}")
_ENCODE_HINT = (
    "percent-encode the user name and password, e.g. urllib.parse.quote(password, safe='') "
    "('@' is %40, '/' is %2F, '?' is %3F, '#' is %23, '%' is %25)"
)


@dataclass(frozen=True, repr=False)
class Url:
    """One connection URL, every part decoded; build it with `postgres_url` or
    `clickhouse_url`, which refuse what they cannot read unambiguously.

    Attributes:
        scheme: lower case: postgresql, postgres, http, https or chdb.
        username: the decoded user name, or None when the URL names none.
        password: the decoded password, or None.
        host: the decoded host name or address (IPv6 without brackets); '' for chdb.
        port: the port, or None when the URL names none.
        path: the decoded path without its leading '/': a database name (PostgreSQL,
            http(s)), or chDB's folder (absolute, or relative to the working directory).
        query: the decoded query parameters in order.
    """

    scheme: str
    username: str | None = None
    password: Secret | None = None
    host: str = ""
    port: int | None = None
    path: str = ""
    query: tuple[tuple[str, str], ...] = ()

    @property
    def database(self) -> str | None:
        """The database the path names (PostgreSQL, http(s)), or None."""
        return None if self.scheme == "chdb" else (self.path or None)

    @property
    def options(self) -> dict[str, str]:
        """The query parameters as a dict."""
        return dict(self.query)

    def reveal(self) -> str:
        """The whole URL with the password, percent-encoded: for a driver's connect call."""
        return self._render(reveal=True)

    def secrets(self) -> tuple[str, ...]:
        """Every form of the password (see `Secret.forms`) and the Basic-auth token."""
        if self.password is None:
            return ()
        token = f"{self.username or ''}:{self.password.reveal()}".encode()
        return (*self.password.forms(), base64.b64encode(token).decode())

    def scrub(self, text: str) -> str:
        """`text` with every form of this URL's password replaced by `***`."""
        return scrub(text, self.secrets())

    def _render(self, *, reveal: bool) -> str:
        if self.scheme == "chdb":
            return "chdb://" + quote(self.path, safe="/")
        out = self.scheme + "://"
        if self.username is not None:
            out += quote(self.username, safe="")
            if self.password is not None:
                out += ":" + (quote(self.password.reveal(), safe="") if reveal else MASK)
            out += "@"
        out += f"[{self.host}]" if ":" in self.host else quote(self.host, safe="")
        if self.port is not None:
            out += f":{self.port}"
        if self.path:
            out += "/" + quote(self.path, safe="")
        if self.query:
            pairs = (f"{quote(k, safe='')}={quote(v, safe='/:')}" for k, v in self.query)
            out += "?" + "&".join(pairs)
        return out

    def __str__(self) -> str:
        # Scrubbed too: a user name or host that repeats the password must not show it.
        return self.scrub(self._render(reveal=False))

    def __repr__(self) -> str:
        return f"Url({str(self)!r})"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def postgres_url(text: str, *, setting: str = "PostgreSQL URL") -> Url:
    """Parse a PostgreSQL URL: `postgresql://user:password@host:port/database?params`.

    User name, password, host and database are percent-decoded (RFC 3986, as libpq and
    rust-postgres do); accepted parameters are `POSTGRES_PARAMETERS`.

    Raises:
        ConfigError: the URL is ambiguous, malformed, or has a part no driver would honour
            alike; the message names `setting`, quotes the URL with its user-info masked
            and says the fix.
    """
    try:
        url = _parse(text, POSTGRES_SCHEMES, "postgresql://user:password@host:5432/database")
        if not url.host:
            raise Refused("names no host: use postgresql://user:password@host:5432/database")
        check_postgres_options(url.options)
    except Refused as exc:
        raise ConfigError(f"Config {setting}={mask_url(text)!r} {exc}.") from None
    return url


def clickhouse_url(text: str, *, setting: str = "ClickHouse URL") -> Url:
    """Parse a ClickHouse URL: `http(s)://user:password@host:port/database?params` for a
    server, or `chdb://folder` (absolute, or relative to the working directory).

    `https` means TLS (default port 8443), `http` plain HTTP (8123), whatever the port; a
    path names the database; accepted parameters are `CLICKHOUSE_PARAMETERS`. A chdb URL
    names a folder and nothing else.

    Raises:
        ConfigError: as `postgres_url`.
    """
    try:
        scheme = _SCHEME.match(text)
        if scheme is not None and scheme.group(1).lower() == "chdb":
            return _chdb(scheme.group(2))
        url = _parse(text, ("http", "https"), "http(s)://user:password@host:8123 or chdb:///path")
        if not url.host:
            raise Refused("names no host: use http(s)://user:password@host:port")
        check_clickhouse_options(url)
    except Refused as exc:
        raise ConfigError(f"Config {setting}={mask_url(text)!r} {exc}.") from None
    return url


def secrets_in(*texts: str) -> tuple[str, ...]:
    """Every form of every password in the URLs `texts` that parse (PostgreSQL or ClickHouse),
    for scrubbing text before the settings were validated; a refused URL contributes none
    (its refusal masks the whole user-info)."""
    found: list[str] = []
    for text in texts:
        if not text:
            continue
        parse = clickhouse_url if text.lower().startswith(("http", "chdb")) else postgres_url
        with contextlib.suppress(ConfigError):
            found += parse(text).secrets()
    return tuple(dict.fromkeys(found))


def _parse(text: str, schemes: tuple[str, ...], shape: str) -> Url:
    match = _SCHEME.fullmatch(text)
    if match is None or match.group(1).lower() not in schemes:
        raise Refused(f"is not a {'/'.join(schemes)} URL: use {shape}")
    scheme, rest = match.group(1).lower(), match.group(2)
    if _CONTROL.search(text):
        raise Refused("holds a control character: remove it")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in tail or authority.count("@") > 1:
        raise Refused(
            f"cannot be split into user-info and host unambiguously: {_ENCODE_HINT}, "
            "and any '@' after the host"
        )
    tail, hash_, _fragment = tail.partition("#")
    if hash_:
        raise Refused("ends in a '#' fragment, which means nothing here: remove it")
    path, _, raw_query = tail.partition("?")
    userinfo, at, hostport = authority.rpartition("@")
    username: str | None = None
    password: Secret | None = None
    if at:
        raw_user, colon, raw_password = userinfo.partition(":")
        username = _decode(raw_user)
        if colon:
            password = Secret(_decode(raw_password), raw_password)
            if not username:
                raise Refused("has a password but no user name: write user:password@host")
    host, port = _host_port(hostport)
    segments = path.removeprefix("/")
    if "/" in segments:
        raise Refused("has more than one path segment: the path names one database")
    return Url(
        scheme=scheme,
        username=username,
        password=password,
        host=host,
        port=port,
        path=_decode(segments),
        query=_query(raw_query),
    )


def _decode(raw: str) -> str:
    if _BAD_ESCAPE.search(raw):
        raise Refused(f"holds a '%' that starts no %XX escape: {_ENCODE_HINT}")
    try:
        value = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise Refused("holds %XX escapes that are not UTF-8: encode the text as UTF-8") from None
    if "\x00" in value:
        raise Refused("holds an escaped NUL (%00), which no driver can pass on: remove it")
    return value


def _host_port(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        literal, bracket, after = hostport[1:].partition("]")
        try:
            host = str(ipaddress.IPv6Address(literal)) if bracket else ""
        except ValueError:
            host = ""
        if not host or (after and not after.startswith(":")):
            raise Refused("has an invalid IPv6 address: write it as [address]:port")
        raw_port = after[1:] if after else None
    else:
        raw_host, colon, port_text = hostport.partition(":")
        raw_port = port_text if colon else None
        if "," in raw_host:
            raise Refused("names several hosts: name the one server to connect to")
        if raw_host and not _REG_NAME.fullmatch(raw_host):
            raise Refused("has an invalid host name: use letters, digits, '.', '-' or %XX")
        host = _decode(raw_host)
    if raw_port is None:
        return host, None
    if not _PORT.fullmatch(raw_port) or not 0 < int(raw_port) < 65536:
        raise Refused("has an invalid port: use a number from 1 to 65535")
    return host, int(raw_port)


def _query(raw: str) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    pairs: list[tuple[str, str]] = []
    for item in raw.split("&"):
        raw_key, eq, raw_value = item.partition("=")
        key = _decode(raw_key)
        if key.lower() in SECRET_KEYS:
            raise Refused("puts a secret in its query: give the password in the user-info")
        if not eq or not key:
            raise Refused("has a query parameter that is not key=value: write key=value&...")
        pairs.append((key, _decode(raw_value)))
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise Refused("repeats a query parameter: give each once")
    return tuple(pairs)


def _chdb(rest: str) -> Url:
    if _CONTROL.search(rest):
        raise Refused("holds a control character: remove it")
    if "?" in rest or "#" in rest:
        raise Refused(
            "has a query or fragment, which chdb:// does not use: name the folder only "
            "(percent-encode '?' as %3F and '#' as %23 in a folder name)"
        )
    first = rest.lstrip("/").split("/", 1)[0]
    if "@" in rest or ":" in first:
        raise Refused(
            "names a user, password, host or port, which the embedded engine does not use: "
            "write chdb:///absolute/folder (percent-encode '@' as %40 in a folder name)"
        )
    folder = _decode(rest)
    if not folder:
        raise Refused("names no folder: use chdb:///absolute/folder")
    return Url(scheme="chdb", path=folder)
