"""Sign-in and who may read what, against a real issuer: RSA and EC keys generated here, the
discovery document and JWKS served over HTTP on 127.0.0.1 (tests/oidc.py), and reports from
the real imported data."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.metadata
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from starlette.testclient import TestClient

from olapsync.config import Config
from reports.app import FORBIDDEN, create_app
from reports.auth import Verifier
from tests.integration import test_reports
from tests.integration.test_reports import assert_report, expected_report
from tests.oidc import (
    ADMIN_ROLE,
    Clock,
    Key,
    LocalIssuer,
    Realm,
    bearer,
    settings_for,
    signed_in_app,
)
from tests.support import Source

data = test_reports.data  # the imported data fixture (module-scoped: built again here)
WINDOW = {"start_ts": "2025-11-01T00:00:00", "end_ts": "2026-02-28T23:59:59Z"}


@pytest.fixture(scope="module")
def realm(data: tuple[Config, Source]) -> Iterator[Realm]:
    uuids = {int(u): str(v) for u, v in data[1].execute("SELECT user_id, user_uuid FROM users")}
    with LocalIssuer() as issuer:
        yield Realm(issuer, uuids)


@pytest.fixture(scope="module")
def client(data: tuple[Config, Source], realm: Realm) -> Iterator[TestClient]:
    with signed_in_app(data[0], realm.issuer, Clock()) as test_client:
        yield test_client


def test_own_report_is_200(client: TestClient, realm: Realm, data: tuple[Config, Source]) -> None:
    response = client.post("/report", json={"user_id": 3, **WINDOW}, headers=bearer(realm.token(3)))
    assert response.status_code == 200
    want = expected_report(data[1], 3, WINDOW["start_ts"], WINDOW["end_ts"])
    assert_report(response.json(), want)


def test_another_users_report_is_403_and_unknown_ids_look_the_same(
    client: TestClient, realm: Realm, data: tuple[Config, Source]
) -> None:
    name, email = data[1].execute("SELECT name, email FROM users WHERE user_id = 4")[0]
    token = realm.token(3)
    answers = [
        client.post("/report", json={"user_id": uid}, headers=bearer(token))
        for uid in (4, 999_999, -1)
    ]
    for response in answers:
        assert response.status_code == 403
        assert response.json() == {"detail": FORBIDDEN}
        assert name not in response.text
        assert email not in response.text
    # An outsider cannot tell an existing id from a missing one: same status, same body.
    assert len({a.text for a in answers}) == 1


def test_admin_reads_any_report(client: TestClient, realm: Realm) -> None:
    issuer = realm.issuer
    realm_admin = realm.admin()
    client_admin = issuer.token("x", realm.ec, client_roles=(ADMIN_ROLE,))
    for token in (realm_admin, client_admin):
        response = client.post("/report", json={"user_id": 4}, headers=bearer(token))
        assert response.status_code == 200
        assert response.json()["user_name"]
    # Only the service's own client roles count, not another client's.
    foreign = issuer.claims("x", resource_access={"other-app": {"roles": [ADMIN_ROLE]}})
    response = client.post(
        "/report", json={"user_id": 4}, headers=bearer(issuer.sign(foreign, realm.rsa))
    )
    assert response.status_code == 403
    # Admins may learn that an id does not exist.
    response = client.post("/report", json={"user_id": 999_999}, headers=bearer(realm_admin))
    assert response.status_code == 404


def test_me_report_is_the_token_users_report(client: TestClient, realm: Realm) -> None:
    query = "start_ts=2025-11-01&end_ts=2026-02-28T23:59:59%2B03:00"
    mine = client.get(f"/me/report?{query}", headers=bearer(realm.token(5, realm.ec)))
    assert mine.status_code == 200
    same = client.post(
        "/report",
        json={"user_id": 5, "start_ts": "2025-11-01", "end_ts": "2026-02-28T23:59:59+03:00"},
        headers=bearer(realm.admin()),
    )
    assert mine.json() == same.json()
    assert mine.json()["total_events"] > 0
    everything = client.get("/me/report", headers=bearer(realm.token(5, realm.ec384)))
    assert everything.json()["total_events"] >= mine.json()["total_events"]


def test_me_report_refuses_bad_queries_and_unknown_subjects(
    client: TestClient, realm: Realm
) -> None:
    token = bearer(realm.token(5))
    for query, text in [
        ("start_ts=yesterday", "start_ts 'yesterday' is not an ISO-8601"),
        ("start_ts=2026-02-01&end_ts=2026-01-01", "start_ts is after end_ts"),
        ("user_id=3", "unknown field `user_id`"),
        ("start_ts=2026-01-01&start_ts=2026-02-01", "more than once"),
    ]:
        response = client.get(f"/me/report?{query}", headers=token)
        assert response.status_code == 422, query
        assert text in response.json()["detail"]
    stranger = realm.issuer.token("f0000000-0000-0000-0000-00000000000f", realm.rsa)
    response = client.get("/me/report", headers=bearer(stranger))
    assert response.status_code == 404
    assert response.json() == {"detail": "No user in the users table has this token's subject."}


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _unsigned(realm: Realm) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": realm.rsa.kid}
    return f"{_b64(header)}.{_b64(realm.issuer.claims(realm.uuids[3]))}."


def _hs256_with_the_public_key(realm: Realm) -> str:
    # The key-confusion attack: an HMAC "signed" with the RSA public key as the secret.
    secret = realm.rsa.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': realm.rsa.kid})}."
        f"{_b64(realm.issuer.claims(realm.uuids[3]))}"
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _tampered(realm: Realm) -> str:
    header, _, signature = realm.token(3).split(".")
    return f"{header}.{_b64(realm.issuer.claims(realm.uuids[4]))}.{signature}"


def _claims(realm: Realm, **overrides: Any) -> str:
    return realm.issuer.sign(realm.issuer.claims(realm.uuids[3], **overrides), realm.rsa)


BAD_TOKENS: dict[str, tuple[Callable[[Realm], str], str]] = {
    "expired": (lambda r: _claims(r, exp=int(time.time()) - 120), "expired"),
    "not yet valid": (lambda r: _claims(r, nbf=int(time.time()) + 120), "not_yet_valid"),
    "wrong iss": (lambda r: _claims(r, iss="http://127.0.0.1:9/realms/other"), "issuer"),
    "wrong aud": (lambda r: _claims(r, aud="another-client"), "audience"),
    "alg none": (_unsigned, "algorithm"),
    "HS256 with the public key": (_hs256_with_the_public_key, "algorithm"),
    "tampered payload": (_tampered, "signature"),
    "key not in the JWKS": (
        lambda r: r.issuer.token(r.uuids[3], r.issuer.add_key("RSA", publish=False)),
        "unknown_key",
    ),
    "no exp": (lambda r: _claims(r, exp=None), "missing_claim"),
    "no sub": (lambda r: _claims(r, sub=None), "missing_claim"),
    "an ID token": (lambda r: _claims(r, typ="ID"), "not_access_token"),
    "RSA signature under an EC key's kid": (
        lambda r: jwt.encode(
            r.issuer.claims(r.uuids[3]), r.rsa.private, algorithm="RS256", headers={"kid": r.ec.kid}
        ),
        "algorithm",
    ),
    "not a JWT": (lambda r: "not.a.jwt", "malformed"),
}


def _failures(client: TestClient, reason: str) -> float:
    text = client.get("/metrics").text
    line = f'olapsync_reports_auth_failures_total{{reason="{reason}"}} '
    return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_each_bad_token_is_401_invalid_token(client: TestClient, realm: Realm, case: str) -> None:
    make, reason = BAD_TOKENS[case]
    before = _failures(client, reason)
    token = make(realm)
    for response in (
        client.post("/report", json={"user_id": 3}, headers=bearer(token)),
        client.get("/me/report", headers=bearer(token)),
    ):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        assert "user_name" not in response.text
    assert _failures(client, reason) == before + 2


def test_token_checks_are_timed(client: TestClient, realm: Realm) -> None:
    def checks() -> float:
        text = client.get("/metrics").text
        line = "olapsync_reports_auth_duration_seconds_count "
        return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])

    before = checks()
    for token in (realm.token(3), realm.token(3), "not.a.jwt"):
        client.post("/report", json={"user_id": 3}, headers=bearer(token))
    client.get("/health")  # no sign-in, not timed
    assert checks() == before + 3


def test_no_token_is_401_with_a_plain_challenge(client: TestClient, realm: Realm) -> None:
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    for headers in ({}, basic, {"Authorization": "Bearer "}):
        response = client.post("/report", json={"user_id": 3}, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    # Sign-in comes before the body: an anonymous caller learns nothing from validation.
    response = client.post("/report", content=b"{not json")
    assert response.status_code == 401
    assert client.get("/health").status_code == 200  # /health stays open


def test_the_30_second_leeway(client: TestClient, realm: Realm) -> None:
    for overrides in ({"exp": int(time.time()) - 10}, {"nbf": int(time.time()) + 10}):
        token = _claims(realm, **overrides)
        response = client.post("/report", json={"user_id": 3}, headers=bearer(token))
        assert response.status_code == 200, overrides


@pytest.mark.parametrize(
    ("kind", "alg"),
    [
        ("rsa", "RS256"),
        ("rsa", "RS384"),
        ("rsa", "RS512"),
        ("rsa", "PS256"),
        ("ec", "ES256"),
        ("ec384", "ES384"),
    ],
)
def test_each_accepted_algorithm(client: TestClient, realm: Realm, kind: str, alg: str) -> None:
    key: Key = getattr(realm, kind)
    token = realm.issuer.sign(realm.issuer.claims(realm.uuids[3]), key, alg=alg)
    response = client.post("/report", json={"user_id": 3}, headers=bearer(token))
    assert response.status_code == 200


def test_key_rotation_needs_no_restart(data: tuple[Config, Source], realm: Realm) -> None:
    clock = Clock()
    with LocalIssuer() as issuer, signed_in_app(data[0], issuer, clock) as client:
        old = issuer.add_key("RSA")
        uid = realm.uuids[3]
        assert client.get("/me/report", headers=bearer(issuer.token(uid, old))).status_code == 200
        assert issuer.jwks_hits == 1
        new = issuer.add_key("P-256")  # the issuer rotates while the service runs
        # Unknown kids refetch at most once per 30 s: a burst of forged kids costs one fetch.
        clock.now += 31
        forged = [issuer.token(uid, issuer.add_key("RSA", publish=False)) for _ in range(3)]
        for token in forged:
            assert client.get("/me/report", headers=bearer(token)).status_code == 401
        assert issuer.jwks_hits == 2
        response = client.get("/me/report", headers=bearer(issuer.token(uid, new)))
        assert response.status_code == 200  # fetched with the burst's refetch
        newer = issuer.add_key("RSA")
        assert client.get("/me/report", headers=bearer(issuer.token(uid, newer))).status_code == 401
        clock.now += 31
        assert client.get("/me/report", headers=bearer(issuer.token(uid, newer))).status_code == 200
        assert issuer.jwks_hits == 3
        # Old tokens keep working without another fetch.
        assert client.get("/me/report", headers=bearer(issuer.token(uid, old))).status_code == 200
        assert issuer.jwks_hits == 3


def test_a_withdrawn_key_stops_working(data: tuple[Config, Source], realm: Realm) -> None:
    clock = Clock()
    with LocalIssuer() as issuer, signed_in_app(data[0], issuer, clock) as client:
        old, new = issuer.add_key("RSA"), issuer.add_key("P-256")
        token = bearer(issuer.token(realm.uuids[3], old))
        for _ in range(2):  # the second is answered from the verified tokens
            assert client.get("/me/report", headers=token).status_code == 200
        del issuer.published[old.kid]
        clock.now += 301  # the set is old: refreshed in the background, old keys serve meanwhile
        deadline = time.monotonic() + 30
        while client.get("/me/report", headers=token).status_code == 200:
            assert time.monotonic() < deadline, "the withdrawn key kept working"
            time.sleep(0.05)
        assert client.get("/me/report", headers=token).status_code == 401
        fresh = bearer(issuer.token(realm.uuids[3], new))
        assert client.get("/me/report", headers=fresh).status_code == 200


def test_a_remembered_token_still_expires(client: TestClient, realm: Realm) -> None:
    token = bearer(_claims(realm, exp=int(time.time()) - 26))  # inside the 30 s leeway
    assert client.get("/me/report", headers=token).status_code == 200
    assert client.get("/me/report", headers=token).status_code == 200
    time.sleep(5)  # now past exp + leeway
    response = client.get("/me/report", headers=token)
    assert response.status_code == 401
    assert response.json() == {"detail": "The token has expired."}


def test_jwks_down_is_503_until_it_is_back(data: tuple[Config, Source], realm: Realm) -> None:
    clock = Clock()
    with LocalIssuer() as issuer, signed_in_app(data[0], issuer, clock) as client:
        key = issuer.add_key("RSA")
        token = bearer(issuer.token(realm.uuids[3], key))
        issuer.down = True
        response = client.get("/me/report", headers=token)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "30"
        assert client.get("/health").status_code == 200
        issuer.down = False
        clock.now += 31
        assert client.get("/me/report", headers=token).status_code == 200
        # Down again with the key cached, even once the set is old: cached keys still serve.
        issuer.down = True
        clock.now += 301
        assert client.get("/me/report", headers=token).status_code == 200
        assert client.get("/me/report", headers=token).status_code == 200


def test_an_unreachable_jwks_url_is_503(data: tuple[Config, Source], realm: Realm) -> None:
    with LocalIssuer() as issuer:
        key = issuer.add_key("RSA")
        closed = LocalIssuer()
        closed_url = closed.jwks_url
        closed.stop()  # nothing listens there now: connection refused
        settings = settings_for(issuer, oidc_jwks_url=closed_url, oidc_timeout=2)
        with TestClient(create_app(data[0], settings=settings)) as client:
            token = bearer(issuer.token(realm.uuids[3], key))
            assert client.get("/me/report", headers=token).status_code == 503
            assert _failures(client, "keys_unavailable") == 1


def test_the_jwks_url_override_skips_discovery() -> None:
    with LocalIssuer() as issuer:
        key = issuer.add_key("RSA")
        issuer.discovery = False  # the discovery document 404s
        discovered = Verifier.from_settings(settings_for(issuer)).keys
        discovered.refresh()
        assert discovered.get(key.kid) is None
        assert not discovered.reachable
        direct = Verifier.from_settings(settings_for(issuer, oidc_jwks_url=issuer.jwks_url)).keys
        direct.refresh()
        assert direct.get(key.kid) is not None
        assert direct.reachable


def test_tokens_never_reach_the_logs(
    client: TestClient, realm: Realm, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = [realm.token(3), realm.admin(), *(make(realm) for make, _ in BAD_TOKENS.values())]
    with caplog.at_level(logging.DEBUG):
        for token in tokens:
            client.post("/report", json={"user_id": 3}, headers=bearer(token))
            client.get("/me/report?start_ts=2026-01-01", headers=bearer(token))
    assert any(r.name == "reports.access" for r in caplog.records)
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for token in tokens:
        for part in {token, *(p for p in token.split(".") if len(p) > 16)}:
            assert part not in logged
    assert "Bearer" not in logged


def test_openapi_has_the_bearer_scheme_and_me_report(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["version"] == importlib.metadata.version("olapsync")
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/report"]["post"]["security"] == [{"bearer": []}]
    me = spec["paths"]["/me/report"]["get"]
    assert {p["name"] for p in me["parameters"]} == {"start_ts", "end_ts"}
    assert {"401", "403"} <= set(spec["paths"]["/report"]["post"]["responses"])
    assert "security" not in spec["paths"]["/health"]["get"]
