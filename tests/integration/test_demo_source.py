"""The embedded PostgreSQL and the generated data that the demo, the tests and the benchmarks
read."""

from __future__ import annotations

from pathlib import Path

import pytest

from olapsync.pgembed import EmbeddedPostgres
from tests.support import Source

pytestmark = pytest.mark.integration


def test_starts_in_a_folder_whose_path_is_too_long_for_a_unix_socket(tmp_path: Path) -> None:
    # A Unix socket's path may hold 107 bytes; `--data-dir` may be deeper than that.
    folder = tmp_path / ("deep-" * 20) / "postgres"
    assert len(str(folder / ".s.PGSQL.65535")) > 107
    with EmbeddedPostgres(folder) as server:
        assert server.psql("SELECT 6 * 7").strip() == "42"


def test_generated_tables_are_vacuumed_so_autovacuum_does_not_come_back(source: Source) -> None:
    # Else autovacuum would vacuum every generated row a minute later, during whatever runs.
    stats = source.execute(
        "SELECT relname, vacuum_count, n_ins_since_vacuum FROM pg_stat_user_tables "
        "WHERE relname IN ('users', 'telemetry_events') ORDER BY relname"
    )
    assert [(name, vacuums >= 1, pending) for name, vacuums, pending in stats] == [
        ("telemetry_events", True, 0),
        ("users", True, 0),
    ]
