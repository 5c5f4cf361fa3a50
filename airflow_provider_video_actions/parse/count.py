"""The count stage: what a parse saw, counted so that every line is accounted for.

Counts add up: ``lines = instances + job_errors + malformed_lines + invalid_lines`` (every non-blank
line is one of these) and ``moments = rows + filtered_moments + invalid_moments`` (every moment of a
served instance is a record, dropped by the user's filters, or an ``invalid`` error record).
"""

from __future__ import annotations

import array
import bisect
import operator
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_video_actions.predictions import (
    INVALID_LINE,
    INVALID_MOMENT,
    JOB_ERROR,
    MALFORMED,
    RECORD_FIELDS,
    Columns,
    DecodedChunk,
    ErrorRecord,
)

_contents = operator.attrgetter("content")


ERROR_SAMPLES = 5
VIDEO_BUCKETS = 64
#: The summary names at most this many labels, the most frequent (the rest are counted in ``labels_omitted``).
SUMMARY_LABELS = 1000
#: Text in the summary and the logs (labels, error messages, URIs) is cut to this many characters.
SUMMARY_TEXT_CHARS = 500


#: Hashes are 64-bit signed; bucket ``k`` holds the ``k``-th of :data:`VIDEO_BUCKETS` equal ranges of them, so a
#: sorted chunk of hashes goes to its buckets as slices (no Python work per video).
_BUCKET_BOUNDS = [-(2**63) + (k * 2**64) // VIDEO_BUCKETS for k in range(1, VIDEO_BUCKETS)]


def video_hashes(videos: Iterable[str]) -> array.array:
    """The distinct videos of a chunk as sorted 64-bit hashes (what :meth:`ParseStats.add_kept` counts)."""
    return array.array("q", sorted(set(map(hash, videos))))


def _deduplicate(bucket: array.array) -> int:
    """Keep each hash of the bucket once (in place, order not kept) and return how many remain.

    With pyarrow installed its hash kernel does it in C (a Python set costs ~10x more); without, a set.
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        distinct = array.array("q", set(bucket))
    else:
        hashes = pa.Array.from_buffers(pa.int64(), len(bucket), [None, pa.py_buffer(bucket)])
        unique = pc.unique(hashes)
        del hashes  # it holds the bucket's buffer, which must be free to resize
        distinct = array.array("q")
        distinct.frombytes(memoryview(unique.buffers()[1])[: len(unique) * distinct.itemsize])
    bucket[:] = distinct
    return len(bucket)


def shorten(text: str | None, limit: int = SUMMARY_TEXT_CHARS) -> str | None:
    """The text cut to ``limit`` characters, with a marker saying how much was cut (None stays None)."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


@dataclass
class ParseStats:
    """What one parse saw: counts for the summary and a few error samples."""

    lines: int = 0
    rows: int = 0
    instances: int = 0
    #: Checked moments of served instances (invalid ones are counted as errors).
    moments: int = 0
    filtered_moments: int = 0
    #: 64-bit hashes of the videos seen, 8 bytes each (a set of the URIs would take ~150 bytes a video), kept in
    #: :data:`VIDEO_BUCKETS` buckets by value range so that counting them needs one bucket's hash table at a time.
    video_buckets: list[array.array] = field(default_factory=lambda: [array.array("q") for _ in range(VIDEO_BUCKETS)])
    #: Per bucket, its length after it was last deduplicated: it is deduplicated again when it doubles (amortised
    #: O(1) a hash), so memory follows distinct videos, not instances.
    _distinct_hashes: list[int] = field(default_factory=lambda: [1] * VIDEO_BUCKETS, repr=False)
    label_counts: Counter[str] = field(default_factory=Counter)
    #: Error records by kind.
    error_kinds: Counter[str] = field(default_factory=Counter)
    error_samples: list[dict[str, Any]] = field(default_factory=list)

    def add_lines(self, lines: int) -> None:
        """Count non-blank lines read (each becomes an instance or an error record)."""
        self.lines += lines

    def add_records(self, columns: Columns, decoded: DecodedChunk) -> None:
        """Count a chunk's served instances, their moments and the records kept from them."""
        self.add_kept(
            len(decoded.instances),
            sum(map(len, decoded.moments)),
            video_hashes(map(_contents, decoded.instances)),
            len(columns[0]),
            Counter(columns[RECORD_FIELDS.index("label")]).items(),
        )

    def add_kept(
        self, instances: int, moments: int, hashes: array.array, rows: int, labels: Iterable[tuple[str, int]]
    ) -> None:
        """Count served instances (their videos, as :func:`video_hashes`), checked moments, and the records kept of
        them by label."""
        self.instances += instances
        self.moments += moments
        buckets, distinct = self.video_buckets, self._distinct_hashes
        start = 0
        for index, bound in enumerate([*_BUCKET_BOUNDS, None]):
            end = len(hashes) if bound is None else bisect.bisect_left(hashes, bound, start)
            if end > start:
                buckets[index].extend(hashes[start:end])
                if len(buckets[index]) >= 2 * distinct[index]:
                    distinct[index] = _deduplicate(buckets[index])
            start = end
        self.rows += rows
        self.filtered_moments += moments - rows
        for label, count in labels:
            self.label_counts[label] += count

    def add_error(self, error: ErrorRecord) -> None:
        """Count an error record by kind and keep it as a sample (its text shortened) if there is room."""
        self.error_kinds[error.kind] += 1
        if len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(
                {
                    "kind": error.kind,
                    "video": shorten(error.video_uri),
                    "code": error.code,
                    "message": shorten(error.message),
                    "file": shorten(error.file),
                    "line": error.line,
                }
            )

    @property
    def errors(self) -> int:
        """Error records of every kind."""
        return sum(self.error_kinds.values())

    @property
    def malformed_lines(self) -> int:
        """Lines that could not be read (the count ``max_malformed_lines`` bounds)."""
        return self.error_kinds[MALFORMED]

    def summary_label_counts(self) -> tuple[dict[str, int], int]:
        """The most frequent labels (names shortened) with their counts, by name; and how many were left out."""
        kept: Counter[str] = Counter()
        for label, count in self.label_counts.most_common(SUMMARY_LABELS):
            kept[shorten(label) or ""] += count
        return dict(sorted(kept.items())), max(len(self.label_counts) - SUMMARY_LABELS, 0)

    @property
    def videos(self) -> int:
        """How many distinct videos were served (by 64-bit hash: a collision is negligible)."""
        return sum(map(_deduplicate, self.video_buckets))

    def summary(self) -> dict[str, Any]:
        """The JSON-able part of the parse operator's return value, bounded whatever the output holds."""
        label_counts, labels_omitted = self.summary_label_counts()
        return {
            "rows": self.rows,
            "instances": self.instances,
            "videos": self.videos,
            "lines": self.lines,
            "moments": self.moments + self.error_kinds[INVALID_MOMENT],
            "filtered_moments": self.filtered_moments,
            "errors": self.errors,
            "job_errors": self.error_kinds[JOB_ERROR],
            "malformed_lines": self.error_kinds[MALFORMED],
            "invalid_lines": self.error_kinds[INVALID_LINE],
            "invalid_moments": self.error_kinds[INVALID_MOMENT],
            "label_counts": label_counts,
            "labels_omitted": labels_omitted,
            "error_samples": self.error_samples,
        }
