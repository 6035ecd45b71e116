"""The query parameters a connection URL may carry, and what each must hold: every part of a
URL the user wrote is honoured or refused, never silently ignored (issue 15, item 3).
`olapsync.urls` parses the URL; this module judges its parameters.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from olapsync.urls import Url

_DIGITS = re.compile(r"[0-9]{1,9}")


class Refused(Exception):
    """Why a URL is refused, as the end of a sentence that starts with the URL."""


# Query parameters of a PostgreSQL URL. Two drivers read it: libpq (psycopg) and connectorx,
# which takes sslrootcert/sslcert/sslkey for its own TLS set-up (a cert without its key is
# dropped) and hands the rest to rust-postgres, which panics on a key it does not know and
# knows sslmode only as disable/prefer/require. Only what both read alike is accepted.
POSTGRES_PARAMETERS = {
    "sslmode": "disable, prefer or require",
    "sslrootcert": "a CA file that the server certificate must chain to",
    "sslcert": "a client certificate file, with sslkey",
    "sslkey": "the client certificate's key file, with sslcert",
    "application_name": "a name without spaces",
    "connect_timeout": "whole seconds",
}
_SSLMODES = ("disable", "prefer", "require")

# Query parameters of an http(s) ClickHouse URL, each a clickhouse-connect `get_client`
# argument of the same name (clickhouse-connect docs, "Connection arguments").
CLICKHOUSE_PARAMETERS = {
    "secure": "true or false, agreeing with the scheme",
    "verify": "true or false: check the server certificate (https only)",
    "ca_cert": "a CA file, or certifi (https only)",
    "client_cert": "a client certificate file (https only)",
    "client_cert_key": "the client certificate's key file (https only)",
    "server_host_name": "the name the server certificate must carry (https only)",
    "compress": "true, false, lz4, zstd, br or gzip",
    "connect_timeout": "whole seconds",
    "send_receive_timeout": "whole seconds",
}
_TLS_ONLY = ("verify", "ca_cert", "client_cert", "client_cert_key", "server_host_name")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_COMPRESS = ("lz4", "zstd", "br", "gzip")


def clickhouse_options(url: Url) -> dict[str, Any]:
    """The query parameters of an http(s) URL as typed clickhouse-connect arguments
    (`secure` is left out: the scheme decides it)."""
    typed: dict[str, Any] = {}
    for key, value in url.query:
        if key == "verify":
            typed[key] = _bool(value)
        elif key in ("connect_timeout", "send_receive_timeout"):
            typed[key] = int(value)
        elif key == "compress":
            typed[key] = value.lower() if value.lower() in _COMPRESS else _bool(value)
        elif key != "secure":
            typed[key] = value
    return typed


def check_postgres_options(options: dict[str, str]) -> None:
    _check_known(options, POSTGRES_PARAMETERS)
    mode = options.get("sslmode")
    if mode is not None and mode not in _SSLMODES:
        raise Refused(
            f"has sslmode={mode!r}, which the reader (connectorx) cannot honour: use one of "
            f"{', '.join(_SSLMODES)} (require with sslrootcert checks the certificate)"
        )
    if ("sslcert" in options) != ("sslkey" in options):
        raise Refused("names only one of sslcert and sslkey: give both, or neither")
    if " " in options.get("application_name", ""):
        raise Refused(
            "has a space in application_name, which connectorx passes on as '+': remove it"
        )
    _check_seconds(options, "connect_timeout")


def check_clickhouse_options(url: Url) -> None:
    if url.username and ":" in url.username:
        raise Refused("has a ':' in its user name, which HTTP Basic auth cannot carry (RFC 7617)")
    options = url.options
    _check_known(options, CLICKHOUSE_PARAMETERS)
    secure = url.scheme == "https"
    if "secure" in options and _bool(options["secure"]) != secure:
        raise Refused(
            f"says secure={options['secure']} but its scheme is {url.scheme}: use https:// "
            "for TLS or http:// for plain HTTP, and drop secure="
        )
    tls_only = [k for k in _TLS_ONLY if k in options]
    if tls_only and not secure:
        raise Refused(f"sets {tls_only[0]}, which applies to https only: use https://")
    if "verify" in options:
        _bool(options["verify"])
    compress = options.get("compress", "true").lower()
    if compress not in _COMPRESS:
        _bool(compress)
    for key in ("connect_timeout", "send_receive_timeout"):
        _check_seconds(options, key)


def _check_known(options: dict[str, str], accepted: dict[str, str]) -> None:
    for key in options:
        if key not in accepted:
            listed = "; ".join(f"{k} ({what})" for k, what in accepted.items())
            raise Refused(f"has the parameter {key!r}, which olapsync does not use: use {listed}")


def _check_seconds(options: dict[str, str], key: str) -> None:
    if key in options and not _DIGITS.fullmatch(options[key]):
        raise Refused(f"has {key}={options[key]!r}: use whole seconds, e.g. {key}=10")


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE or lowered in _FALSE:
        return lowered in _TRUE
    raise Refused(f"has {value!r} where true or false belongs: use true or false")
