"""The cost of sign-in: `authenticate` of a valid token with its key cached, timed in-process
(`python -m benchmarks.auth_overhead`), and `SignIn`, the issuer and admin token that
`benchmarks.report_latency` measures the signed-in service with; with `--folder`, the open and
the signed-in app timed request by request in one process (pairs in alternating order), which
cancels this shared machine's drift that separate runs of the two cannot.

The issuer is the tests' (`tests/oidc.py`): RSA and EC keys generated with `cryptography`,
discovery and JWKS served over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from reports.auth import Verifier
from reports.settings import ServiceSettings
from tests.oidc import ADMIN_ROLE, AUDIENCE, KeyKind, LocalIssuer


class SignIn:
    """A real issuer on 127.0.0.1 and an admin's token from it: an admin's report runs the
    same query as the open service's, so the difference is the token's verification."""

    def __init__(self) -> None:
        self.issuer = LocalIssuer().start()
        key = self.issuer.add_key("RSA")
        self.token = self.issuer.token(
            "benchmark-admin", key, realm_roles=(ADMIN_ROLE,), lifetime=24 * 3600
        )
        self.env = {"OLAPSYNC_OIDC_ISSUER": self.issuer.issuer, "OLAPSYNC_OIDC_AUDIENCE": AUDIENCE}
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def close(self) -> None:
        self.issuer.stop()


def verify_in_process(rounds: int = 2000) -> dict[str, float]:
    """Microseconds per `Verifier.authenticate` with the key cached (the per-request cost of
    sign-in, without HTTP), p50 and p99, for an RSA and an EC key: `first` for a token the
    verifier has not seen (signature and claims checked by PyJWT), `repeat` for the same
    token again (a client's next request until its token expires)."""
    issuer = LocalIssuer().start()
    try:
        settings = ServiceSettings(oidc_issuer=issuer.issuer, oidc_audience=AUDIENCE)
        verifier = Verifier.from_settings(settings)
        out: dict[str, float] = {}
        kinds: tuple[KeyKind, ...] = ("RSA", "P-256")
        keys = [issuer.add_key(kind) for kind in kinds]  # published before the first fetch
        for kind, key in zip(kinds, keys, strict=True):
            # Distinct tokens (a distinct sub each), signed before the clock starts.
            headers = [
                f"Bearer {issuer.token(f'user-{i}', key, lifetime=3600)}" for i in range(rounds)
            ]

            async def timed(headers: list[str] = headers) -> dict[str, list[float]]:
                await verifier.authenticate(headers[0])  # fetches the keys once
                took: dict[str, list[float]] = {"first": [], "repeat": []}
                for header in headers[1:]:
                    for case in ("first", "repeat"):
                        started = time.perf_counter()
                        await verifier.authenticate(header)
                        took[case].append(time.perf_counter() - started)
                return took

            name = "rsa" if kind == "RSA" else "ec"
            for case, took in asyncio.run(timed()).items():
                took.sort()
                out[f"{name}_{case}_p50_us"] = took[len(took) // 2] * 1e6
                out[f"{name}_{case}_p99_us"] = took[int(len(took) * 0.99)] * 1e6
        return out
    finally:
        issuer.stop()


def auth_timing(metrics: str) -> dict[str, float]:
    """The service's own timing of token checks (its auth histogram): mean and p50 in ms,
    the p50 interpolated within its bucket as Prometheus's histogram_quantile does."""
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for family in text_string_to_metric_families(metrics):
        if family.name != "olapsync_reports_auth_duration_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
    buckets.sort()
    low, below = 0.0, 0.0
    p50 = float("nan")
    for bound, cumulative in buckets:
        if cumulative >= count / 2:
            share = (count / 2 - below) / max(cumulative - below, 1)
            p50 = low + (bound - low) * share
            break
        low, below = bound, cumulative
    return {"requests": count, "mean_ms": total / count * 1000, "p50_ms": p50 * 1000}


def interleaved(folder: Path, pairs: int = 600, users: int = 1000) -> dict[str, float]:
    """POST /report on the open app and the signed-in app (an admin's token) in one process,
    request by request in alternating order, on an imported chDB `folder`: the p50 of each
    and of the paired differences, in ms. Drift of the machine hits both sides of a pair."""
    from starlette.testclient import TestClient

    from olapsync.config import Config
    from reports.app import create_app

    sign_in = SignIn()
    config = Config(clickhouse_url=f"chdb://{folder}")
    body = {"start_ts": "2025-11-01T00:00:00", "end_ts": "2026-02-28T23:59:59"}
    settings = ServiceSettings(oidc_issuer=sign_in.issuer.issuer, oidc_audience=AUDIENCE)
    took: dict[bool, list[float]] = {False: [], True: []}
    try:
        with (
            TestClient(create_app(config)) as open_app,
            TestClient(create_app(config, settings=settings)) as signed,
        ):
            signed.post("/report", json={**body, "user_id": 1}, headers=sign_in.headers)
            for i in range(pairs):
                sides = [(False, open_app, {}), (True, signed, sign_in.headers)]
                for is_signed, client, headers in sides if i % 2 else sides[::-1]:
                    started = time.perf_counter()
                    response = client.post(
                        "/report", json={**body, "user_id": 1 + i % users}, headers=headers
                    )
                    took[is_signed].append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
    finally:
        sign_in.close()
    return {
        "open_p50_ms": statistics.median(took[False]) * 1000,
        "signed_p50_ms": statistics.median(took[True]) * 1000,
        "paired_diff_p50_ms": statistics.median(
            b - a for a, b in zip(took[False], took[True], strict=True)
        )
        * 1000,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.auth_overhead", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=2000, help="tokens per key (default 2,000)")
    parser.add_argument(
        "--folder",
        type=Path,
        help="also time the open and the signed-in app request by request on this imported "
        "chDB folder (e.g. bench-results/data/ch-report-1000000)",
    )
    parser.add_argument("--pairs", type=int, default=600, help="with --folder (default 600)")
    args = parser.parse_args(argv)
    out = verify_in_process(args.rounds)
    if args.folder is not None:
        out.update(interleaved(args.folder.resolve(), args.pairs))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
