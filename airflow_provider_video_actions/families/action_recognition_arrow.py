"""Action recognition output, read fast: a chunk of whole lines through Arrow's JSON reader and compute kernels.

Arrow reads the chunk with an explicit schema (chunks side by side on the dispatcher's threads);
flattening the moments, reading the Durations and checking every rule of
:mod:`.action_recognition_answers` are compute kernels, so no Python runs per moment. The fast path
vouches only for chunks where every line is a served instance with known keys whose every value keeps
the rules; any other chunk (an error line, a blank line, an unknown key, a type Arrow cannot read, one
value breaking a rule) returns None and goes to the exact line-by-line decoder, so error records keep
their exact line numbers and every count stays exact.
"""

from __future__ import annotations

import array
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from airflow_provider_video_actions.families.action_recognition_answers import DURATION_RE
from airflow_provider_video_actions.families.base import TIME_TOLERANCE
from airflow_provider_video_actions.job import MAX_DURATION_SECONDS
from airflow_provider_video_actions.parse.count import video_hashes
from airflow_provider_video_actions.parse.keep import PredictionFilter
from airflow_provider_video_actions.predictions import PredictionRecord, line_count
from airflow_provider_video_actions.writers import arrow_array, arrow_schema

#: ``DURATION_RE`` of the exact decoder, anchored for RE2.
_DURATION = f"^{DURATION_RE.pattern}$"
#: An instance's segment bound read here: at most microseconds, so no rounding is needed (``parse_seconds`` rounds
#: finer bounds to microseconds; a chunk holding one goes to the exact decoder, so both paths agree).
_BOUND = r"^[0-9]+(?:\.[0-9]{1,6})?s$"
_TEXT = pa.string()
_OPEN_ENDS = arrow_array(["Infinity", "inf"], _TEXT)
_NO_TEXT = arrow_array([None], _TEXT)[0]


def _number(value: float) -> Any:
    """An Arrow double scalar (built from a buffer: a Python number given to a kernel would import pandas)."""
    return arrow_array([value], pa.float64())[0]


_ZERO, _TOLERANCE, _NO_END = _number(0.0), _number(TIME_TOLERANCE), _number(float("inf"))
_INSTANCE = pa.struct([("content", _TEXT), ("mimeType", _TEXT), ("timeSegmentStart", _TEXT), ("timeSegmentEnd", _TEXT)])
_MOMENT = pa.struct(
    [
        ("id", _TEXT),
        ("displayName", _TEXT),
        ("timeSegmentStart", _TEXT),
        ("timeSegmentEnd", _TEXT),
        ("confidence", pa.float64()),
    ]
)
#: An output line as Arrow reads it (the benchmark reads the same files with it).
OUTPUT_LINE = pa.schema([("instance", _INSTANCE), ("prediction", pa.list_(_MOMENT)), ("error", _TEXT)])
#: A line break followed by anything but an object's opening brace.
_LINE_NOT_AN_OBJECT = re.compile(rb"\n[^{]")
#: Only lines with these keys and no others are read here: an unknown key (which could hide anything, JSON nested
#: deeper than the exact decoder reads included) sends the chunk to the exact decoder, so both paths agree.
_PARSE = pj.ParseOptions(explicit_schema=OUTPUT_LINE, unexpected_field_behavior="error")
RECORDS = arrow_schema(PredictionRecord)


class _RefusedError(Exception):
    """The chunk holds something the fast path does not vouch for."""


@dataclass
class FastChunk:
    """A chunk read by the fast path: its records as an Arrow table, and what the counts need."""

    lines: int
    instances: int
    moments: int
    records: Any
    #: The chunk's distinct videos, as :func:`~airflow_provider_video_actions.parse.count.video_hashes`.
    video_hashes: array.array

    def label_counts(self) -> Iterator[tuple[str, int]]:
        """(label, records) pairs of the kept records."""
        counts = pc.value_counts(self.records.column("label"))
        return zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)


def read_fast(chunk: bytes, keep: PredictionFilter) -> FastChunk | None:
    """The chunk's kept records if every line is a served instance keeping every rule, else None."""
    if keep.top_k is not None or not _utf8(chunk):
        return None  # top k per instance is the exact path's; Arrow does not check UTF-8
    if not _objects_only(chunk):
        return None
    lines = line_count(chunk)
    try:
        table = pj.read_json(pa.BufferReader(chunk), read_options=_one_block(chunk), parse_options=_PARSE)
        if table.num_rows != lines:  # a blank line: the exact decoder numbers lines
            raise _RefusedError
        return _records(table.combine_chunks(), lines, keep)
    except (_RefusedError, pa.ArrowException):
        return None


def _objects_only(chunk: bytes) -> bool:
    """Whether every line opens a JSON object at its first byte; the others go to the exact decoder.

    Arrow reads such lines wrongly or not at all: pyarrow 26 crashes the process on a chunk opening with
    ``null``, skips a BOM opening a chunk, and reads two objects on one line as two rows (which a blank
    line's missing row then balances). One regex scan: 0.8 ms per 2.7 MiB, about 4 % of the fast path's time
    (counting ``\n{`` took 12 %).
    """
    return chunk.startswith(b"{") and _LINE_NOT_AN_OBJECT.search(chunk) is None  # a final line break has no next byte


def _one_block(chunk: bytes) -> Any:
    """Read options parsing the chunk as one block on this thread (one Arrow chunk per column).

    Chunks are read side by side (``dispatch.PARSE_THREADS``), which costs less than splitting one.
    """
    return pj.ReadOptions(block_size=len(chunk) + 1, use_threads=False)


def _utf8(chunk: bytes) -> bool:
    """Whether the chunk is valid UTF-8 (checked in C; ASCII, the common case, at once)."""
    if chunk.isascii():
        return True
    try:
        chunk.decode()
    except UnicodeDecodeError:
        return False
    return True


def _records(table: Any, lines: int, keep: PredictionFilter) -> FastChunk:
    """Check every rule over the whole chunk at once and build the kept records (``table`` holds one Arrow chunk)."""
    instance, prediction = (table.column(name).chunk(0) for name in ("instance", "prediction"))
    _require(instance.null_count == 0 and prediction.null_count == 0)
    _require(table.column("error").null_count == lines)
    content, _, start_text, end_text = instance.flatten()
    _require(content.null_count == 0 and _shortest(content) > 0)
    segment_start = pc.fill_null(_seconds(start_text, instance=True), _ZERO)
    segment_end = _seconds(pc.if_else(pc.is_in(end_text, _OPEN_ENDS), _NO_TEXT, end_text), instance=True)
    _require(_all(pc.less_equal(segment_start, pc.fill_null(segment_end, _NO_END))))
    moments = pc.list_flatten(prediction)
    _require(moments.null_count == 0)
    ids, names, start_text, end_text, confidence = moments.flatten()
    _require(ids.null_count == 0 and names.null_count == 0 and confidence.null_count == 0)
    starts, ends = _seconds(start_text, instance=False), _seconds(end_text, instance=False)
    parents = pc.list_parent_indices(prediction)
    moment_start, moment_end = pc.take(segment_start, parents), pc.take(segment_end, parents)
    if len(moments):
        _require(_shortest(ids) > 0 and _shortest(names) > 0)
        low, high = pc.min_max(confidence).values()
        _require(low.as_py() >= 0.0 and high.as_py() <= 1.0)
        _require(_all(pc.less_equal(starts, ends)))
        _require(_all(pc.greater_equal(starts, pc.subtract(moment_start, _TOLERANCE))))
        _require(_all(pc.less_equal(ends, pc.add(pc.fill_null(moment_end, _NO_END), _TOLERANCE))))
    columns = [pc.take(content, parents), moment_start, moment_end, ids, names, starts, ends, confidence]
    records = pa.Table.from_arrays(columns, schema=RECORDS)
    if not keep.keeps_all:
        records = records.filter(_kept(records, keep))
    return FastChunk(lines, len(content), len(moments), records, video_hashes(pc.unique(content).to_pylist()))


def _kept(records: Any, keep: PredictionFilter) -> Any:
    """The mask of records passing the confidence floor and the label allow-list."""
    mask = pc.greater_equal(records.column("confidence"), _number(keep.min_confidence))
    if keep.labels is not None:
        mask = pc.and_(mask, pc.is_in(records.column("label"), arrow_array(sorted(keep.labels), _TEXT)))
    return mask


def _seconds(text: Any, *, instance: bool) -> Any:
    """Durations (``"1.5s"``) as seconds; refuse the chunk for any other text (for an ``instance`` bound: a null is
    no bound, and finer than microseconds is refused)."""
    _require(instance or text.null_count == 0)
    matched = pc.match_substring_regex(text, _BOUND if instance else _DURATION)
    _require(matched.null_count == text.null_count and _all(matched))
    seconds = pc.cast(pc.ascii_rtrim(text, "s"), pa.float64())  # the one "s" the pattern allows
    if len(seconds) - seconds.null_count:
        _require(pc.max(seconds).as_py() <= MAX_DURATION_SECONDS)
    return seconds


def _shortest(text: Any) -> int:
    """The length of the shortest string (0 for none)."""
    return pc.min(pc.binary_length(text)).as_py() or 0 if len(text) else 1


def _all(mask: Any) -> bool:
    """Whether every non-null value of a boolean array is true."""
    return pc.all(mask).as_py() is not False


def _require(condition: bool) -> None:
    if not condition:
        raise _RefusedError
