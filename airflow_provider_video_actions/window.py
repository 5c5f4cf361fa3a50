"""Which videos under a prefix a scheduled run takes: those GCS created inside its window.

A window is half-open, ``[start, end)``: back-to-back windows (one run's end is the next run's
start) take every object exactly once, an object created at the boundary instant included (it
belongs to the later window). Times are GCS's ``timeCreated``, set when an upload completes.
``videos_created_in`` is a ``(start, end)`` pair of aware datetimes or ISO 8601 strings (each may
be a template), or :data:`DATA_INTERVAL`, the run's own data interval read from the task context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_video_actions.errors import VideoActionsValueError

#: ``videos_created_in=DATA_INTERVAL``: the run's data interval, ``[data_interval_start, data_interval_end)``.
DATA_INTERVAL = "data_interval"
PARAM = "videos_created_in"
#: What a run without a data interval (Airflow 3, triggered without a logical date) can do about it.
NO_INTERVAL_FIX = (
    "This run has no data interval (Airflow 3 gives none to a run triggered without a logical date), so it "
    "selects no video. Trigger it with a logical date (the UI's logical date field, `logical_date` in the REST API, or "
    "`airflow dags trigger --logical-date`) to process the interval that date implies, or clear the "
    "scheduled run of that interval to process it again."
)
#: Why a scheduled run can have a zero-length data interval, and the fix.
ZERO_LENGTH_FIX = (
    "On Airflow 3 a cron string or timedelta `schedule` gives each run a zero-length data interval unless "
    "[scheduler] create_cron_data_intervals / create_delta_data_intervals is True: schedule with "
    "CronTriggerTimetable(cron, timezone=..., interval=timedelta(hours=1)) or CronDataIntervalTimetable."
)


class NoDataIntervalError(VideoActionsValueError):
    """``videos_created_in="data_interval"`` on a run that has none: the operator skips the task, saying why."""


@dataclass(frozen=True)
class CreationWindow:
    """The half-open span ``[start, end)`` of creation times a run selects."""

    start: datetime
    end: datetime

    def __contains__(self, created: datetime) -> bool:
        return self.start <= created < self.end

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def _instant(value: Any, which: str) -> datetime:
    """The UTC instant of an aware datetime or an ISO 8601 string; naive or unreadable values refused.

    In UTC because Python compares two datetimes of one zone by wall time: across a daylight-saving
    fall-back that orders the repeated hour wrongly.
    """
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "None"):
            raise VideoActionsValueError(f"{PARAM} {which} rendered to {value!r}. {NO_INTERVAL_FIX}")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise VideoActionsValueError(
                f"{PARAM} {which} {text!r} is not an ISO 8601 time; give e.g. '2026-12-01T10:00:00+00:00' "
                "or '{{ data_interval_start }}'."
            ) from None
    if not isinstance(value, datetime):
        raise VideoActionsValueError(f"{PARAM} {which} must be a datetime or an ISO 8601 string, got {value!r}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise VideoActionsValueError(
            f"{PARAM} {which} {value.isoformat()} has no time zone: give an aware time, e.g. with '+00:00', "
            "so it compares with GCS's UTC creation times."
        )
    return value.astimezone(timezone.utc)


def check_window_value(value: Any) -> None:
    """The parameter's shape: :data:`DATA_INTERVAL` or a pair (its members may still be templates)."""
    if value == DATA_INTERVAL:
        return
    if isinstance(value, str) or not isinstance(value, (tuple, list)) or len(value) != 2:
        raise VideoActionsValueError(
            f"{PARAM} must be {DATA_INTERVAL!r} or a (start, end) pair of aware datetimes or ISO 8601 strings, "
            f"e.g. ('{{{{ data_interval_start }}}}', '{{{{ data_interval_end }}}}'); got {value!r}."
        )


def creation_window(value: Any, context: Mapping[str, Any] | None = None) -> CreationWindow:
    """The window a rendered ``videos_created_in`` names; :data:`DATA_INTERVAL` reads ``context``."""
    check_window_value(value)
    if value == DATA_INTERVAL:
        context = context or {}
        value = (context.get("data_interval_start"), context.get("data_interval_end"))
        if None in value:
            raise NoDataIntervalError(f"{PARAM}={DATA_INTERVAL!r}: {NO_INTERVAL_FIX}")
    window = CreationWindow(_instant(value[0], "start"), _instant(value[1], "end"))
    if window.start >= window.end:
        why = ZERO_LENGTH_FIX if window.start == window.end else "Swap the bounds."
        raise VideoActionsValueError(
            f"{PARAM} {window} is empty: its start must be before its end, or the run skips and no video is "
            f"predicted. {why}"
        )
    return window
