"""Prediction records: decode the job's output lines into typed records, filter them, write them.

A video action recognition output line is ``{"instance": {...}, "prediction": [{"id",
"displayName", "timeSegmentStart", "timeSegmentEnd", "confidence"}, ...]}``; an error line carries
the instance (nested under ``instance`` or flattened) and ``error: {code, message}``. Lines are
decoded one at a time with msgspec into typed structs, so memory stays flat whatever the output
size. Nothing is dropped silently: every error line and every malformed line becomes an
:class:`ErrorRecord` with its file and line number.
"""

from __future__ import annotations

import csv
import heapq
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec

from airflow_provider_video_actions.job import VideoActionsValueError, parse_seconds

# ---------------------------------------------------------------------------------------------
# The records this provider emits.
# ---------------------------------------------------------------------------------------------


class PredictionRecord(msgspec.Struct, frozen=True):
    """One predicted moment of an action in a video. Times are seconds from the video's start."""

    video_uri: str
    segment_start: float
    segment_end: float | None
    label_id: str
    label: str
    time_start: float
    time_end: float
    confidence: float


class ErrorRecord(msgspec.Struct, frozen=True):
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

# ---------------------------------------------------------------------------------------------
# The wire shape of output lines (tolerant: unknown keys are ignored, missing ones defaulted).
# ---------------------------------------------------------------------------------------------


class _Instance(msgspec.Struct):
    content: str | None = None
    timeSegmentStart: str | float | None = None  # noqa: N815 - wire names
    timeSegmentEnd: str | float | None = None  # noqa: N815


class _Moment(msgspec.Struct):
    id: str | int = ""
    displayName: str = ""  # noqa: N815
    timeSegmentStart: str | float | None = None  # noqa: N815
    timeSegmentEnd: str | float | None = None  # noqa: N815
    confidence: float = 0.0


class _Status(msgspec.Struct):
    code: int | None = None
    message: str = ""


class _OutputLine(msgspec.Struct):
    instance: _Instance | None = None
    prediction: list[_Moment] | None = None
    error: _Status | None = None
    # An error line may carry the instance flattened instead of nested.
    content: str | None = None
    timeSegmentStart: str | float | None = None  # noqa: N815
    timeSegmentEnd: str | float | None = None  # noqa: N815


_decode_line = msgspec.json.Decoder(_OutputLine).decode


def _segment(instance: _Instance | _OutputLine) -> tuple[float, float | None]:
    """The instance's segment in seconds (open end as None)."""
    start = parse_seconds(instance.timeSegmentStart, "timeSegmentStart") or 0.0
    return start, parse_seconds(instance.timeSegmentEnd, "timeSegmentEnd", open_end=True)


def decode_lines(lines: Iterable[bytes], file: str) -> Iterator[tuple[_Instance, list[_Moment]] | ErrorRecord]:
    """Decode a file's lines into (instance, moments) pairs or error records; blank lines are skipped."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = _decode_line(raw)
            instance = line.instance or _Instance(line.content, line.timeSegmentStart, line.timeSegmentEnd)
            start, end = _segment(instance)
        except (msgspec.DecodeError, VideoActionsValueError) as exc:
            yield ErrorRecord(None, None, None, None, f"malformed output line: {exc}", file, number)
            continue
        if line.error is not None:
            yield ErrorRecord(instance.content, start, end, line.error.code, line.error.message, file, number)
        elif line.prediction is None or instance.content is None:
            message = "output line has no 'prediction'" if instance.content else "output line has no instance content"
            yield ErrorRecord(instance.content, start, end, None, f"malformed output line: {message}", file, number)
        else:
            yield instance, line.prediction


@dataclass(frozen=True)
class PredictionFilter:
    """Which moments to keep: a confidence floor, a label allow-list, the top k per instance."""

    min_confidence: float = 0.0
    labels: frozenset[str] | None = None
    top_k: int | None = None

    def records(self, instance: _Instance, moments: list[_Moment]) -> list[PredictionRecord]:
        """Turn one instance's moments into records that pass the filter, in time order."""
        start, end = _segment(instance)
        kept = [
            m
            for m in moments
            if m.confidence >= self.min_confidence and (self.labels is None or m.displayName in self.labels)
        ]
        if self.top_k is not None and len(kept) > self.top_k:
            kept = heapq.nlargest(self.top_k, kept, key=lambda m: m.confidence)
        records = [
            PredictionRecord(
                video_uri=instance.content or "",
                segment_start=start,
                segment_end=end,
                label_id=str(m.id),
                label=m.displayName,
                time_start=parse_seconds(m.timeSegmentStart, "timeSegmentStart") or 0.0,
                time_end=parse_seconds(m.timeSegmentEnd or m.timeSegmentStart, "timeSegmentEnd") or 0.0,
                confidence=m.confidence,
            )
            for m in kept
        ]
        return sorted(records, key=lambda r: (r.time_start, r.label))


# ---------------------------------------------------------------------------------------------
# Tallies for the summary.
# ---------------------------------------------------------------------------------------------

ERROR_SAMPLES = 5


@dataclass
class ParseStats:
    """What one parse saw: counts for the summary and a few error samples."""

    rows: int = 0
    instances: int = 0
    videos: set[str] = field(default_factory=set)
    label_counts: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    malformed_lines: int = 0
    error_samples: list[dict[str, Any]] = field(default_factory=list)

    def add_records(self, records: list[PredictionRecord], video_uri: str) -> None:
        """Count one served instance and the records kept from it."""
        self.instances += 1
        self.videos.add(video_uri)
        self.rows += len(records)
        self.label_counts.update(r.label for r in records)

    def add_error(self, error: ErrorRecord) -> None:
        """Count an error record and keep it as a sample if there is room."""
        self.errors += 1
        self.malformed_lines += error.code is None
        if len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(
                {
                    "video": error.video_uri,
                    "code": error.code,
                    "message": error.message,
                    "file": error.file,
                    "line": error.line,
                }
            )

    def summary(self) -> dict[str, Any]:
        """The JSON-able part of the parse operator's return value."""
        return {
            "rows": self.rows,
            "instances": self.instances,
            "videos": len(self.videos),
            "errors": self.errors,
            "malformed_lines": self.malformed_lines,
            "label_counts": dict(sorted(self.label_counts.items())),
            "error_samples": self.error_samples,
        }


# ---------------------------------------------------------------------------------------------
# Writers: one per destination format, each streaming to a binary handle.
# ---------------------------------------------------------------------------------------------

WRITER_FORMATS = (".jsonl", ".csv", ".parquet")
CONTENT_TYPES = {".jsonl": "application/jsonl", ".csv": "text/csv", ".parquet": "application/vnd.apache.parquet"}
PARQUET_ROW_GROUP = 65_536


class RecordWriter:
    """Streams records of one type to a binary handle as JSONL, CSV or Parquet."""

    def __init__(self, handle: IO[bytes], fmt: str, record_type: type[msgspec.Struct]) -> None:
        self._handle, self._fmt, self._fields = handle, fmt, record_type.__struct_fields__
        self._pending: list[msgspec.Struct] = []
        self._encoder = msgspec.json.Encoder()
        self._csv: Any = None
        self._parquet: Any = None
        if fmt == ".csv":
            self._text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=True)
            self._csv = csv.writer(self._text)
            self._csv.writerow(self._fields)
        elif fmt == ".parquet":
            import pyarrow.parquet as pq

            self._schema = _arrow_schema(record_type)
            self._parquet = pq.ParquetWriter(handle, self._schema)
        elif fmt != ".jsonl":
            raise VideoActionsValueError(f"unknown format {fmt!r}; use one of {', '.join(WRITER_FORMATS)}.")

    def write(self, records: Iterable[msgspec.Struct]) -> None:
        """Write records (Parquet buffers them into row groups)."""
        if self._fmt == ".jsonl":
            self._handle.write(b"".join(self._encoder.encode(r) + b"\n" for r in records))
        elif self._csv is not None:
            self._csv.writerows(tuple("" if v is None else v for v in msgspec.structs.astuple(r)) for r in records)
        else:
            self._pending.extend(records)
            if len(self._pending) >= PARQUET_ROW_GROUP:
                self._flush_parquet()

    def close(self) -> None:
        """Finish the file (the last row group, the Parquet footer); the handle stays open."""
        if self._parquet is not None:
            self._flush_parquet()
            self._parquet.close()
        elif self._csv is not None:
            self._text.detach()

    def _flush_parquet(self) -> None:
        import pyarrow as pa

        if self._pending:
            columns = list(zip(*(msgspec.structs.astuple(r) for r in self._pending), strict=True))
            self._parquet.write_table(pa.Table.from_arrays([pa.array(c) for c in columns], schema=self._schema))
            self._pending.clear()


def _arrow_schema(record_type: type[msgspec.Struct]) -> Any:
    """The Parquet schema of a record type, from its annotations."""
    import pyarrow as pa

    types = {"str": pa.string(), "float": pa.float64(), "int": pa.int64()}
    return pa.schema([pa.field(name, types[text.split(" | ")[0]]) for name, text in _annotations(record_type)])


def _annotations(record_type: type[msgspec.Struct]) -> list[tuple[str, str]]:
    """(field, annotation text) pairs; annotations are strings under ``from __future__ import annotations``."""
    return [(f.name, str(record_type.__annotations__[f.name])) for f in msgspec.structs.fields(record_type)]
