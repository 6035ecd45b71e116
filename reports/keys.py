"""The issuer's signing keys (RFC 7517 JWKS): where they come from, which are usable, and
the cache that refetches them.

- Keys come from the JWKS named by the issuer's discovery document (OpenID Connect
  Discovery 1.0: `<issuer>/.well-known/openid-configuration` → `jwks_uri`) or by an
  explicit URL, fetched with PyJWT's `PyJWKClient` (urllib, no redirects).
- Only RSA and EC signing keys are kept, each with the algorithms its type allows.
- Keys are parsed once and cached by `kid`. An unknown `kid` refetches the JWKS at most
  once per `REFETCH_INTERVAL` (30 s), so a rotated key works without a restart and a stream
  of forged `kid`s cannot hammer the issuer. A set older than `MAX_AGE` is refreshed in the
  background (removed keys stop working); the old keys serve meanwhile, and keep serving
  while the JWKS is down.

Every fetch here is blocking: callers run it in a worker thread, never on the event loop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWKClient

from reports.settings import check_http_url

log = logging.getLogger("reports.auth")

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")
_RSA = ("RS256", "RS384", "RS512", "PS256")
_BY_CURVE = {"P-256": ("ES256",), "P-384": ("ES384",)}
REFETCH_INTERVAL = 30.0
MAX_AGE = 300.0
_MAX_DOCUMENT = 1 << 20


class KeysUnavailable(Exception):
    """The issuer's keys cannot be fetched and none is cached that fits: 503."""


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
