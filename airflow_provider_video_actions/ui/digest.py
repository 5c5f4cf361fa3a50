"""A compact per-video digest of a parse's moments, the data of the task-instance tab, bounded for any output size.

The parse feeds it the records it writes (:meth:`MomentDigest.tap`) and publishes it when done
(:func:`publish`): beside its destination as ``<destination stem>.moments.json``, or in XCom when the records go
to XCom. Either way the XCom key :data:`DIGEST_XCOM_KEY` of the task instance says where it is. The combine of a
sharded parse merges the shards' digests (:func:`merge`). The API server reads only that one small file or XCom.

Per video it keeps the :data:`MAX_MOMENTS` most confident moments, every moment counted per label; at most
:data:`MAX_VIDEOS` videos and :data:`MAX_ERRORS` error records (with their reasons), counting what it left out.
"""

from __future__ import annotations

import heapq
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import msgspec

from airflow_provider_video_actions.job import VideoActionsValueError
from airflow_provider_video_actions.parse.count import shorten
from airflow_provider_video_actions.predictions import RECORD_FIELDS, Columns, ErrorRecord
from airflow_provider_video_actions.writers import arrow_array

#: The XCom key of a parse or combine task instance saying where its digest is (or holding it).
DIGEST_XCOM_KEY = "video_actions_moments"
#: Videos a digest describes; the rest are only counted.
MAX_VIDEOS = 100
#: Moments kept per video, the most confident; the rest are only counted.
MAX_MOMENTS = 100
#: Labels counted per video in the digest (the most frequent).
MAX_LABELS = 50
#: Error records kept, the first met; the rest are only counted.
MAX_ERRORS = 100
#: Labels are cut to this many characters; URIs and error messages to :data:`TEXT_CHARS`.
LABEL_CHARS = 100
TEXT_CHARS = 300
#: A digest file larger than this is refused unread (the limits above keep a digest under ~2.5 MB).
MAX_DIGEST_BYTES = 4 * 1024 * 1024
#: The end of a digest file's name: ``<destination stem>.moments.json``.
DIGEST_SUFFIX = ".moments.json"
#: Where a combined digest goes: ``part-*-of-00008.parquet`` -> ``part-all-of-00008.moments.json``.
COMBINED_PART = "all"

#: One moment in a digest: start and end (seconds), label, confidence.
DigestMoment = tuple[float, float, str, float]


class DigestError(msgspec.Struct, frozen=True):
    """An error record as the tab shows it: the video (if known) and the reason."""

    video_uri: str | None
    message: str
    code: int | None
    kind: str
    file: str
    line: int


class VideoDigest(msgspec.Struct, frozen=True):
    """One video: its most confident moments (by start time), how many it had, counts per label, its errors."""

    video_uri: str
    console_url: str | None
    moments: list[DigestMoment]
    moment_count: int
    more_moments: int
    label_counts: dict[str, int]
    labels_omitted: int
    error_count: int


class Digest(msgspec.Struct, frozen=True):
    """What the tab shows for one parse (or a sharded parse's combine); ``more_*`` count what was left out."""

    videos: list[VideoDigest]
    more_videos: int
    errors: list[DigestError]
    more_errors: int
    moments: int
    errors_total: int
    shards: int = 1
    shards_without_digest: int = 0
    version: int = 1


def console_link(video_uri: str) -> str | None:
    """The Google Cloud console page of a ``gs://`` video; None for another scheme."""
    if not video_uri.startswith("gs://"):
        return None
    bucket, _, name = video_uri[5:].partition("/")
    return f"https://console.cloud.google.com/storage/browser/_details/{quote(bucket)}/{quote(name)}"


class _Video:
    """A video while the digest is built: a min-heap of its most confident moments, counts, error count."""

    __slots__ = ("count", "errors", "labels", "moments")

    def __init__(self) -> None:
        self.moments: list[tuple[float, float, float, str]] = []  # (confidence, start, end, label)
        self.count, self.errors, self.labels = 0, 0, Counter[str]()

    def keep(self, moment: tuple[float, float, float, str], limit: int) -> None:
        """Keep the moment if it is among the ``limit`` most confident so far."""
        if len(self.moments) < limit:
            heapq.heappush(self.moments, moment)
        elif moment > self.moments[0]:
            heapq.heapreplace(self.moments, moment)


class MomentDigest:
    """Builds a :class:`Digest` from a parse's records (or from shards' digests), within fixed limits."""

    def __init__(
        self, max_videos: int = MAX_VIDEOS, max_moments: int = MAX_MOMENTS, max_errors: int = MAX_ERRORS
    ) -> None:
        self.max_videos, self.max_moments, self.max_errors = max_videos, max_moments, max_errors
        self.videos: dict[str, _Video] = {}
        self.errors: list[DigestError] = []
        self.more_errors = self.error_count = self.moment_count = self.more_videos = 0
        self.shards = self.shards_without_digest = 0

    def _video(self, uri: str) -> _Video | None:
        """The video's entry, created while there is room; None once :attr:`max_videos` are described."""
        video = self.videos.get(uri)
        if video is None and len(self.videos) < self.max_videos:
            video = self.videos[uri] = _Video()
        return video

    def add_moments(self, columns: Columns) -> None:
        """Prediction records as columns (in :class:`~airflow_provider_video_actions.predictions.PredictionRecord`
        field order). Once the digest describes :attr:`max_videos`, other videos' rows are only counted."""
        named = dict(zip(RECORD_FIELDS, columns, strict=True))
        uris, labels, starts, ends = named["video_uri"], named["label"], named["time_start"], named["time_end"]
        confidences, videos = named["confidence"], self.videos
        self.moment_count += len(uris)
        full = len(videos) >= self.max_videos
        for row in [i for i, uri in enumerate(uris) if uri in videos] if full else range(len(uris)):
            if (video := self._video(uris[row])) is not None:
                video.count += 1
                video.labels[labels[row]] += 1
                video.keep((confidences[row], starts[row], ends[row], labels[row]), self.max_moments)

    def add_table(self, table: Any) -> None:
        """Prediction records as an Arrow table, with no Python step per row: counts by Arrow kernels, and only
        rows that can still enter a video's most confident moments become Python (see :meth:`_keep_best`)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        videos = table.column("video_uri")
        if len(self.videos) < self.max_videos:
            for uri in pc.unique(videos).to_pylist():
                if self._video(uri) is None:
                    break
        self.moment_count += table.num_rows
        # arrow_array, not pa.array: its first call imports pandas (~0.8 CPU s) to check the argument's type.
        described = table.filter(pc.is_in(videos, value_set=arrow_array(list(self.videos), pa.string())))
        if not described.num_rows:
            return
        # Counted per (video, label) by one kernel; Arrow's group-by would import its query engine (~0.7 s).
        separator = arrow_array(["\x00"], pa.string())[0]  # an Arrow scalar: a Python one would import pandas
        pairs = pc.binary_join_element_wise(described.column("video_uri"), described.column("label"), separator)
        for pair in pc.value_counts(pairs).to_pylist():
            uri, _, label = pair["values"].partition("\x00")
            video = self.videos[uri]
            video.count += pair["counts"]
            video.labels[label] += pair["counts"]
        self._keep_best(described.take(pc.sort_indices(described, [("confidence", "descending")])))

    def _keep_best(self, rows: Any) -> None:
        """Offer rows, most confident first, to their videos' moments; stop at the first batch none could take."""
        for batch in rows.to_batches(max_chunksize=4096):
            uris, confidences, starts, ends, labels = (
                batch.column(name).to_pylist()
                for name in ("video_uri", "confidence", "time_start", "time_end", "label")
            )
            if confidences[0] < self._floor():
                return
            for uri, confidence, start, end, label in zip(uris, confidences, starts, ends, labels, strict=True):
                self.videos[uri].keep((confidence, start, end, label), self.max_moments)

    def _floor(self) -> float:
        """The confidence below which no described video takes a moment (-inf while one has room)."""
        floors = [v.moments[0][0] if len(v.moments) >= self.max_moments else -math.inf for v in self.videos.values()]
        return min(floors, default=-math.inf)

    def add_errors(self, columns: Columns) -> None:
        """Error records as columns (in :class:`~airflow_provider_video_actions.predictions.ErrorRecord` order)."""
        for record in map(ErrorRecord, *columns):
            self.error_count += 1
            if record.video_uri is not None and (video := self._video(record.video_uri)) is not None:
                video.errors += 1
            if len(self.errors) < self.max_errors:
                self.errors.append(_error(record))
            else:
                self.more_errors += 1

    def add_digest(self, digest: Digest) -> None:
        """A shard's digest: its videos, moments, counts and errors join this one's."""
        self.shards += digest.shards
        self.shards_without_digest += digest.shards_without_digest
        self.moment_count += digest.moments
        self.error_count += digest.errors_total
        self.more_videos += digest.more_videos
        self.more_errors += digest.more_errors
        for part in digest.videos:
            if (video := self._video(part.video_uri)) is None:
                self.more_videos += 1
                continue
            video.count += part.moment_count
            video.errors += part.error_count
            video.labels.update(part.label_counts)
            for start, end, label, confidence in part.moments:
                video.keep((confidence, start, end, label), self.max_moments)
        room = self.max_errors - len(self.errors)
        self.errors += digest.errors[:room]
        self.more_errors += len(digest.errors[room:])

    def tap(self, records: Any, errors: Any) -> tuple[Any, Any]:
        """The parse's two sinks, wrapped so that what they are sent also feeds this digest."""
        return _Tap(records, self.add_moments, self.add_table), _Tap(errors, self.add_errors, None)

    def digest(self, videos_total: int | None = None) -> Digest:
        """The digest so far; ``videos_total`` (the parse's count) tells how many videos it left out."""
        more_videos = self.more_videos
        if videos_total is not None and len(self.videos) == self.max_videos:  # else no video was left out
            more_videos = max(more_videos, videos_total - sum(1 for v in self.videos.values() if v.count))
        return Digest(
            videos=[_video_digest(uri, video) for uri, video in sorted(self.videos.items())],
            more_videos=more_videos,
            errors=self.errors,
            more_errors=self.more_errors,
            moments=self.moment_count,
            errors_total=self.error_count,
            shards=max(self.shards, 1),
            shards_without_digest=self.shards_without_digest,
        )


class _Tap:
    """A sink that feeds what it is sent to a digest first; everything else is the wrapped sink's."""

    def __init__(self, sink: Any, columns: Any, table: Any) -> None:
        self._sink, self._columns, self._table = sink, columns, table

    def write(self, columns: Columns) -> None:
        self._columns(columns)
        self._sink.write(columns)

    def write_table(self, table: Any) -> None:
        self._table(table)
        self._sink.write_table(table)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)


def _error(record: ErrorRecord) -> DigestError:
    """An error record, its texts shortened."""
    return DigestError(
        video_uri=shorten(record.video_uri, TEXT_CHARS),
        message=shorten(record.message, TEXT_CHARS) or "",
        code=record.code,
        kind=record.kind,
        file=shorten(record.file, TEXT_CHARS) or "",
        line=record.line,
    )


def _video_digest(uri: str, video: _Video) -> VideoDigest:
    """A built video's digest: moments by start time, the most frequent labels."""
    moments = sorted(
        (round(start, 3), round(end, 3), shorten(label, LABEL_CHARS) or "", round(confidence, 4))
        for confidence, start, end, label in video.moments
    )
    labels = Counter[str]()
    for label, count in video.labels.most_common(MAX_LABELS):
        labels[shorten(label, LABEL_CHARS) or ""] += count
    return VideoDigest(
        video_uri=shorten(uri, TEXT_CHARS) or "",
        console_url=console_link(uri) if len(uri) <= TEXT_CHARS else None,
        moments=moments,
        moment_count=video.count,
        more_moments=video.count - len(moments),
        label_counts=dict(sorted(labels.items())),
        labels_omitted=max(len(video.labels) - MAX_LABELS, 0),
        error_count=video.errors,
    )


def digest_uri(destination: str) -> str:
    """Where the digest of a parse writing ``destination`` goes: beside it, ``<stem>.moments.json``."""
    return os.path.splitext(destination)[0] + DIGEST_SUFFIX


def combined_digest_uri(dataset: str) -> str:
    """Where a combine writes the merged digest of a dataset's parts: ``.../part-*-of-00008.parquet`` ->
    ``.../part-all-of-00008.moments.json``."""
    head, _, tail = dataset.rpartition("-*-of-")
    return digest_uri(f"{head}-{COMBINED_PART}-of-{tail}" if head else dataset.replace("*", COMBINED_PART))


def encode(digest: Digest) -> bytes:
    """The digest as JSON."""
    return msgspec.json.encode(digest)


def as_json(digest: Digest) -> dict[str, Any]:
    """The digest as JSON types (lists, not tuples): for XCom and the API's answer."""
    return msgspec.json.decode(encode(digest))


def decode(data: bytes | str, where: str) -> Digest:
    """A digest from JSON, refused (naming ``where`` it came from) when too large or not a digest."""
    if len(data) > MAX_DIGEST_BYTES:
        raise VideoActionsValueError(
            f"The digest at {where} is larger than {MAX_DIGEST_BYTES} bytes: not a digest this provider wrote."
        )
    try:
        return msgspec.json.decode(data, type=Digest)
    except msgspec.DecodeError as exc:
        raise VideoActionsValueError(f"The digest at {where} is not a moment digest: {exc}") from None


def from_xcom(value: Any, where: str) -> Digest:
    """A digest kept in XCom (a parse returning its records in XCom), checked like a file's."""
    try:
        return msgspec.convert(value, type=Digest)
    except msgspec.ValidationError as exc:
        raise VideoActionsValueError(f"The digest in {where} is not a moment digest: {exc}") from None


def storage_client(gcp_conn_id: str, impersonation_chain: str | Sequence[str] | None, uri: str) -> Any:
    """The storage hook's client for a ``gs://`` URI (the task's connection), else None."""
    if not uri.startswith("gs://"):
        return None
    from airflow_provider_video_actions.hooks.storage import VideoActionStorageHook

    return VideoActionStorageHook(gcp_conn_id=gcp_conn_id, impersonation_chain=impersonation_chain).storage_client


def read(client: Any, uri: str) -> Digest | None:
    """The digest file at ``uri`` (at most :data:`MAX_DIGEST_BYTES` + 1 bytes read), or None if there is none."""
    from google.api_core.exceptions import NotFound

    from airflow_provider_video_actions import gcs

    try:
        data = gcs.read_head(client, uri, MAX_DIGEST_BYTES + 1)
    except (FileNotFoundError, NotFound):
        return None
    return decode(data, uri)


def publish(context: Mapping[str, Any], digest: Digest, *, uri: str | None, client: Any, **conn: Any) -> str:
    """Write the digest to ``uri`` (None: keep it in XCom, beside the records); push where it is; return that.

    ``conn`` is the task's ``gcp_conn_id`` and ``impersonation_chain``: the API server reads the file with them.
    Without a task instance in ``context`` (an operator executed by hand) nothing is pushed.
    """
    if uri is None:
        where, pointer = f"XCom {DIGEST_XCOM_KEY!r}", {"digest": as_json(digest)}
    else:
        from airflow_provider_video_actions import gcs

        gcs.write_text(client, uri, encode(digest), "application/json")
        where, pointer = uri, {"uri": uri, **conn}
    if (ti := context.get("ti")) is not None:
        ti.xcom_push(key=DIGEST_XCOM_KEY, value=pointer)
    return where


def merge(client: Any, part_uris: Iterable[str]) -> Digest:
    """One digest from the digests beside a sharded parse's parts. A part without one, or with a file that is not
    one, is counted (the tab says how many), not fatal: the combine's summary does not depend on it."""
    merged = MomentDigest()
    for part in part_uris:
        try:
            shard = read(client, digest_uri(part))
        except VideoActionsValueError:
            shard = None
        if shard is None:
            merged.shards += 1
            merged.shards_without_digest += 1
        else:
            merged.add_digest(shard)
    return merged.digest()
