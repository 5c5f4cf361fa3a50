"""Action recognition output, read exactly: line by line, every value checked, every problem a record.

An output line is ``{"instance": {...the input line...}, "prediction": [{"id", "displayName",
"timeSegmentStart", "timeSegmentEnd", "confidence"}, ...]}``; an error line carries the instance (nested
under ``instance`` or flattened) and ``error: {code, message}``. Each non-blank line becomes exactly one
of: a served instance with its good moments; a ``job_error`` record (the job's error line, code and
video kept even when its segment is odd or its code missing); a ``malformed`` record (not JSON, not an
object, nested too deep, no ``prediction`` and no ``error``); an ``invalid_line`` record (the
instance's content or segment breaks the rules). Each moment breaking :data:`MOMENT_RULES` becomes an
``invalid_moment`` record naming its field, and the line's other moments stay.

This is the reference path; :mod:`.action_recognition_arrow` reads whole chunks faster with the same
rules and hands any chunk it cannot vouch for to :func:`decode_exactly`.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from airflow_provider_video_actions.families.base import TIME_TOLERANCE
from airflow_provider_video_actions.job import MAX_DURATION_SECONDS, VideoActionsValueError, brief, parse_seconds
from airflow_provider_video_actions.predictions import (
    INVALID_LINE,
    INVALID_MOMENT,
    JOB_ERROR,
    DecodedChunk,
    ErrorRecord,
    Instance,
    Moment,
    decode_lines,
    malformed,
)

#: Vertex AI's Duration as JSON (google.protobuf.Duration): ASCII digits, up to 9 decimals, an ``s`` suffix.
DURATION_RE = re.compile(r"[0-9]+(?:\.[0-9]{1,9})?s")
MOMENT_RULES = (
    "id and displayName non-empty strings (an integer id is read as text)",
    "timeSegmentStart and timeSegmentEnd Durations ('1.5s', ASCII digits), start <= end",
    f"inside the instance's segment, give or take {TIME_TOLERANCE}s",
    "confidence a number in [0, 1]",
)

_decode = msgspec.json.Decoder().decode
#: google.rpc.Status codes are int32; another number is not a code.
_INT32 = (-(2**31), 2**31 - 1)
#: Digits of the longest int32 code; a longer digit string is not read (``int`` refuses over 4300 digits).
_CODE_DIGITS = 10


def decode_exactly(chunk: bytes, file: str, first_line: int) -> DecodedChunk:
    """Decode a chunk of whole lines (numbered from ``first_line``) one line at a time."""
    return decode_lines(chunk, file, first_line, decode_line)


def decode_line(raw: bytes, file: str, number: int, decoded: DecodedChunk) -> None:
    """File one line as a served instance (with its good moments) and error records."""
    try:
        line = _decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
        decoded.errors.append(malformed(reason, file, number))
        return
    kept_errors = len(decoded.errors)
    try:
        _file_line(line, file, number, decoded)
    except (ValueError, RecursionError) as exc:  # a safety net: no line's content may abort the parse
        del decoded.errors[kept_errors:]
        reason = "nested too deep" if isinstance(exc, RecursionError) else f"unreadable ({type(exc).__name__})"
        decoded.errors.append(malformed(reason, file, number))


def _file_line(line: Any, file: str, number: int, decoded: DecodedChunk) -> None:
    """File a decoded line as a served instance, a job error or a malformed line."""
    if not isinstance(line, dict):
        decoded.errors.append(malformed(f"a JSON {type(line).__name__}, not an object", file, number))
        return
    instance = line["instance"] if isinstance(line.get("instance"), dict) else line
    if line.get("error") is not None:
        decoded.errors.append(_job_error(instance, line["error"], file, number))
    elif not isinstance(line.get("prediction"), list):
        decoded.errors.append(malformed("neither a 'prediction' list nor an 'error'", file, number))
    else:
        _served(instance, line["prediction"], file, number, decoded)


def _job_error(instance: dict[str, Any], error: Any, file: str, number: int) -> ErrorRecord:
    """The record of an error line (non-null ``error``): its code, message, video and segment, those readable."""
    status = error if isinstance(error, dict) else {"message": error}
    code = status.get("code")
    if isinstance(code, str) and code.isascii() and code.isdigit() and len(code) <= _CODE_DIGITS:
        code = int(code)
    message = status.get("message")
    content = instance.get("content")
    return ErrorRecord(
        content if isinstance(content, str) else None,
        _lenient_seconds(instance.get("timeSegmentStart"), open_end=False),
        _lenient_seconds(instance.get("timeSegmentEnd"), open_end=True),
        code if isinstance(code, int) and not isinstance(code, bool) and _INT32[0] <= code <= _INT32[1] else None,
        message if isinstance(message, str) else "" if message is None else msgspec.json.encode(message).decode(),
        file,
        number,
        JOB_ERROR,
    )


def _lenient_seconds(value: Any, *, open_end: bool) -> float | None:
    """A segment bound in seconds, or None when it is missing, open or unreadable (error lines only)."""
    try:
        return parse_seconds(value, "segment", open_end=open_end)
    except VideoActionsValueError:
        return None


def _served(instance: dict[str, Any], moments: list[Any], file: str, number: int, decoded: DecodedChunk) -> None:
    """A prediction line: its instance (or one ``invalid`` record for the line) and its checked moments."""
    content = instance.get("content")
    try:
        if not isinstance(content, str) or not content:
            raise VideoActionsValueError(f"instance.content must be the video's URI, got {brief(content)}")
        start = parse_seconds(instance.get("timeSegmentStart"), "instance.timeSegmentStart") or 0.0
        end = parse_seconds(instance.get("timeSegmentEnd"), "instance.timeSegmentEnd", open_end=True)
        if end is not None and end < start:
            raise VideoActionsValueError(f"instance segment ends ({end}s) before it starts ({start}s)")
    except VideoActionsValueError as exc:
        video = content if isinstance(content, str) else None
        decoded.errors.append(
            ErrorRecord(video, None, None, None, f"invalid output line: {exc}", file, number, INVALID_LINE)
        )
        return
    kept = []
    for index, moment in enumerate(moments):
        try:
            kept.append(check_moment(moment, start, end))
        except VideoActionsValueError as exc:
            message = f"invalid moment: prediction[{index}].{exc}"
            decoded.errors.append(ErrorRecord(content, start, end, None, message, file, number, INVALID_MOMENT))
    decoded.instances.append(Instance(content, start, end))
    decoded.moments.append(kept)


def check_moment(moment: Any, start: float, end: float | None) -> Moment:
    """A moment checked against :data:`MOMENT_RULES`, or raise naming the field (``field: why``)."""
    if not isinstance(moment, dict):
        raise VideoActionsValueError(f"(the moment): must be an object, got {brief(moment)}")
    label_id = moment.get("id")
    if isinstance(label_id, int) and not isinstance(label_id, bool):
        label_id = str(label_id)
    for field, value in (("id", label_id), ("displayName", moment.get("displayName"))):
        if not isinstance(value, str) or not value:
            raise VideoActionsValueError(f"{field}: must be a non-empty string, got {brief(value)}")
    begin = duration_seconds(moment.get("timeSegmentStart"), "timeSegmentStart")
    finish = duration_seconds(moment.get("timeSegmentEnd"), "timeSegmentEnd")
    confidence = moment.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 <= confidence <= 1.0:
        raise VideoActionsValueError(f"confidence: must be a number in [0, 1], got {brief(confidence)}")
    if finish < begin:
        raise VideoActionsValueError(f"timeSegmentEnd: {finish}s is before timeSegmentStart {begin}s")
    upper = math.inf if end is None else end + TIME_TOLERANCE
    if begin < start - TIME_TOLERANCE or finish > upper:
        bounds = f"{start}s to {'the end' if end is None else f'{end}s'}"
        raise VideoActionsValueError(
            f"timeSegmentStart: the moment {begin}s to {finish}s is outside the instance's segment {bounds}"
        )
    return Moment(label_id, moment["displayName"], begin, finish, float(confidence))


def duration_seconds(value: Any, field: str) -> float:
    """Seconds of a Vertex AI Duration string (``"1.5s"``), or raise naming the field."""
    if not isinstance(value, str) or not DURATION_RE.fullmatch(value):
        raise VideoActionsValueError(
            f"{field}: must be a Duration like '1.5s' (ASCII digits, up to 9 decimals), got {brief(value)}"
        )
    seconds = float(value[:-1])
    if seconds > MAX_DURATION_SECONDS:
        raise VideoActionsValueError(
            f"{field}: {brief(value)} is beyond the longest Duration ({MAX_DURATION_SECONDS}s)"
        )
    return seconds
