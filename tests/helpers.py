"""Checks shared by the integration tests."""

from __future__ import annotations

from olapsync.clickhouse import Target

EVENT_COLUMNS = (
    "id, user_id, prosthesis_type, muscle_group, signal_frequency, signal_duration, "
    "signal_amplitude, event_timestamp, saved_ts"
)

# A source row that validation accepts, in PostgreSQL terms.
VALID = """
    user_id IN (SELECT user_id FROM users)
    AND prosthesis_type IN ('arm', 'hand', 'leg') AND btrim(muscle_group) <> ''
    AND signal_frequency > 0 AND signal_duration >= 0
    AND signal_amplitude NOT IN ('NaN', 'Infinity', '-Infinity')
    AND isfinite(event_timestamp) AND event_timestamp >= '1970-01-01'
    AND event_timestamp <= '2106-02-07 06:28:15' AND saved_ts IS NOT NULL
"""


def checksums(target: Target, table: str = "telemetry_events") -> dict[str, tuple[int, int]]:
    """Per partition: (row count, order-independent checksum of every column)."""
    rows = target.rows(
        f"SELECT _partition_id, count(), groupBitXor(cityHash64({EVENT_COLUMNS})) "
        f"FROM {target.t(table)} GROUP BY 1 ORDER BY 1"
    )
    return {str(p): (int(n), int(h)) for p, n, h in rows}


def users_checksum(target: Target) -> tuple[int, int]:
    n, h = target.rows(
        f"SELECT count(), groupBitXor(cityHash64(user_id, name, email)) FROM {target.t('users')}"
    )[0]
    return int(n), int(h)
