"""The records a parse emits, and the shapes every family decodes its output lines into.

A parse turns each non-blank output line into exactly one of: a served instance (whose moments
become :class:`PredictionRecord` rows, unless a moment breaks the value rules or the user's filters
drop it), or an :class:`ErrorRecord` of one of :data:`ERROR_KINDS`. A moment that breaks the rules
becomes an ``invalid_moment`` error record of its own. Decoding lives with each family
(:mod:`.families.action_recognition_answers`, :mod:`.families.gemini.answers`), filters and counts in
:mod:`.parse.keep` and :mod:`.parse.count`, writers in :mod:`.writers`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec

#: An error line the job wrote (``error: {code, message}``; the code may be missing).
JOB_ERROR = "job_error"
#: A line that could not be read: not JSON, the wrong shape, nested too deep, or too long.
MALFORMED = "malformed"
#: A readable line whose values break the rules (its instance's content or segment; a rejected Gemini answer).
INVALID_LINE = "invalid_line"
#: One moment whose values break the rules (a bad Duration, confidence, label...); the line's other moments stay.
INVALID_MOMENT = "invalid_moment"
ERROR_KINDS = (JOB_ERROR, MALFORMED, INVALID_LINE, INVALID_MOMENT)


class PredictionRecord(msgspec.Struct, frozen=True, gc=False):
    """One predicted moment of an action in a video. Times are seconds from the video's start."""

    video_uri: str
    segment_start: float
    segment_end: float | None
    label_id: str
    label: str
    time_start: float
    time_end: float
    confidence: float


class ErrorRecord(msgspec.Struct, frozen=True, gc=False):
    """An instance the job could not serve, a line that could not be read, or a line or moment breaking the rules."""

    video_uri: str | None
    segment_start: float | None
    segment_end: float | None
    code: int | None
    message: str
    file: str
    line: int
    #: One of :data:`ERROR_KINDS`.
    kind: str


RECORD_FIELDS: tuple[str, ...] = PredictionRecord.__struct_fields__

#: Records as columns: one list per field, in the record type's field order.
Columns = tuple[list[Any], ...]


class Instance(msgspec.Struct, gc=False):
    """A served instance: its video and its segment in seconds (None: to the end of the video)."""

    content: str
    start: float = 0.0
    end: float | None = None


class Moment(msgspec.Struct, gc=False):
    """One checked moment of an instance (times in seconds), before the user's filters."""

    id: str
    display_name: str
    time_segment_start: float
    time_segment_end: float
    confidence: float


@dataclass
class DecodedChunk:
    """A chunk's lines (blank ones included, for numbering), its served instances with their moments, its errors."""

    lines: int
    blank_lines: int = 0
    instances: list[Instance] = field(default_factory=list)
    moments: list[list[Moment]] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)


def line_count(chunk: bytes) -> int:
    """How many lines a chunk holds (the last may lack its newline)."""
    return chunk.count(b"\n") + (not chunk.endswith(b"\n"))


def decode_lines(
    chunk: bytes, file: str, first_line: int, decode_line: Callable[[bytes, str, int, DecodedChunk], None]
) -> DecodedChunk:
    """Decode a chunk of whole lines (numbered from ``first_line``) one line at a time with a family's
    ``decode_line(raw, file, number, decoded)``; blank lines are counted, for numbering, and skipped."""
    decoded = DecodedChunk(line_count(chunk))
    for number, raw in enumerate(chunk.split(b"\n"), start=first_line):
        if raw.strip():
            decode_line(raw, file, number, decoded)
        elif number < first_line + decoded.lines:
            decoded.blank_lines += 1
    return decoded


def malformed(message: str, file: str, number: int) -> ErrorRecord:
    """The error record of a line that could not be read."""
    return ErrorRecord(None, None, None, None, f"malformed output line: {message}", file, number, MALFORMED)


def error_columns(errors: Sequence[ErrorRecord]) -> Columns:
    """Error records (at least one) as :class:`ErrorRecord` columns."""
    return tuple(map(list, zip(*map(msgspec.structs.astuple, errors), strict=True)))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while parsing: decoding makes millions of short-lived objects and
    no cycles (refcounting frees them), and each collection would scan every object a worker has loaded."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
