"""Checks of operator parameters shared by the submit, parse and sensor operators.

Each check returns the value in its normal form or raises :class:`VideoActionsValueError` naming
the parameter, what was wrong and how to fix it. Literal values are checked when the operator is
built (DAG parse time); templated ones after rendering, before anything is written or created.
"""

from __future__ import annotations

import contextlib
import math
from datetime import timedelta
from typing import Any

from airflow_provider_video_actions.errors import VideoActionsValueError

#: The shortest poll interval the operators accept by default (``min_poll_interval``): one list call
#: per second per region is a tenth of Vertex AI's read quota (600 per minute per project and region).
MIN_POLL_INTERVAL = 1.0
#: The default ``timeout`` of the submit operator: long enough for a queued Gemini batch job (up to
#: 72 h in the queue), short enough that a forgotten wait ends.
DEFAULT_TIMEOUT = timedelta(hours=72)
#: The largest value of the job's int32 fields (replica and accelerator counts).
INT32_MAX = 2**31 - 1


def is_template(value: Any) -> bool:
    """True for values that are only known after rendering (Jinja strings, XComArgs)."""
    return (isinstance(value, str) and "{{" in value) or hasattr(value, "resolve")


def _number(value: Any) -> Any:
    """A rendered template's text as a number, when it is one; other values unchanged."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return value


def check_fraction(value: Any, param: str) -> float:
    """A number in [0, 1], or raise naming the parameter."""
    value = _number(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise VideoActionsValueError(f"{param} must be a number between 0 and 1, got {value!r}.")
    return float(value)


def check_positive(value: Any, param: str, *, integer: bool = False) -> Any:
    """A finite positive number (or integer; seconds may be a timedelta), or raise naming the parameter."""
    if isinstance(value, timedelta) and not integer:
        value = value.total_seconds()
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not _finite(value) or value <= 0:
        kind = "a positive integer" if integer else "a finite positive number of seconds"
        raise VideoActionsValueError(f"{param} must be {kind}, got {value!r:.100}.")
    return value


def _finite(value: int | float) -> bool:
    """Finite, and within a float's range (an int of 400 digits is neither a useful count nor seconds)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_int32(value: Any, param: str) -> Any:
    """None, or a count Vertex AI's int32 fields can hold."""
    if value is not None and value > INT32_MAX:
        raise VideoActionsValueError(f"{param} must be at most {INT32_MAX} (an int32 field of the job), got {value}.")
    return value


def check_name_text(value: Any, param: str) -> str | None:
    """None, or a resource name, type or id: a non-empty string without spaces or control characters."""
    if value is not None and (not isinstance(value, str) or not value or not value.isprintable() or " " in value):
        raise VideoActionsValueError(
            f"{param} must be a name without spaces or control characters (or None), got {value!r:.100}."
        )
    return value


def check_count(value: Any, param: str) -> int:
    """A whole number >= 0 (an int, or a rendered template's digits), or raise naming the parameter."""
    if isinstance(value, str) and value.strip().isdecimal() and value.strip().isascii():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise VideoActionsValueError(f"{param} must be a whole number of 0 or more, got {value!r}.")
    return value


def check_poll_interval(value: Any, param: str, floor: float) -> float:
    """Seconds between polls: finite and at least ``floor`` (Vertex AI's read quota is shared by the project)."""
    seconds = float(check_positive(value, param))
    if seconds < floor:
        raise VideoActionsValueError(
            f"{param}={value!r} is below the floor of {floor} s: every poll is a call against Vertex AI's read "
            f"quota (600 per minute per project and region). Use {floor} or more (lower min_poll_interval only "
            "against the local emulator)."
        )
    return seconds


def check_timeout(value: Any, param: str = "timeout") -> float:
    """A finite wait in seconds (number or timedelta); None is refused, since every wait must end."""
    if value is None:
        raise VideoActionsValueError(
            f"{param} must be finite (seconds or a timedelta): a wait without a deadline can hang forever. "
            f"The default is {DEFAULT_TIMEOUT}; give a larger value for longer jobs."
        )
    return float(check_positive(value, param))
