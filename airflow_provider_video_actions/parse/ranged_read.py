"""Reads ``gs://`` objects by concurrent ranged GETs ahead of the parse, so the download and the parse overlap.

``blob.open("rb")`` fetches one range only when the reader asks for it, so the parse waits for each download
and the download for each parse; it also streams every response through 8 KiB pieces. Here a pool of
``concurrency`` threads fetches the next ranges (across objects: the next file's first range comes while
this file's last is parsed), each range in one read of the response (``single_shot_download``), with at most
``max_buffered`` ranges in flight or waiting: the memory held is about ``max_buffered * range_bytes``.

Checksums: GCS keeps only whole-object hashes, so one range cannot be checked on its own (the client computes
a range's checksum, then drops it unchecked for a 206 answer). Ranges are read with ``checksum=None`` and
each object's CRC32C is computed over its bytes in order and compared with the one in its metadata at its
end. Each range is pinned to the generation the metadata named, so the ranges of one object are never of
two versions: an object replaced or deleted while it is read fails with :class:`ObjectReadError`.

Ranges are of the stored bytes (``raw_download``: nothing decompressed); an object stored gzip-encoded is
refused, since its byte ranges are of the compressed stream (Vertex AI writes its output uncompressed).
"""

from __future__ import annotations

import base64
import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING

import google_crc32c

from airflow_provider_video_actions.errors import VideoActionsValueError
from airflow_provider_video_actions.job import split_gcs_uri
from airflow_provider_video_actions.validators import check_positive

if TYPE_CHECKING:
    from google.cloud import storage

#: Bytes per ranged GET: one request's overhead is small beside 4 MiB (8 and 16 MiB read no faster here, and a
#: range is held up to three times while it downloads).
RANGE_BYTES = 4 * 1024 * 1024
#: Ranged GETs at once: 2 kept the parse fed on the emulator (1 to 4 measured); raise it where each request waits
#: longer for its first byte (GCS serves many concurrent reads of one object).
CONCURRENCY = 2
#: At most this many ranged GETs at once: the read-ahead holds (reads + 2) ranges, so the bound is on memory too.
MAX_CONCURRENCY = 32


class ObjectReadError(RuntimeError):
    """An object could not be read whole and as one version: it changed, vanished or arrived corrupted."""


@dataclass(frozen=True)
class _Range:
    """Bytes ``start``..``end`` (inclusive) of one generation of an object; ``last`` ends the object."""

    uri: str
    bucket: storage.Bucket | None
    name: str
    generation: int | None
    crc32c: str | None  # the object's, base64 of the big-endian CRC32C, as GCS gives it
    start: int
    end: int
    last: bool


@dataclass(frozen=True)
class ReadAhead:
    """How ``gs://`` objects are read ahead: ``concurrency`` ranged GETs of ``range_bytes`` at once, with at most
    ``max_buffered`` ranges in flight or waiting (None: ``concurrency + 2``, enough to keep every read busy while
    the parse takes one). The memory held is about ``max_buffered * range_bytes``."""

    concurrency: int = CONCURRENCY
    range_bytes: int = RANGE_BYTES
    max_buffered: int | None = None

    def __post_init__(self) -> None:
        check_positive(self.concurrency, "gcs_read_concurrency", integer=True)
        if self.concurrency > MAX_CONCURRENCY:
            raise VideoActionsValueError(
                f"gcs_read_concurrency={self.concurrency} is more than {MAX_CONCURRENCY} ranged reads at once; each "
                f"holds {self.range_bytes // 2**20} MiB ahead of the parse: give at most {MAX_CONCURRENCY}."
            )
        check_positive(self.range_bytes, "range_bytes", integer=True)
        if self.max_buffered is not None:
            check_positive(self.max_buffered, "max_buffered", integer=True)

    @property
    def window(self) -> int:
        """Ranges in flight or waiting, at most."""
        return self.concurrency + 2 if self.max_buffered is None else self.max_buffered


#: The read-ahead a parse uses unless told otherwise.
DEFAULT = ReadAhead()


def read_ahead(client: storage.Client, uris: Iterable[str], spec: ReadAhead = DEFAULT) -> Iterator[tuple[str, bytes]]:
    """``(uri, bytes)`` for every range of every object, in order (an empty object gives none).

    Up to ``spec.concurrency`` ranges are fetched at once and at most ``spec.window`` are in flight or waiting.
    A failed range raises here, in order; a caller that stops early leaves no fetch running.
    """
    with ThreadPoolExecutor(spec.concurrency, thread_name_prefix="video-actions-range") as pool:
        window: deque[tuple[_Range, Future[bytes]]] = deque()
        scheduled = _scheduled(pool, _ranges(client, uris, spec.range_bytes))
        try:
            window.extend(itertools.islice(scheduled, spec.window))
            crc = 0
            while window:
                part, fetched = window.popleft()
                window.extend(itertools.islice(scheduled, 1))
                data = fetched.result()
                crc = google_crc32c.extend(crc, data)
                if part.last:
                    _check_crc32c(part, crc)
                    crc = 0
                yield part.uri, data
        finally:
            for _, pending in window:
                pending.cancel()


def streams(
    client: storage.Client, uris: Iterable[str], spec: ReadAhead = DEFAULT
) -> Iterator[tuple[str, RangeStream]]:
    """Each non-empty object in turn as a binary stream of its bytes, read ahead by :func:`read_ahead`.

    A stream is valid until the next one is taken; the unread rest of a stream is skipped.
    """
    for uri, ranges in itertools.groupby(read_ahead(client, uris, spec), key=itemgetter(0)):
        yield uri, RangeStream(data for _, data in ranges)


class RangeStream:
    """One object's ranges as a binary stream: :meth:`read` gives the next bytes, ``b""`` at the end."""

    def __init__(self, ranges: Iterator[bytes]) -> None:
        self._ranges = ranges
        self._data, self._at = b"", 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (the rest of the current range for a negative size), ``b""`` at the end."""
        while self._at >= len(self._data):
            self._data, self._at = next(self._ranges, b""), 0  # a range is never empty: b"" is the end
            if not self._data:
                return b""
        if self._at == 0 and (size < 0 or size >= len(self._data)):
            self._at = len(self._data)
            return self._data  # a whole range, not copied
        end = len(self._data) if size < 0 else self._at + size
        piece = self._data[self._at : end]
        self._at += len(piece)
        return piece


def _scheduled(pool: ThreadPoolExecutor, ranges: Iterator[_Range]) -> Iterator[tuple[_Range, Future[bytes]]]:
    """Each range with its fetch, submitted when taken; an error finding the ranges comes as a failed fetch, in
    its turn (after the ranges before it), and ends them."""
    try:
        for part in ranges:
            yield part, pool.submit(_fetch, part)
    except Exception as exc:  # raised by the read_ahead loop, in order
        failed: Future[bytes] = Future()
        failed.set_exception(exc)
        yield _Range("", None, "", None, None, 0, -1, last=False), failed


def _ranges(client: storage.Client, uris: Iterable[str], range_bytes: int) -> Iterator[_Range]:
    """The ranges of each object, in order, from its metadata (size, generation) read just before."""
    for uri in uris:
        bucket, name = split_gcs_uri(uri, "uri")
        blob = client.bucket(bucket).get_blob(name)
        if blob is None:
            raise ObjectReadError(f"{uri} was listed but no longer exists: it was deleted while the parse ran.")
        if blob.content_encoding == "gzip":
            raise VideoActionsValueError(
                f"{uri} is stored gzip-compressed (Content-Encoding: gzip), which cannot be read in byte ranges: "
                "upload the job's output files as they are, uncompressed."
            )
        size, pinned = int(blob.size or 0), (blob.bucket, name, blob.generation, blob.crc32c)
        for start in range(0, size, range_bytes):
            end = min(start + range_bytes, size) - 1
            yield _Range(uri, *pinned, start, end, last=end == size - 1)


def _fetch(part: _Range) -> bytes:
    """One range of the pinned generation, in one read of the response (the client retries transient errors).

    Each range gets a Blob of its own: the client rewrites a Blob's generation and hashes from every response's
    headers, so one shared between threads would not stay pinned. The response's bytes are kept as they arrive
    (:class:`_Received`), not copied into a buffer and out again as ``download_as_bytes`` does.
    """
    from google.api_core.exceptions import NotFound

    blob = part.bucket.blob(part.name, generation=part.generation)
    received = _Received()
    try:
        blob.download_to_file(
            received, start=part.start, end=part.end, checksum=None, raw_download=True, single_shot_download=True
        )
    except NotFound as exc:
        raise ObjectReadError(
            f"{part.uri} changed while it was read: generation {part.generation} was replaced or deleted "
            f"(at byte {part.start:,}). Parse again once the files are final."
        ) from exc
    data = received.data()
    if len(data) != part.end - part.start + 1:
        raise ObjectReadError(
            f"{part.uri}: bytes {part.start:,}-{part.end:,} of generation {part.generation} came back as "
            f"{len(data):,} bytes, not {part.end - part.start + 1:,}."
        )
    return data


class _Received:
    """A write-only stream that keeps the pieces written to it: one, unless a retry resumed the range."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []

    def write(self, piece: bytes) -> int:
        self._pieces.append(piece)
        return len(piece)

    def data(self) -> bytes:
        """Every piece, in order; a single piece as it arrived."""
        return self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)


def _check_crc32c(part: _Range, crc: int) -> None:
    """Refuse an object whose bytes, read whole, do not have the CRC32C its metadata names."""
    if part.crc32c is None:
        return
    expected = int.from_bytes(base64.b64decode(part.crc32c), "big")
    if crc != expected:
        raise ObjectReadError(
            f"{part.uri}: the bytes read have CRC32C {crc:08x}, but generation {part.generation} has "
            f"{expected:08x}: the download was corrupted. Parse again."
        )
