"""Sessions: tests, lint and typecheck by default; bench on request."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"


def _install(session: nox.Session, *groups: str) -> None:
    session.run_install(
        "uv",
        "sync",
        "--frozen",
        "--all-extras",
        *(f"--group={g}" for g in groups),
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        external=True,
    )


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests against embedded PostgreSQL and chDB."""
    _install(session)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff format --check and ruff check, over the whole project."""
    _install(session)
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the library, the service and the benchmarks."""
    _install(session)
    session.run("mypy", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Import throughput and report latency against the alternatives (bench-results/, and
    their tables into docs/benchmarks.md and README.md)."""
    _install(session, "bench")
    session.run("python", "-m", "benchmarks", *session.posargs)
