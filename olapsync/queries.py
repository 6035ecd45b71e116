"""Reports over the imported data: the per-user report behind `POST /report`, and the seed's
eight example queries, each returning a Polars DataFrame. Every value is a bound parameter.

    >>> from olapsync.queries import Reports
    >>> with Reports() as reports:  # doctest: +SKIP
    ...     print(reports.user_report(512).to_dict())
    ...     print(reports.top_users(5))
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.errors import TargetError
from olapsync.errors import UnknownUserError as UnknownUserError  # its former home
from olapsync.window import DATETIME_MAX, TimeBound, report_bounds, to_utc

EVENTS = "telemetry_events"
USERS = "users"
# ClickHouse's UNKNOWN_DATABASE (src/Common/ErrorCodes.cpp).
UNKNOWN_DATABASE = 81


@dataclass(frozen=True)
class ProsthesisStats:
    prosthesis_type: str
    events_count: int
    total_duration: int
    avg_amplitude: float
    avg_frequency: float


@dataclass(frozen=True)
class UserReport:
    """The seed's report: one user's events in a window, per prosthesis type."""

    user_name: str
    user_email: str
    total_events: int
    total_duration: int
    prosthesis_stats: list[ProsthesisStats] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def window_bounds(start: datetime | None, end: datetime | None) -> tuple[int, int]:
    """Inclusive `[start, end]` as whole epoch seconds for a `DateTime` column.

    Both bounds are truncated to the whole second, the rule every window of olapsync follows
    (see `olapsync.window.Window`): a stored second is in the report exactly when it lies
    between the truncated bounds. Bounds beyond the DateTime range select everything on that
    side, and a window wholly outside it selects nothing (`(1, 0)`).
    """
    top = int(DATETIME_MAX.timestamp())
    lo = 0 if start is None else math.floor(to_utc(start).timestamp())
    hi = top if end is None else math.floor(to_utc(end).timestamp())
    if hi < 0 or lo > top:
        return 1, 0
    return max(lo, 0), min(hi, top)


class Reports:
    """Report queries on one ClickHouse target. Reports only read: they create neither the
    database nor the chDB folder, so a read-only ClickHouse user can run them.

    Args:
        config: where the data is; defaults to `Config.from_env()`.
        target: an open `Target` to use instead (not closed by `close()`).

    Raises:
        TargetError: ClickHouse cannot be opened, or the database or chDB folder does not
            exist yet ("... has no database 'olap' yet: run olapsync import first").
    """

    def __init__(self, config: Config | None = None, *, target: Target | None = None):
        self._own = target is None
        if target is None:
            target = Target(config or Config.from_env(), create_database=False)
            try:
                target.require_database()
            except BaseException:
                target.close()
                raise
        self.target = target

    def close(self) -> None:
        if self._own:
            self.target.close()

    def __enter__(self) -> Reports:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _t(self, table: str) -> str:
        return self.target.t(table)

    def frame(self, sql: str, parameters: dict[str, Any] | None = None) -> pl.DataFrame:
        """Run `sql` and return a DataFrame; DateTime columns become UTC datetimes."""
        with self._reading():
            result = self.target.arrow(sql, parameters, what="run a report query")
        frame = pl.from_arrow(result)
        assert isinstance(frame, pl.DataFrame)
        # chDB hands DateTime over as UInt32 seconds, a server as timestamps.
        return frame.with_columns(
            pl.from_epoch(pl.col(name).cast(pl.Int64), time_unit="s").dt.replace_time_zone("UTC")
            for name in frame.columns
            if name.endswith(("_timestamp", "_ts", "month")) and frame.schema[name] == pl.UInt32
        )

    # -- the report behind POST /report ---------------------------------------------------
    def user_report(
        self,
        user_id: int,
        start_ts: TimeBound | None = None,
        end_ts: TimeBound | None = None,
        *,
        owner: str | None = None,
    ) -> UserReport:
        """One user's events with `start_ts <= event_timestamp <= end_ts`, per prosthesis.

        One round trip: the user row and the aggregated stats come in one query.

        Args:
            start_ts, end_ts: inclusive bounds, each optional: a datetime (naive = UTC), a
                date (midnight UTC) or text as the CLI takes it ("2026-01-01 00:00:00",
                ISO-8601 with `Z` or an offset); `olapsync.window.as_utc`.
            owner: when given, answer only if the user's `user_uuid` equals it; the check is
                part of the same query, so no other user's row leaves ClickHouse.

        Raises:
            ConfigError: a bound is not a time, or `start_ts` is after `end_ts` (as the
                service's 422), before any query.
            UnknownUserError: no such user (or, with `owner`, not that owner's).
        """
        where = "user_id = {uid:Int32}"
        parameters: dict[str, object] = {"uid": user_id}
        if owner is not None:
            where += " AND user_uuid = {owner:String}"
            parameters["owner"] = owner
        return self._report(
            where,
            "user_id = {uid:Int32}",
            parameters,
            start_ts,
            end_ts,
            missing=f"User {user_id} is not in the users table.",
        )

    def user_report_by_uuid(
        self, user_uuid: str, start_ts: TimeBound | None = None, end_ts: TimeBound | None = None
    ) -> UserReport:
        """`user_report` for the user whose `user_uuid` (a Keycloak user id) is given.

        Raises:
            ConfigError: as for `user_report`.
            UnknownUserError: no user has that `user_uuid`.
        """
        return self._report(
            "user_uuid = {owner:String}",
            f"user_id IN (SELECT user_id FROM {self._t(USERS)} WHERE user_uuid = {{owner:String}})",
            {"owner": user_uuid},
            start_ts,
            end_ts,
            missing="No user has this user_uuid.",
        )

    def _report(
        self,
        user_where: str,
        event_where: str,
        parameters: dict[str, object],
        start_ts: TimeBound | None,
        end_ts: TimeBound | None,
        *,
        missing: str,
    ) -> UserReport:
        lo, hi = window_bounds(*report_bounds(start_ts, end_ts))
        with self._reading():
            rows = self._user_rows(user_where, event_where, {**parameters, "lo": lo, "hi": hi})
        if not rows:
            raise UnknownUserError(missing)
        name, email, stats = rows[0]
        items = [
            ProsthesisStats(str(p), int(n), int(d), round(float(a), 2), round(float(f), 2))
            for p, n, d, a, f in stats
        ]
        return UserReport(
            user_name=str(name),
            user_email=str(email),
            total_events=sum(s.events_count for s in items),
            total_duration=sum(s.total_duration for s in items),
            prosthesis_stats=items,
        )

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        # A target handed in (the service's pool) is not checked up front: its queries say
        # what `Target.require_database` says when the database is missing.
        try:
            yield
        except TargetError as exc:
            if exc.code != UNKNOWN_DATABASE:
                raise
            try:
                self.target.require_database()
            except TargetError as missing:
                raise missing from exc
            raise

    def _user_rows(self, user_where: str, event_where: str, parameters: dict[str, object]) -> Any:
        return self.target.rows(
            f"""
            SELECT name, email, (
                SELECT groupArray((prosthesis_type, events_count, total_duration,
                                   avg_amplitude, avg_frequency))
                FROM (
                    SELECT toString(prosthesis_type) AS prosthesis_type,
                           count() AS events_count,
                           sum(toInt64(signal_duration)) AS total_duration,
                           avg(signal_amplitude) AS avg_amplitude,
                           avg(signal_frequency) AS avg_frequency
                    FROM {self._t(EVENTS)}
                    WHERE {event_where}
                      AND event_timestamp >= toDateTime({{lo:UInt32}}, 'UTC')
                      AND event_timestamp <= toDateTime({{hi:UInt32}}, 'UTC')
                    GROUP BY prosthesis_type
                    ORDER BY prosthesis_type
                )
            ) AS stats
            FROM {self._t(USERS)}
            WHERE {user_where}
            """,
            parameters,
            what="build the user report",
        )

    # -- the seed's eight examples --------------------------------------------------------
    def total_users(self) -> pl.DataFrame:
        """1. How many users there are."""
        return self.frame(f"SELECT count() AS total_users FROM {self._t(USERS)}")

    def total_events(self) -> pl.DataFrame:
        """2. How many events there are."""
        return self.frame(f"SELECT count() AS total_events FROM {self._t(EVENTS)}")

    def user_events(self, user_id: int, limit: int = 10) -> pl.DataFrame:
        """3. The latest events of one user."""
        return self.frame(
            f"SELECT id, event_timestamp, toString(prosthesis_type) AS prosthesis_type, "
            f"toString(muscle_group) AS muscle_group, signal_frequency, signal_duration, "
            f"signal_amplitude FROM {self._t(EVENTS)} WHERE user_id = {{uid:Int32}} "
            "ORDER BY event_timestamp DESC, id DESC LIMIT {n:UInt32}",
            {"uid": user_id, "n": limit},
        )

    def events_by_month(self) -> pl.DataFrame:
        """4. Events per month."""
        return self.frame(
            f"SELECT toStartOfMonth(event_timestamp) AS month, count() AS events "
            f"FROM {self._t(EVENTS)} GROUP BY month ORDER BY month"
        ).with_columns(pl.col("month").cast(pl.Date))

    def prosthesis_averages(self) -> pl.DataFrame:
        """5. Average amplitude and frequency per prosthesis type."""
        return self.frame(
            f"SELECT toString(prosthesis_type) AS prosthesis_type, count() AS events, "
            f"round(avg(signal_amplitude), 2) AS avg_amplitude, "
            f"round(avg(signal_frequency), 2) AS avg_frequency "
            f"FROM {self._t(EVENTS)} GROUP BY prosthesis_type ORDER BY prosthesis_type"
        )

    def user_detail(self, user_id: int) -> pl.DataFrame:
        """6. A detailed report for one user: per prosthesis type and muscle group."""
        return self.frame(
            f"SELECT toString(prosthesis_type) AS prosthesis_type, "
            f"toString(muscle_group) AS muscle_group, count() AS events, "
            f"sum(toInt64(signal_duration)) AS total_duration, "
            f"round(avg(signal_amplitude), 2) AS avg_amplitude, "
            f"min(event_timestamp) AS first_event_timestamp, "
            f"max(event_timestamp) AS last_event_timestamp "
            f"FROM {self._t(EVENTS)} WHERE user_id = {{uid:Int32}} "
            "GROUP BY prosthesis_type, muscle_group ORDER BY prosthesis_type, muscle_group",
            {"uid": user_id},
        )

    def top_users(self, n: int = 10) -> pl.DataFrame:
        """7. The N most active users."""
        return self.frame(
            f"SELECT user_id, joinGet({self._join_name()}, 'name', user_id) AS name, "
            f"count() AS events, sum(toInt64(signal_duration)) AS total_duration "
            f"FROM {self._t(EVENTS)} GROUP BY user_id "
            "ORDER BY events DESC, user_id LIMIT {n:UInt32}",
            {"n": n},
        )

    def muscle_groups(self) -> pl.DataFrame:
        """8. How events are spread over muscle groups."""
        return self.frame(
            f"SELECT toString(muscle_group) AS muscle_group, count() AS events, "
            f"round(100 * events / sum(events) OVER (), 2) AS share_pct "
            f"FROM {self._t(EVENTS)} GROUP BY muscle_group ORDER BY events DESC, muscle_group"
        )

    def _join_name(self) -> str:
        # joinGet takes the Join table's name as a string literal; the database name is a
        # checked identifier (Config), so quoting it here is safe.
        return f"'{self.target.database}.{USERS}'"

    def examples(self, user_id: int = 1, top: int = 10) -> dict[str, pl.DataFrame]:
        """All eight examples, by title."""
        return {
            "1. Total users": self.total_users(),
            "2. Total events": self.total_events(),
            f"3. Latest events of user {user_id}": self.user_events(user_id),
            "4. Events by month": self.events_by_month(),
            "5. Average amplitude and frequency by prosthesis type": self.prosthesis_averages(),
            f"6. Detailed report for user {user_id}": self.user_detail(user_id),
            f"7. Top {top} most active users": self.top_users(top),
            "8. Events by muscle group": self.muscle_groups(),
        }


def user_report(
    user_id: int,
    start_ts: TimeBound | None = None,
    end_ts: TimeBound | None = None,
    *,
    config: Config | None = None,
) -> UserReport:
    """The seed's per-user report, from a notebook: `Reports.user_report` on `config`.

    Raises:
        ConfigError: a bound is not a time, or `start_ts` is after `end_ts`, before
            ClickHouse is opened.
        TargetError, UnknownUserError: see `Reports`.

    Example:
        >>> from olapsync import user_report
        >>> user_report(512, datetime(2026, 1, 1), datetime(2026, 3, 1, 23, 59, 59))  # doctest: +SKIP
        >>> user_report(512, "2026-01-01", "2026-03-01 23:59:59")  # the same  # doctest: +SKIP
    """
    start, end = report_bounds(start_ts, end_ts)
    with Reports(config) as reports:
        return reports.user_report(user_id, start, end)
