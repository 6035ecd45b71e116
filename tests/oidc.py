"""A real OIDC issuer on 127.0.0.1 for the tests and the report benchmark: RSA and EC keys
generated here with `cryptography`, the discovery document and the JWKS served over HTTP
(Keycloak's paths), and access tokens signed with PyJWT, shaped like Keycloak's."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.testclient import TestClient

from olapsync.config import Config
from reports.app import create_app
from reports.auth import Verifier
from reports.settings import ServiceSettings

KeyKind = Literal["RSA", "P-256", "P-384"]
AUDIENCE = "olapsync-reports"
ADMIN_ROLE = "reports-admin"
_DEFAULT_ALG = {"RSA": "RS256", "P-256": "ES256", "P-384": "ES384"}


@dataclass
class Key:
    kid: str
    kind: KeyKind
    private: Any

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if self.kind == "RSA":
            data: dict[str, Any] = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "use": "sig"}


def make_key(kind: KeyKind) -> Key:
    if kind == "RSA":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        curve = ec.SECP256R1() if kind == "P-256" else ec.SECP384R1()
        private = ec.generate_private_key(curve)
    return Key(kid=f"{kind}-{uuid.uuid4().hex[:8]}", kind=kind, private=private)


class LocalIssuer:
    """An issuer at `http://127.0.0.1:<port>/realms/<realm>`, serving until `stop()`.

    Attributes:
        published: the keys the JWKS lists (add or remove while it runs to rotate).
        jwks_hits: how many times the JWKS was fetched.
        down: while True, every request gets a 503.
        discovery: while False, the discovery document is not found (404).
    """

    def __init__(self, realm: str = "clinic"):
        self.realm = realm
        self.published: dict[str, Key] = {}
        self.jwks_hits = 0
        self.down = False
        self.discovery = True
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer._answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def issuer(self) -> str:
        return f"{self.base}/realms/{self.realm}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    def start(self) -> LocalIssuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        body: dict[str, Any] | None = None
        if self.down:
            body = None
        elif self.discovery and path == f"/realms/{self.realm}/.well-known/openid-configuration":
            body = {
                "issuer": self.issuer,
                "jwks_uri": self.jwks_url,
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            }
        elif path == f"/realms/{self.realm}/protocol/openid-connect/certs":
            self.jwks_hits += 1
            body = {"keys": [key.jwk() for key in list(self.published.values())]}
        data = json.dumps(body).encode()
        request.send_response(200 if body is not None else 503 if self.down else 404)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def add_key(self, kind: KeyKind = "RSA", *, publish: bool = True) -> Key:
        key = make_key(kind)
        if publish:
            self.published[key.kid] = key
        return key

    def claims(
        self,
        subject: str,
        *,
        realm_roles: tuple[str, ...] = (),
        client_roles: tuple[str, ...] = (),
        lifetime: float = 300,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Keycloak-shaped access-token claims; `overrides` replace (None removes) a claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": [AUDIENCE, "account"],
            "sub": subject,
            "exp": now + int(lifetime),
            "iat": now,
            "typ": "Bearer",
            "azp": "clinic-portal",
            "realm_access": {"roles": ["offline_access", *realm_roles]},
            "resource_access": {AUDIENCE: {"roles": list(client_roles)}},
        }
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(self, claims: dict[str, Any], key: Key, *, alg: str | None = None) -> str:
        """`claims` signed with `key` (its usual algorithm unless `alg`), `kid` in the header."""
        return jwt.encode(
            claims, key.private, algorithm=alg or _DEFAULT_ALG[key.kind], headers={"kid": key.kid}
        )

    def token(self, subject: str, key: Key, **kw: Any) -> str:
        """A valid access token for `subject` (see `claims` for the options)."""
        return self.sign(self.claims(subject, **kw), key)


# -- A signed-in reports service over a local issuer (tests/integration/test_service_auth.py)
class Clock:
    """Monotonic seconds the test moves by hand, to step past the JWKS refetch interval."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Realm:
    def __init__(self, issuer: LocalIssuer, uuids: dict[int, str]):
        self.issuer = issuer
        self.uuids = uuids
        self.rsa = issuer.add_key("RSA")
        self.ec = issuer.add_key("P-256")
        self.ec384 = issuer.add_key("P-384")

    def token(self, user_id: int, key: Key | None = None, **kw: Any) -> str:
        return self.issuer.token(self.uuids[user_id], key or self.rsa, **kw)

    def admin(self) -> str:
        return self.issuer.token("admin-without-a-user", self.rsa, realm_roles=(ADMIN_ROLE,))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def settings_for(issuer: LocalIssuer, **kw: Any) -> ServiceSettings:
    return ServiceSettings(oidc_issuer=issuer.issuer, oidc_audience=AUDIENCE, **kw)


def signed_in_app(config: Config, issuer: LocalIssuer, clock: Clock, **kw: Any) -> TestClient:
    settings = settings_for(issuer, **kw)
    verifier = Verifier.from_settings(settings, clock=clock)
    return TestClient(create_app(config, settings=settings, verifier=verifier))
