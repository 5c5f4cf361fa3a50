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
from typing import Annotated, Any

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

#: A non-empty string (a moment's label id and name, an instance's content).
NonEmptyText = Annotated[str, msgspec.Meta(min_length=1)]
#: A Duration string (``DURATION_RE``, anchored: msgspec searches, and ``$`` would pass a trailing newline).
Duration = Annotated[str, msgspec.Meta(pattern=rf"^{DURATION_RE.pattern}\Z")]
#: A confidence: a number (not a bool) in [0, 1].
Confidence = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class TypedMoment(msgspec.Struct, rename="camel"):
    """A moment as Vertex AI writes it, each field's rule of :data:`MOMENT_RULES` as its type (an integer id is
    read as text); the rules across fields (start <= end, inside the segment) are :func:`check_moment`'s."""

    id: NonEmptyText | int
    display_name: NonEmptyText
    time_segment_start: Duration
    time_segment_end: Duration
    confidence: Confidence


class TypedInstance(msgspec.Struct, rename="camel"):
    """A served line's instance: its content a non-empty string, its segment bounds as written (read by
    :func:`~airflow_provider_video_actions.job.parse_seconds`)."""

    content: NonEmptyText
    time_segment_start: Any = None
    time_segment_end: Any = None


class TypedLine(msgspec.Struct):
    """A served line whose every field keeps its type's rule, read in one typed decode. Any other line (an error
    line, a flattened instance, a field breaking its rule) is read as decoded, field by field, to name what broke."""

    instance: TypedInstance
    prediction: list[TypedMoment]
    error: None = None


_decode_typed = msgspec.json.Decoder(TypedLine).decode

#: The moment's fields (as written) in the order they are checked, each with its type and what breaking it is told.
MOMENT_FIELDS: tuple[tuple[str, Any, str], ...] = (
    ("id", NonEmptyText | int, "must be a non-empty string"),
    ("displayName", NonEmptyText, "must be a non-empty string"),
    ("timeSegmentStart", Duration, "must be a Duration like '1.5s' (ASCII digits, up to 9 decimals)"),
    ("timeSegmentEnd", Duration, "must be a Duration like '1.5s' (ASCII digits, up to 9 decimals)"),
    ("confidence", Confidence, "must be a number in [0, 1]"),
)
#: A JSON object as decoded.
JsonObject = dict[str, Any]
#: google.rpc.Status codes are int32; another number is not a code.
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
#: A code written as ASCII digits, at most the longest int32's 10 (``int`` refuses over 4300 digits).
CodeDigits = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,10}\Z")]


def decode_exactly(chunk: bytes, file: str, first_line: int) -> DecodedChunk:
    """Decode a chunk of whole lines (numbered from ``first_line``) one line at a time."""
    return decode_lines(chunk, file, first_line, decode_line)


def decode_line(raw: bytes, file: str, number: int, decoded: DecodedChunk) -> None:
    """File one line as a served instance (with its good moments) and error records."""
    try:
        typed = _decode_typed(raw)
    except (msgspec.DecodeError, RecursionError):  # not a TypedLine: read as decoded, below
        pass
    else:
        instance = typed.instance
        segment = {"timeSegmentStart": instance.time_segment_start, "timeSegmentEnd": instance.time_segment_end}
        _served({"content": instance.content, **segment}, typed.prediction, file, number, decoded)
        return
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


def _typed(value: Any, value_type: Any) -> Any:
    """The decoded value as ``value_type`` (msgspec's strict rules and the type's constraints), or None if it is not."""
    try:
        return msgspec.convert(value, value_type)
    except msgspec.ValidationError:
        return None


def _file_line(line: Any, file: str, number: int, decoded: DecodedChunk) -> None:
    """File a decoded line as a served instance, a job error or a malformed line."""
    fields = _typed(line, JsonObject)
    if fields is None:
        decoded.errors.append(malformed(f"a JSON {type(line).__name__}, not an object", file, number))
        return
    instance = _typed(fields.get("instance"), JsonObject)
    if instance is None:  # flattened: the instance's fields are the line's
        instance = fields
    if fields.get("error") is not None:
        decoded.errors.append(_job_error(instance, fields["error"], file, number))
    elif (moments := _typed(fields.get("prediction"), list[Any])) is None:
        decoded.errors.append(malformed("neither a 'prediction' list nor an 'error'", file, number))
    else:
        _served(instance, moments, file, number, decoded)


def _job_error(instance: JsonObject, error: Any, file: str, number: int) -> ErrorRecord:
    """The record of an error line (non-null ``error``): its code, message, video and segment, those readable."""
    status = _typed(error, JsonObject)
    if status is None:  # a bare message
        status = {"message": error}
    code, message = status.get("code"), status.get("message")
    digits = _typed(code, CodeDigits)
    text = _typed(message, str)
    return ErrorRecord(
        _typed(instance.get("content"), str),
        _lenient_seconds(instance.get("timeSegmentStart"), open_end=False),
        _lenient_seconds(instance.get("timeSegmentEnd"), open_end=True),
        _typed(code if digits is None else int(digits), Int32),
        text if text is not None else "" if message is None else msgspec.json.encode(message).decode(),
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


def _served(instance: JsonObject, moments: list[Any], file: str, number: int, decoded: DecodedChunk) -> None:
    """A prediction line: its instance (or one ``invalid`` record for the line) and its checked moments."""
    content = _typed(instance.get("content"), NonEmptyText)
    try:
        if content is None:
            raise VideoActionsValueError(
                f"instance.content must be the video's URI, got {brief(instance.get('content'))}"
            )
        start = parse_seconds(instance.get("timeSegmentStart"), "instance.timeSegmentStart") or 0.0
        end = parse_seconds(instance.get("timeSegmentEnd"), "instance.timeSegmentEnd", open_end=True)
        if end is not None and end < start:
            raise VideoActionsValueError(f"instance segment ends ({end}s) before it starts ({start}s)")
    except VideoActionsValueError as exc:
        video = _typed(instance.get("content"), str)
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
    try:
        typed = msgspec.convert(moment, TypedMoment)
    except msgspec.ValidationError:
        raise _broken_field(moment) from None
    begin = _seconds(typed.time_segment_start, "timeSegmentStart")
    finish = _seconds(typed.time_segment_end, "timeSegmentEnd")
    if finish < begin:
        raise VideoActionsValueError(f"timeSegmentEnd: {finish}s is before timeSegmentStart {begin}s")
    upper = math.inf if end is None else end + TIME_TOLERANCE
    if begin < start - TIME_TOLERANCE or finish > upper:
        bounds = f"{start}s to {'the end' if end is None else f'{end}s'}"
        raise VideoActionsValueError(
            f"timeSegmentStart: the moment {begin}s to {finish}s is outside the instance's segment {bounds}"
        )
    return Moment(str(typed.id), typed.display_name, begin, finish, typed.confidence)


def _broken_field(moment: Any) -> VideoActionsValueError:
    """The error naming the first field (in :data:`MOMENT_FIELDS` order) of a moment that is not a
    :class:`TypedMoment`; a Duration past the longest one counts as its field's error, as in :func:`check_moment`."""
    try:
        fields = msgspec.convert(moment, dict[str, Any])
    except msgspec.ValidationError:
        return VideoActionsValueError(f"(the moment): must be an object, got {brief(moment)}")
    for name, field_type, rule in MOMENT_FIELDS:
        value = fields.get(name)
        try:
            msgspec.convert(value, field_type)
            if field_type is Duration:
                duration_seconds(value, name)
        except msgspec.ValidationError:
            return VideoActionsValueError(f"{name}: {rule}, got {brief(value)}")
        except VideoActionsValueError as exc:
            return exc
    return VideoActionsValueError(f"(the moment): unreadable, got {brief(moment)}")  # each field passed: not met


def duration_seconds(value: Any, field: str) -> float:
    """Seconds of a Vertex AI Duration string (``"1.5s"``), or raise naming the field."""
    try:
        text = msgspec.convert(value, Duration)
    except msgspec.ValidationError:
        raise VideoActionsValueError(
            f"{field}: must be a Duration like '1.5s' (ASCII digits, up to 9 decimals), got {brief(value)}"
        ) from None
    return _seconds(text, field)


def _seconds(duration: str, field: str) -> float:
    """Seconds of a string already typed :data:`Duration`, or raise if it is past the longest Duration."""
    seconds = float(duration[:-1])
    if seconds > MAX_DURATION_SECONDS:
        raise VideoActionsValueError(
            f"{field}: {brief(duration)} is beyond the longest Duration ({MAX_DURATION_SECONDS}s)"
        )
    return seconds
