"""Prediction records: decode the job's output lines into typed records, filter them, write them.

A video action recognition output line is ``{"instance": {...}, "prediction": [{"id",
"displayName", "timeSegmentStart", "timeSegmentEnd", "confidence"}, ...]}``; an error line carries
the instance (nested under ``instance`` or flattened) and ``error: {code, message}``. Output files
are decoded a chunk of whole lines at a time with msgspec into typed structs and turned into
columns (one list per record field), so per-moment Python work stays small and memory stays flat
whatever the output size. Nothing is dropped silently: every error line and every malformed line
becomes an :class:`ErrorRecord` with its file and line number.
"""

from __future__ import annotations

import array
import csv
import functools
import gc
import heapq
import io
import itertools
import math
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec

from airflow_provider_video_actions.job import VideoActionsValueError, parse_seconds

# ---------------------------------------------------------------------------------------------
# The records this provider emits.
# ---------------------------------------------------------------------------------------------


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
    """An instance the job could not serve, or an output line that could not be read."""

    video_uri: str | None
    segment_start: float | None
    segment_end: float | None
    code: int | None
    message: str
    file: str
    line: int


RECORD_FIELDS: tuple[str, ...] = PredictionRecord.__struct_fields__
ERROR_FIELDS: tuple[str, ...] = ErrorRecord.__struct_fields__

#: Records as columns: one list per field, in the record type's field order.
Columns = tuple[list[Any], ...]

# ---------------------------------------------------------------------------------------------
# The wire shape of output lines (tolerant: unknown keys are ignored, missing ones defaulted).
# The structs hold no cycles, so the garbage collector need not track them (gc=False).
# ---------------------------------------------------------------------------------------------


class Instance(msgspec.Struct, gc=False, rename="camel"):
    """A served instance: its video and segment (times as on the wire, ``"1.5s"`` or seconds); shared by families."""

    content: str | None = None
    time_segment_start: str | float | None = None
    time_segment_end: str | float | None = None


class Moment(msgspec.Struct, gc=False, rename="camel"):
    """One predicted moment of an instance, before filtering; every family decodes its answers into these."""

    id: str | int = ""
    display_name: str = ""
    time_segment_start: str | float | None = None
    time_segment_end: str | float | None = None
    confidence: float = 0.0


class _Status(msgspec.Struct, gc=False):
    code: int | None = None
    message: str = ""


class _OutputLine(msgspec.Struct, gc=False, rename="camel"):
    instance: Instance | None = None
    prediction: list[Moment] | None = None
    error: _Status | None = None
    # An error line may carry the instance flattened instead of nested.
    content: str | None = None
    time_segment_start: str | float | None = None
    time_segment_end: str | float | None = None


_DECODER = msgspec.json.Decoder(_OutputLine)
_decode_floats = msgspec.json.Decoder(list[float]).decode


@functools.lru_cache(maxsize=4096)
def _segment(start: str | float | None, end: str | float | None) -> tuple[float, float | None]:
    """An instance's segment in seconds (open end as None); cached, as few distinct segments recur."""
    return parse_seconds(start, "timeSegmentStart") or 0.0, parse_seconds(end, "timeSegmentEnd", open_end=True)


def _seconds(values: list[Any], param: str) -> list[float]:
    """Moment times (``"1.5s"`` strings) as floats: in one msgspec call if it can, else value by value."""
    seconds = _seconds_at_once(values)
    return seconds if seconds is not None else [parse_seconds(v, param) or 0.0 for v in values]


def _seconds_at_once(values: list[Any]) -> list[float] | None:
    """Decode the times as one JSON array of numbers, or None when any of them is unusual.

    Applies only when every value is a string ending in a single ``s`` and no number comes out
    negative or infinite; anything else goes to :func:`parse_seconds`, which names the problem.
    """
    try:
        body = ",".join(values)
    except TypeError:  # a number or None among them
        return None
    if not (body.count("s") == len(values) == body.count("s,") + 1 and body.endswith("s")):
        return None
    try:
        seconds = _decode_floats(f"[{body.replace('s', '')}]")
    except msgspec.DecodeError:
        return None
    return seconds if len(seconds) == len(values) and 0 <= min(seconds) <= max(seconds) < math.inf else None


def _strings(values: list[Any]) -> list[str]:
    """The values as strings (label ids may come as numbers); the common all-string case is one C call."""
    try:
        "".join(values)
    except TypeError:
        return [str(v) for v in values]
    return values


# ---------------------------------------------------------------------------------------------
# Decoding a chunk of whole lines.
# ---------------------------------------------------------------------------------------------


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


@dataclass
class DecodedChunk:
    """A chunk's line count, its served instances, their moments (one list per instance), its error records."""

    lines: int
    instances: list[Instance] = field(default_factory=list)
    moments: list[list[Moment]] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)


def decode_chunk(chunk: bytes, file: str, first_line: int) -> DecodedChunk:
    """Decode a chunk of whole lines (numbered from ``first_line``): all at once, or line by line if it must."""
    count = chunk.count(b"\n") + (not chunk.endswith(b"\n"))
    try:
        lines = _DECODER.decode_lines(chunk)
    except msgspec.DecodeError:
        lines = None
    # Blank lines are skipped by decode_lines: then line numbers need the slow path too.
    if lines is None or len(lines) != count:
        return _decode_each(chunk, file, first_line, count)
    decoded = DecodedChunk(count)
    for number, line in enumerate(lines, start=first_line):
        _classify(line, file, number, decoded)
    return decoded


def _decode_each(chunk: bytes, file: str, first_line: int, count: int) -> DecodedChunk:
    """Decode line by line, so that a malformed line becomes an error record with its number."""
    decoded = DecodedChunk(count)
    for number, raw in enumerate(chunk.split(b"\n"), start=first_line):
        if not raw.strip():
            continue
        try:
            line = _DECODER.decode(raw)
        except msgspec.DecodeError as exc:
            decoded.errors.append(_malformed(f"malformed output line: {exc}", file, number))
            continue
        _classify(line, file, number, decoded)
    return decoded


def _classify(line: _OutputLine, file: str, number: int, decoded: DecodedChunk) -> None:
    """File one decoded line as a served instance or an error record."""
    instance = line.instance or Instance(line.content, line.time_segment_start, line.time_segment_end)
    try:
        start, end = _segment(instance.time_segment_start, instance.time_segment_end)
    except VideoActionsValueError as exc:
        decoded.errors.append(_malformed(f"malformed output line: {exc}", file, number))
        return
    if line.error is not None:
        decoded.errors.append(
            ErrorRecord(instance.content, start, end, line.error.code, line.error.message, file, number)
        )
    elif line.prediction is None or instance.content is None:
        message = "output line has no 'prediction'" if instance.content else "output line has no instance content"
        decoded.errors.append(
            ErrorRecord(instance.content, start, end, None, f"malformed output line: {message}", file, number)
        )
    else:
        decoded.instances.append(instance)
        decoded.moments.append(line.prediction)


def _malformed(message: str, file: str, number: int) -> ErrorRecord:
    """An error record for a line that could not be read."""
    return ErrorRecord(None, None, None, None, message, file, number)


# ---------------------------------------------------------------------------------------------
# Filtering served instances into record columns.
# ---------------------------------------------------------------------------------------------

_ids, _names, _starts, _ends, _confidences = (
    operator.attrgetter(name) for name in ("id", "display_name", "time_segment_start", "time_segment_end", "confidence")
)
_contents = operator.attrgetter("content")


def _repeat(values: Iterable[Any], counts: list[int]) -> list[Any]:
    """Each value repeated its count of times, flattened (one value per kept moment)."""
    return list(itertools.chain.from_iterable(map(itertools.repeat, values, counts)))


@dataclass(frozen=True)
class PredictionFilter:
    """Which moments to keep: a confidence floor, a label allow-list, the top k per instance (in output order)."""

    min_confidence: float = 0.0
    labels: frozenset[str] | None = None
    top_k: int | None = None

    def keep(self, moments: list[Moment]) -> list[Moment]:
        """The moments of one instance that pass the filter, in their output order."""
        kept = [
            m
            for m in moments
            if m.confidence >= self.min_confidence and (self.labels is None or m.display_name in self.labels)
        ]
        if self.top_k is not None and len(kept) > self.top_k:
            best = heapq.nlargest(self.top_k, range(len(kept)), key=lambda i: kept[i].confidence)
            kept = [kept[i] for i in sorted(best)]
        return kept

    def columns(self, decoded: DecodedChunk) -> Columns:
        """The kept moments of a chunk's served instances as :class:`PredictionRecord` columns."""
        kept = decoded.moments
        if self.min_confidence > 0 or self.labels is not None or self.top_k is not None:
            kept = list(map(self.keep, kept))
        counts = list(map(len, kept))
        segments = list(map(_segment, map(_starts, decoded.instances), map(_ends, decoded.instances)))
        moments = list(itertools.chain.from_iterable(kept))
        starts = list(map(_starts, moments))
        ends = list(map(_ends, moments))
        if None in ends:
            ends = [end if end is not None else start for start, end in zip(starts, ends, strict=True)]
        return (
            _repeat(map(_contents, decoded.instances), counts),
            _repeat(map(operator.itemgetter(0), segments), counts),
            _repeat(map(operator.itemgetter(1), segments), counts),
            _strings(list(map(_ids, moments))),
            list(map(_names, moments)),
            _seconds(starts, "timeSegmentStart"),
            _seconds(ends, "timeSegmentEnd"),
            list(map(_confidences, moments)),
        )


def error_columns(errors: Sequence[ErrorRecord]) -> Columns:
    """Error records (at least one) as :class:`ErrorRecord` columns."""
    return tuple(map(list, zip(*map(msgspec.structs.astuple, errors), strict=True)))


# ---------------------------------------------------------------------------------------------
# Tallies for the summary.
# ---------------------------------------------------------------------------------------------

ERROR_SAMPLES = 5
VIDEO_BUCKETS = 64
#: The summary names at most this many labels, the most frequent (the rest are counted in ``labels_omitted``).
SUMMARY_LABELS = 1000
#: Text in the summary and the logs (labels, error messages, URIs) is cut to this many characters.
SUMMARY_TEXT_CHARS = 500


def shorten(text: str | None, limit: int = SUMMARY_TEXT_CHARS) -> str | None:
    """The text cut to ``limit`` characters, with a marker saying how much was cut (None stays None)."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


@dataclass
class ParseStats:
    """What one parse saw: counts for the summary and a few error samples."""

    rows: int = 0
    instances: int = 0
    #: 64-bit hashes of the videos seen, 8 bytes each (a set of the URIs would take ~150 bytes a video).
    video_hashes: array.array = field(default_factory=lambda: array.array("q"))
    label_counts: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    malformed_lines: int = 0
    error_samples: list[dict[str, Any]] = field(default_factory=list)

    def add_records(self, columns: Columns, decoded: DecodedChunk) -> None:
        """Count a chunk's served instances and the records kept from them."""
        self.instances += len(decoded.instances)
        self.video_hashes.extend(set(map(hash, map(_contents, decoded.instances))))
        self.rows += len(columns[0])
        self.label_counts.update(columns[RECORD_FIELDS.index("label")])

    def add_error(self, error: ErrorRecord) -> None:
        """Count an error record and keep it as a sample (its text shortened) if there is room."""
        self.errors += 1
        self.malformed_lines += error.code is None
        if len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(
                {
                    "video": shorten(error.video_uri),
                    "code": error.code,
                    "message": shorten(error.message),
                    "file": shorten(error.file),
                    "line": error.line,
                }
            )

    def summary_label_counts(self) -> tuple[dict[str, int], int]:
        """The most frequent labels (names shortened) with their counts, by name; and how many were left out."""
        kept: Counter[str] = Counter()
        for label, count in self.label_counts.most_common(SUMMARY_LABELS):
            kept[shorten(label) or ""] += count
        return dict(sorted(kept.items())), max(len(self.label_counts) - SUMMARY_LABELS, 0)

    @property
    def videos(self) -> int:
        """How many distinct videos were served (by 64-bit hash: a collision is negligible).

        The hashes are counted a bucket at a time, so that no set of them all is ever built.
        """
        buckets = [array.array("q") for _ in range(VIDEO_BUCKETS)]
        for value in self.video_hashes:
            buckets[value % VIDEO_BUCKETS].append(value)
        return sum(len(set(bucket)) for bucket in buckets)

    def summary(self) -> dict[str, Any]:
        """The JSON-able part of the parse operator's return value, bounded whatever the output holds."""
        label_counts, labels_omitted = self.summary_label_counts()
        return {
            "rows": self.rows,
            "instances": self.instances,
            "videos": self.videos,
            "errors": self.errors,
            "malformed_lines": self.malformed_lines,
            "label_counts": label_counts,
            "labels_omitted": labels_omitted,
            "error_samples": self.error_samples,
        }


# ---------------------------------------------------------------------------------------------
# Writers: one per destination format, each streaming columns to a binary handle.
# ---------------------------------------------------------------------------------------------

WRITER_FORMATS = (".jsonl", ".csv", ".parquet")
CONTENT_TYPES = {".jsonl": "application/jsonl", ".csv": "text/csv", ".parquet": "application/vnd.apache.parquet"}
PARQUET_ROW_GROUP = 65_536
#: A CSV cell starting with one of these is read as a formula by spreadsheets (OWASP CSV injection):
#: such text cells are written with a leading ``'``.
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(values: list[Any]) -> list[Any]:
    """A text column for CSV: None as an empty cell, formula-like text escaped with a leading ``'``."""
    return ["" if v is None else "'" + v if v.startswith(CSV_FORMULA_STARTS) else v for v in values]


class _OneAhead:
    """Runs writes on one background thread, one at a time and at most one behind the caller.

    File and network writes, and Parquet's encoding and compression, release the GIL: they overlap
    with decoding the next chunk, while at most one batch waits in memory.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video-actions-writer")
        self._pending: Future[Any] | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the background once the previous write is done (raising its error)."""
        self.wait()
        self._pending = self._executor.submit(fn, *args)

    def wait(self) -> None:
        """Wait for the write in flight, raising its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def stop(self) -> None:
        """Let the write in flight end and the thread go, without raising (for an exception's unwinding)."""
        self._executor.shutdown(wait=True)


class RecordWriter:
    """Streams records of one type, given as columns, to a binary handle as JSONL, CSV or Parquet.

    JSONL and Parquet writes go through a background thread; call :meth:`stop` before the handle
    closes when the writer is abandoned half way.
    """

    def __init__(self, handle: IO[bytes], fmt: str, record_type: type[msgspec.Struct]) -> None:
        if fmt not in WRITER_FORMATS:
            raise VideoActionsValueError(f"unknown format {fmt!r}; use one of {', '.join(WRITER_FORMATS)}.")
        self._handle, self._fmt, self._type = handle, fmt, record_type
        self._encoder = msgspec.json.Encoder()
        self._io = _OneAhead()
        if fmt == ".csv":
            self._text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=True)
            self._csv = csv.writer(self._text)
            self._csv.writerow(record_type.__struct_fields__)
            self._csv_text_columns = {i for i, (_, text) in enumerate(_annotations(record_type)) if "str" in text}
        elif fmt == ".parquet":
            self._parquet = _ParquetColumns(handle, record_type, self._io)

    def write(self, columns: Columns) -> None:
        """Write a batch of records (Parquet gathers them into row groups)."""
        if not columns[0]:
            return
        if self._fmt == ".jsonl":
            self._io.submit(self._handle.write, self._encoder.encode_lines(list(map(self._type, *columns))))
        elif self._fmt == ".csv":
            cells = [
                _csv_text(c) if i in self._csv_text_columns else ["" if v is None else v for v in c] if None in c else c
                for i, c in enumerate(columns)
            ]
            self._csv.writerows(zip(*cells, strict=True))
        else:
            self._parquet.write(columns)

    def close(self) -> None:
        """Finish the file (the last row group, the Parquet footer); the handle stays open."""
        if self._fmt == ".parquet":
            self._parquet.close()
        elif self._fmt == ".csv":
            self._text.detach()
        self._io.wait()
        self._io.stop()

    def stop(self) -> None:
        """Stop the background thread (a write in flight ends first); nothing more is written."""
        self._io.stop()


class _ParquetColumns:
    """A Parquet writer fed with column batches, writing a row group every ``PARQUET_ROW_GROUP`` rows."""

    def __init__(self, handle: IO[bytes], record_type: type[msgspec.Struct], background: _OneAhead) -> None:
        import pyarrow.parquet as pq

        self._schema = _arrow_schema(record_type)
        self._writer = pq.ParquetWriter(handle, self._schema)
        self._io = background
        self._batches: list[Any] = []
        self._rows = 0

    def write(self, columns: Columns) -> None:
        """Convert a batch to Arrow now (the lists can go), write once a row group is full."""
        import pyarrow as pa

        arrays = [_arrow_array(c, f.type) for c, f in zip(columns, self._schema, strict=True)]
        self._batches.append(pa.record_batch(arrays, schema=self._schema))
        self._rows += len(columns[0])
        if self._rows >= PARQUET_ROW_GROUP:
            self._flush()

    def close(self) -> None:
        """Write the last row group and the footer."""
        self._flush()
        self._io.wait()
        self._writer.close()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._batches:
            table = pa.Table.from_batches(self._batches, schema=self._schema)
            self._io.submit(self._writer.write_table, table, max(self._rows, 1))
            self._batches, self._rows = [], 0


def _arrow_schema(record_type: type[msgspec.Struct]) -> Any:
    """The Parquet schema of a record type, from its annotations."""
    import pyarrow as pa

    types = {"str": pa.string(), "float": pa.float64(), "int": pa.int64()}
    return pa.schema([pa.field(name, types[text.split(" | ")[0]]) for name, text in _annotations(record_type)])


def _annotations(record_type: type[msgspec.Struct]) -> list[tuple[str, str]]:
    """(field, annotation text) pairs; annotations are strings under ``from __future__ import annotations``."""
    return [(f.name, str(record_type.__annotations__[f.name])) for f in msgspec.structs.fields(record_type)]


_ARRAY_CODES = {"double": "d", "int64": "q"}


def _arrow_array(values: list[Any], arrow_type: Any) -> Any:
    """An Arrow string, double or int64 array built from buffers.

    ``pa.array`` would do, but its first call imports pandas (seconds, and tens of MB) to check the
    argument's type.
    """
    import pyarrow as pa

    validity = None
    if None in values:
        present = bytes(map(operator.is_not, values, itertools.repeat(None)))
        validity = pa.Array.from_buffers(pa.uint8(), len(values), [None, pa.py_buffer(present)])
        validity = validity.cast(pa.bool_()).buffers()[1]
        filler = "" if arrow_type == pa.string() else 0
        values = [filler if v is None else v for v in values]
    if arrow_type != pa.string():
        data = pa.py_buffer(array.array(_ARRAY_CODES[str(arrow_type)], values))
        return pa.Array.from_buffers(arrow_type, len(values), [validity, data])
    text = "".join(values)
    encoded = [v.encode() for v in values] if not text.isascii() else values
    offsets = array.array("i", itertools.accumulate(map(len, encoded), initial=0))
    data = pa.py_buffer(text.encode())
    return pa.Array.from_buffers(pa.string(), len(values), [validity, pa.py_buffer(offsets), data])
