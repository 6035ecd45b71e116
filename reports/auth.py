"""Sign-in: OIDC bearer tokens (RFC 6750), checked with PyJWT against the issuer's keys
(`reports.keys`).

- Algorithms: RS256/384/512, PS256, ES256/384 only, each only with a key of its type;
  `none`, HS* and anything else are refused before a key is looked up, so a public key can
  never be used as an HMAC secret.
- Claims: signature, `iss`, `aud`, `exp` (required), `nbf` and `iat`, with `LEEWAY` (30 s) for
  clock skew; `sub` is required. Keycloak's `typ` claim, when present, must say it is an
  access token (an ID or refresh token is not a bearer credential).
- Roles are Keycloak's: `realm_access.roles` and `resource_access.<audience>.roles`.

Per request, with the key cached, verification does no I/O and runs on the event loop. A
client sends the same access token until it expires, so a token that verified is remembered
(at most `TOKEN_CACHE` of them) with its principal: the next request with it costs a dict
lookup, an expiry check and a check that its key is still the issuer's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from anyio import to_thread

from olapsync.errors import ConfigError
from reports.keys import ALGORITHMS, JwksSource, KeyCache, KeysUnavailable, SigningKey
from reports.settings import ServiceSettings

LEEWAY = 30.0
TOKEN_CACHE = 10_000
_ACCESS_TOKEN_TYPES = {"bearer", "at+jwt"}

__all__ = ["AuthError", "KeyCache", "KeysUnavailable", "Principal", "Verifier"]


class AuthError(Exception):
    """A request without a usable bearer token: 401.

    Attributes:
        reason: a short label for metrics (`missing`, `expired`, `audience`, ...).
        description: one sentence for the client; never quotes the token.
        token_sent: whether a bearer token was sent (RFC 6750: then `error="invalid_token"`).
    """

    def __init__(self, reason: str, description: str, *, token_sent: bool = True):
        super().__init__(description)
        self.reason = reason
        self.description = description
        self.token_sent = token_sent


@dataclass(frozen=True)
class Principal:
    """Who is asking: the token's `sub` and whether it holds the admin role."""

    subject: str
    admin: bool


def _unverified_header(token: str) -> tuple[Any, Any]:
    """`alg` and `kid` from a token's header, unverified: they only pick the key and the one
    algorithm PyJWT may then accept (it parses the header again and checks everything)."""
    encoded = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, binascii.Error):
        raise AuthError("malformed", "The token is not a well-formed JWT.") from None
    if not isinstance(header, dict):
        raise AuthError("malformed", "The token is not a well-formed JWT.")
    return header.get("alg"), header.get("kid")


def _roles(claims: Mapping[str, Any], audience: str) -> set[str]:
    roles: set[str] = set()
    holders = [claims.get("realm_access")]
    resources = claims.get("resource_access")
    if isinstance(resources, dict):
        holders.append(resources.get(audience))
    for holder in holders:
        if isinstance(holder, dict) and isinstance(holder.get("roles"), list):
            roles.update(r for r in holder["roles"] if isinstance(r, str))
    return roles


_FAILURES: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "expired", "The token has expired."),
    (jwt.ImmatureSignatureError, "not_yet_valid", "The token is not valid yet."),
    (jwt.InvalidIssuerError, "issuer", "The token was issued by another issuer."),
    (jwt.InvalidAudienceError, "audience", "The token is meant for another audience."),
    (jwt.InvalidSignatureError, "signature", "The token's signature does not verify."),
    (jwt.MissingRequiredClaimError, "missing_claim", "The token lacks a required claim."),
    (jwt.InvalidAlgorithmError, "algorithm", "The token's algorithm is not accepted."),
    (jwt.DecodeError, "malformed", "The token is not a well-formed JWT."),
    (jwt.PyJWTError, "invalid", "The token is not valid."),
)


class Verifier:
    """Turns an `Authorization` header into a `Principal`, or raises.

    Args:
        issuer: the exact `iss` tokens must carry.
        audience: an `aud` tokens must carry; also the client whose roles count.
        admin_role: the role that may read every user's report.
        keys: where signing keys come from.
    """

    def __init__(self, issuer: str, audience: str, admin_role: str, keys: KeyCache):
        self.issuer = issuer
        self.audience = audience
        self.admin_role = admin_role
        self.keys = keys
        self._background: set[asyncio.Future[None]] = set()
        # token -> (principal, exp, kid) of tokens that verified; see the module docstring.
        self._verified: dict[str, tuple[Principal, float, str]] = {}

    @classmethod
    def from_settings(
        cls, settings: ServiceSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> Verifier:
        """The verifier `settings` describe (they must have an issuer and an audience)."""
        if settings.oidc_issuer is None or settings.oidc_audience is None:
            raise ConfigError(
                "Config OLAPSYNC_OIDC_ISSUER and OLAPSYNC_OIDC_AUDIENCE are both needed."
            )
        source = JwksSource(settings.oidc_issuer, settings.oidc_jwks_url, settings.oidc_timeout)
        return cls(
            settings.oidc_issuer,
            settings.oidc_audience,
            settings.admin_role,
            KeyCache(source, clock=clock),
        )

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal of a request's `Authorization` header value.

        Raises:
            AuthError: no bearer token, or one that does not verify (401).
            KeysUnavailable: the token's key is not cached and the JWKS cannot be fetched (503).
        """
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError(
                "missing", "Sign in: send Authorization: Bearer <access token>.", token_sent=False
            )
        known = self._verified.get(token)
        if known is not None:
            principal, expires, kid = known
            if time.time() <= expires + LEEWAY and self.keys.get(kid) is not None:
                if self.keys.stale() and self.keys.may_fetch():
                    self._refresh_in_background()
                return principal
            del self._verified[token]  # expired, or its key was withdrawn: check it afresh
        alg, kid = _unverified_header(token)
        if alg not in ALGORITHMS:
            raise AuthError("algorithm", "The token's algorithm is not accepted.")
        if not isinstance(kid, str):
            raise AuthError("unknown_key", "The token names no signing key (kid).")
        key = await self._key(kid)
        if alg not in key.algorithms:
            raise AuthError("algorithm", "The token's algorithm does not fit its key.")
        claims = self._decode(token, key.key, alg)
        principal = self.principal(claims)
        if len(self._verified) >= TOKEN_CACHE:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (principal, float(claims["exp"]), kid)
        return principal

    async def _key(self, kid: str) -> SigningKey:
        key = self.keys.get(kid)
        if key is not None:
            if self.keys.stale() and self.keys.may_fetch():
                self._refresh_in_background()
            return key
        if self.keys.may_fetch():
            await to_thread.run_sync(self.keys.refresh, kid)
            key = self.keys.get(kid)
        if key is not None:
            return key
        if not self.keys.reachable:
            # Cannot tell a freshly rotated key from a forged kid while the JWKS is down.
            raise KeysUnavailable("the sign-in keys cannot be fetched")
        raise AuthError("unknown_key", "The token's signing key is not one of the issuer's.")

    def _refresh_in_background(self) -> None:
        future = asyncio.get_running_loop().run_in_executor(None, self.keys.refresh)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            for kind, reason, description in _FAILURES:
                if isinstance(exc, kind):
                    raise AuthError(reason, description) from None
            raise  # unreachable: PyJWTError is the last entry
        return claims

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """The principal of verified `claims`.

        Raises:
            AuthError: `sub` is not a non-empty string, or `typ` says it is no access token.
        """
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthError("missing_claim", "The token's sub is not a user id.")
        typ = claims.get("typ")
        if isinstance(typ, str) and typ.lower() not in _ACCESS_TOKEN_TYPES:
            raise AuthError("not_access_token", "The token is not an access token.")
        return Principal(subject, self.admin_role in _roles(claims, self.audience))
