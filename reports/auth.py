"""Sign-in: OIDC bearer tokens (RFC 6750) checked against the issuer's keys (RFC 7517).

PyJWT does the cryptography; this module decides which keys and algorithms it may use:

- Keys come from the JWKS named by the issuer's discovery document (OpenID Connect
  Discovery 1.0: `<issuer>/.well-known/openid-configuration` → `jwks_uri`) or by an
  explicit URL. Only RSA and EC signing keys are kept, each with the algorithms its type
  allows; `none`, HS* and anything else are refused before a key is looked up, so a public
  key can never be used as an HMAC secret.
- Keys are parsed once and cached by `kid`. A token with an unknown `kid` refetches the
  JWKS, at most once per `REFETCH_INTERVAL` (30 s), so a rotated key works without a
  restart and a stream of forged `kid`s cannot hammer the issuer. A set older than
  `MAX_AGE` is refreshed in the background (removed keys stop working); the old keys serve
  meanwhile, and keep serving while the JWKS is down.
- Checked claims: signature, `iss`, `aud`, `exp` (required), `nbf` and `iat`, with
  `LEEWAY` (30 s) for clock skew; `sub` is required. Keycloak's `typ` claim, when present,
  must say it is an access token (an ID or refresh token is not a bearer credential).
- Roles are Keycloak's: `realm_access.roles` and `resource_access.<audience>.roles`.

Fetching is blocking HTTP (urllib, through PyJWT's `PyJWKClient` for the JWKS); `Verifier`
runs it in a worker thread, never on the event loop. Verifying a token with a cached key does
no I/O and runs on the loop (tens of microseconds).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from anyio import to_thread
from jwt import PyJWKClient

from olapsync.errors import ConfigError
from reports.settings import ServiceSettings, check_http_url

log = logging.getLogger("reports.auth")

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")
_RSA = ("RS256", "RS384", "RS512", "PS256")
_BY_CURVE = {"P-256": ("ES256",), "P-384": ("ES384",)}
LEEWAY = 30.0
REFETCH_INTERVAL = 30.0
MAX_AGE = 300.0
_ACCESS_TOKEN_TYPES = {"bearer", "at+jwt"}
_MAX_DOCUMENT = 1 << 20


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


class KeysUnavailable(Exception):
    """The issuer's keys cannot be fetched and none is cached that fits: 503."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: the token's `sub` and whether it holds the admin role."""

    subject: str
    admin: bool


@dataclass(frozen=True)
class SigningKey:
    """A parsed public key and the algorithms a token signed with it may name."""

    key: Any
    algorithms: tuple[str, ...]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could lead from https to http, or to a host the operator did not name.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch_json(url: str, timeout: float) -> dict[str, Any]:
    """GET `url` and return its JSON object (blocking; no redirects; at most 1 MiB).

    Raises:
        KeysUnavailable: the URL cannot be fetched or does not hold a JSON object.
    """
    opener = urllib.request.build_opener(_NoRedirect())
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with opener.open(request, timeout=timeout) as response:
            data = json.loads(response.read(_MAX_DOCUMENT + 1)[:_MAX_DOCUMENT])
    except (OSError, ValueError) as exc:
        raise KeysUnavailable(f"GET {url} failed: {exc}") from None
    if not isinstance(data, dict):
        raise KeysUnavailable(f"GET {url} did not return a JSON object.")
    return data


def parse_keys(jwks: Mapping[str, Any]) -> dict[str, SigningKey]:
    """The usable signing keys of a JWKS document, by `kid`.

    Skipped: keys for encryption (`use` other than `sig`), without a `kid`, of a type other
    than RSA or EC (so no symmetric `oct` key), on another curve than P-256/P-384, or whose
    `alg` is not one of `ALGORITHMS`.
    """
    out: dict[str, SigningKey] = {}
    entries = jwks.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid, kty = entry.get("kid"), entry.get("kty")
        if not isinstance(kid, str) or not kid:
            continue
        allowed: tuple[str, ...] = ()
        if kty == "RSA":
            allowed = _RSA
        elif kty == "EC":
            allowed = _BY_CURVE.get(str(entry.get("crv")), ())
        if "alg" in entry:
            allowed = tuple(a for a in allowed if a == entry["alg"])
        if not allowed:
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=allowed[0]).key
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            log.warning("skipping JWKS key %r: %s", kid[:64], type(exc).__name__)
            continue
        out[kid] = SigningKey(key, allowed)
    return out


class JwksSource:
    """Where the keys come from: an explicit JWKS URL, or the one the issuer's discovery
    document names (looked up once, then remembered)."""

    def __init__(self, issuer: str, jwks_url: str | None, timeout: float):
        self.issuer = issuer
        self.timeout = timeout
        self._client = None if jwks_url is None else self._jwk_client(jwks_url)

    def _jwk_client(self, url: str) -> PyJWKClient:
        return PyJWKClient(url, cache_jwk_set=False, timeout=self.timeout)

    def _discover(self) -> PyJWKClient:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = fetch_json(url, self.timeout)
        # OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it was
        # fetched for, or its keys are not that issuer's.
        if document.get("issuer") != self.issuer:
            raise KeysUnavailable(
                f"{url} names issuer {str(document.get('issuer'))[:200]!r}, not "
                f"{self.issuer!r}: set OLAPSYNC_OIDC_ISSUER to exactly the issuer's URL."
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise KeysUnavailable(f"{url} names no jwks_uri.")
        try:
            check_http_url("jwks_uri", jwks_uri)
        except Exception as exc:
            raise KeysUnavailable(str(exc)) from None
        return self._jwk_client(jwks_uri)

    def __call__(self) -> Mapping[str, Any]:
        """The JWKS document (blocking).

        Raises:
            KeysUnavailable: discovery or the JWKS cannot be fetched.
        """
        if self._client is None:
            self._client = self._discover()
        try:
            data = self._client.fetch_data()
        except jwt.PyJWKClientError as exc:
            raise KeysUnavailable(f"GET {self._client.uri} failed: {exc}") from None
        if not isinstance(data, dict):
            raise KeysUnavailable(f"GET {self._client.uri} did not return a JSON object.")
        return data


class KeyCache:
    """Parsed signing keys by `kid`, refreshed from `source` (see the module docstring).

    Args:
        source: returns a JWKS document; blocking; raises `KeysUnavailable`.
        clock: monotonic seconds (tests pass their own to step past the refetch interval).
    """

    def __init__(
        self,
        source: Callable[[], Mapping[str, Any]],
        *,
        clock: Callable[[], float] = time.monotonic,
        refetch_interval: float = REFETCH_INTERVAL,
        max_age: float = MAX_AGE,
    ):
        self._source = source
        self._clock = clock
        self._interval = refetch_interval
        self._max_age = max_age
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self.reachable = True  # whether the last fetch worked
        self._lock = threading.Lock()

    def get(self, kid: str) -> SigningKey | None:
        """The cached key for `kid`; no I/O."""
        return self._keys.get(kid)

    def may_fetch(self) -> bool:
        """Whether a fetch is allowed now: none was attempted in the last interval."""
        return self._attempted_at is None or self._clock() - self._attempted_at >= self._interval

    def stale(self) -> bool:
        """Whether the cached set is old enough to be refreshed in the background."""
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age

    def refresh(self, kid: str | None = None) -> None:
        """Fetch the JWKS if allowed (blocking; for a worker thread). Failures keep the old
        keys and are logged; `reachable` says how the last attempt went."""
        with self._lock:
            if kid is not None and kid in self._keys and not self.stale():
                return  # another thread fetched it while this one waited for the lock
            if not self.may_fetch():
                return
            self._attempted_at = self._clock()
            try:
                keys = parse_keys(self._source())
                if not keys:
                    raise KeysUnavailable("the JWKS holds no RSA or EC signing key")
            except KeysUnavailable as exc:
                self.reachable = False
                log.warning("cannot fetch the sign-in keys: %s", exc)
                return
            except Exception as exc:  # a bug or an odd document: keep serving the old keys
                self.reachable = False
                log.warning("cannot read the sign-in keys: %s", type(exc).__name__)
                return
            self._keys = keys
            self._fetched_at = self._attempted_at
            self.reachable = True
            log.info("loaded %d sign-in key(s)", len(keys))


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
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed", "The token is not a well-formed JWT.") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise AuthError("algorithm", "The token's algorithm is not accepted.")
        if not isinstance(kid, str):
            raise AuthError("unknown_key", "The token names no signing key (kid).")
        key = await self._key(kid)
        if alg not in key.algorithms:
            raise AuthError("algorithm", "The token's algorithm does not fit its key.")
        return self.principal(self._decode(token, key.key, alg))

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
