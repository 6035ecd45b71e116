"""The cost of sign-in: `authenticate` of a valid token with its key cached, timed in-process
(`python -m benchmarks.auth_overhead`), and `SignIn`, the issuer and admin token that
`benchmarks.report_latency` measures the signed-in service with.

The issuer is the tests' (`tests/oidc.py`): RSA and EC keys generated with `cryptography`,
discovery and JWKS served over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.auth_overhead", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=2000, help="tokens per key (default 2,000)")
    args = parser.parse_args(argv)
    print(json.dumps(verify_in_process(args.rounds)))


if __name__ == "__main__":
    main()
