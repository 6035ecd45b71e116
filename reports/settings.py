"""How the reports service is run: bind address, pool, timeouts, sign-in (OIDC) and CORS.

The options are declared once, in `olapsync.service.OPTIONS` (olapsync's CLI builds
`olapsync serve` from them without importing the service); `ServiceSettings` is where they
are checked. `python -m reports` builds its argparse options from the same table. Construction refuses unsafe
combinations, so no front end can start the service open to the network by accident:

- without an OIDC issuer the service may only bind to a loopback address, unless `no_auth`;
- an issuer needs an audience (RFC 7519 `aud`: a token minted for another client must not
  be accepted here);
- `http://` issuer and JWKS URLs only on a loopback host (keys fetched in clear text could be
  swapped by anyone on the path).

    >>> ServiceSettings.from_env({}).auth_enabled
    False
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from olapsync.errors import ConfigError
from olapsync.service import DEFAULT_ADMIN_ROLE, OPTIONS, Option


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a name or an IP literal, IPv6 with or without brackets) is loopback.

    Only `localhost` and loopback IP literals count: other names are not resolved, since
    what they resolve to can change after the check.
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_http_url(key: str, url: str) -> None:
    """Refuse `url` unless it is https, or http on a loopback host.

    Raises:
        ConfigError: naming `key` and the URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"Config {key}={url!r} is not an http(s) URL: use https://host/...")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"Config {key}={url!r} is plain http on a non-loopback host: use https:// "
            "(signing keys fetched in clear text could be replaced on the way)."
        )


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of one reports service; checked on construction.

    Args:
        host: address to bind.
        port: TCP port.
        pool: ClickHouse clients serving reports side by side.
        pool_timeout: seconds a request waits for a free client before answering 503.
        body_timeout: seconds a request body may take to arrive before answering 408.
        oidc_issuer: the OIDC issuer URL (`iss`); None runs the service without sign-in.
        oidc_audience: the `aud` tokens must carry; required with an issuer.
        oidc_jwks_url: the JWKS URL, instead of the issuer's discovery document.
        oidc_timeout: seconds to wait for the discovery document or the JWKS.
        admin_role: the role (realm or client) that may read every user's report.
        cors_origins: origins browsers may call the service from; empty turns CORS off.
        no_auth: serve without sign-in on a non-loopback address.

    Raises:
        ConfigError: an unsafe or malformed combination (the message says the fix).
    """

    host: str = "127.0.0.1"
    port: int = 3003
    pool: int = 4
    pool_timeout: float = 3.0
    body_timeout: float = 10.0
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_timeout: float = 5.0
    admin_role: str = DEFAULT_ADMIN_ROLE
    cors_origins: tuple[str, ...] = ()
    no_auth: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:  # 0: any free port
            raise ConfigError(f"Config OLAPSYNC_REPORTS_PORT={self.port} is not a TCP port.")
        if self.pool < 1:
            raise ConfigError(f"Config OLAPSYNC_REPORTS_POOL={self.pool} must be 1 or more.")
        for name in ("pool_timeout", "body_timeout", "oidc_timeout"):
            if not 0 < getattr(self, name) <= 3600:
                key = _env_key(name)
                raise ConfigError(
                    f"Config {key}={getattr(self, name)} must be a number of seconds in (0, 3600]."
                )
        if not self.admin_role.strip():
            raise ConfigError("Config OLAPSYNC_REPORTS_ADMIN_ROLE is empty: name a role.")
        for origin in self.cors_origins:
            parts = urlsplit(origin)
            if origin != "*" and (
                parts.scheme not in ("http", "https") or not parts.netloc or parts.path
            ):
                raise ConfigError(
                    f"Config OLAPSYNC_REPORTS_CORS_ORIGINS has {origin!r}, which is not an "
                    "origin: use scheme://host[:port], e.g. https://portal.example."
                )
        self._check_auth()

    def _check_auth(self) -> None:
        if self.oidc_issuer is None:
            if self.oidc_audience or self.oidc_jwks_url:
                raise ConfigError(
                    "Config OLAPSYNC_OIDC_AUDIENCE or OLAPSYNC_OIDC_JWKS_URL is set without "
                    "OLAPSYNC_OIDC_ISSUER: set the issuer too (--oidc-issuer)."
                )
            if not self.no_auth and not is_loopback_host(self.host):
                raise ConfigError(
                    f"Refusing to serve reports on {self.host} without sign-in: set "
                    "OLAPSYNC_OIDC_ISSUER and OLAPSYNC_OIDC_AUDIENCE (--oidc-issuer, "
                    "--oidc-audience), bind to 127.0.0.1, or pass --no-auth to let anyone "
                    "who reaches the port read every report."
                )
            return
        if self.no_auth:
            raise ConfigError(
                f"Both --no-auth and OLAPSYNC_OIDC_ISSUER={self.oidc_issuer!r} are given: "
                "drop one of them."
            )
        check_http_url("OLAPSYNC_OIDC_ISSUER", self.oidc_issuer)
        if not self.oidc_audience:
            raise ConfigError(
                "Config OLAPSYNC_OIDC_AUDIENCE is missing: with an issuer, set the audience "
                "tokens must carry (--oidc-audience), e.g. the service's client id."
            )
        if self.oidc_jwks_url is not None:
            check_http_url("OLAPSYNC_OIDC_JWKS_URL", self.oidc_jwks_url)

    @property
    def auth_enabled(self) -> bool:
        """Whether requests for reports must carry a bearer token."""
        return self.oidc_issuer is not None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ServiceSettings:
        """Settings from `OLAPSYNC_*` variables (see `OPTIONS`); non-None `overrides` win.

        Args:
            environ: the variables to read; defaults to `os.environ`.
            overrides: field values, e.g. from command-line options; None means "not given".

        Raises:
            ConfigError: a value is malformed or the combination is unsafe.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for option in OPTIONS:
            raw = env.get(option.env, "").strip() if option.env else ""
            if raw:
                values[option.field] = _cast(option, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values.get("cors_origins"), list):
            values["cors_origins"] = tuple(values["cors_origins"])
        return cls(**values)

    def describe(self) -> dict[str, Any]:
        """The settings for a startup log line (none of them is a secret)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _env_key(field: str) -> str:
    return next(o.env or o.flag for o in OPTIONS if o.field == field)


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _cast(option: Option, raw: str) -> Any:
    try:
        if option.kind == "int":
            return int(raw)
        if option.kind == "float":
            return float(raw)
    except ValueError:
        raise ConfigError(
            f"Config {option.env}={raw!r} is not a number: use e.g. "
            f"{'3' if option.kind == 'int' else '2.5'}."
        ) from None
    if option.kind == "list":
        return _split(raw)
    return raw


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every option in `OPTIONS` to `parser` (defaults None: variables then apply)."""
    for option in OPTIONS:
        help_text = option.help + (f"; env {option.env}" if option.env else "")
        if option.kind == "flag":
            parser.add_argument(option.flag, action="store_true", default=None, help=help_text)
            continue
        kind: Any = {"int": int, "float": float, "str": str, "list": _split}[option.kind]
        parser.add_argument(option.flag, type=kind, default=None, help=help_text)


def from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ServiceSettings:
    """Settings from parsed `add_arguments` options over the environment.

    Raises:
        ConfigError: as `ServiceSettings.from_env`.
    """
    return ServiceSettings.from_env(environ, **{o.field: getattr(args, o.field) for o in OPTIONS})
