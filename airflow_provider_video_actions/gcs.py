"""Objects the job reads and writes: instances files, videos, prediction outputs, parsed results.

URIs are ``gs://bucket/path`` (through the real ``google.cloud.storage`` client, so the hook's
credentials and ``STORAGE_EMULATOR_HOST`` apply), ``file://`` paths (local runs and benchmarks), or
any other fsspec URL (``s3://``, ``memory://``... when its fsspec implementation is installed).
Reads and writes stream in chunks; a written GCS object appears only when its upload completes, a
local file is written to a temporary name and renamed, and a failed fsspec write is removed, so a
failed write never leaves a half-written destination.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_video_actions.job import split_gcs_uri

if TYPE_CHECKING:
    from google.cloud import storage

#: Read and upload in chunks of this size: large enough for throughput, small enough for memory.
CHUNK_BYTES = 4 * 1024 * 1024
#: Parse output files this many bytes of whole lines at a time: decoded, a chunk takes several times its size
#: (1 MiB measured as fast as 4 MiB, with ~20 MB less peak RSS).
LINES_CHUNK_BYTES = 1024 * 1024


def _local_path(uri: str) -> str | None:
    """The filesystem path of a ``file://`` URI, or None for another URI."""
    return uri.removeprefix("file://") if uri.startswith("file://") else None


def _fsspec(uri: str) -> tuple[Any, str] | None:
    """The fsspec filesystem and path of a URI that is neither gs:// nor file://, else None."""
    if uri.startswith(("gs://", "file://")):
        return None
    from fsspec.core import url_to_fs

    return url_to_fs(uri)


def list_objects(client: storage.Client, prefix_uri: str) -> list[str]:
    """URIs of every object under a prefix, sorted by name."""
    if (path := _local_path(prefix_uri)) is not None:
        return sorted(
            f"file://{os.path.join(root, name)}" for root, _, names in os.walk(path.rstrip("/")) for name in names
        )
    if (fs_path := _fsspec(prefix_uri)) is not None:
        fs, path = fs_path
        return sorted(fs.unstrip_protocol(name) for name in fs.find(path))
    bucket, prefix = split_gcs_uri(prefix_uri, "prefix", want_object=False)
    return sorted(f"gs://{bucket}/{blob.name}" for blob in client.list_blobs(bucket, prefix=prefix))


def list_videos(client: storage.Client, prefix_uri: str, extensions: Collection[str]) -> list[str]:
    """URIs of the video files under a prefix with one of ``extensions`` (the model family's), sorted."""
    return [uri for uri in list_objects(client, prefix_uri) if os.path.splitext(uri)[1].lower() in extensions]


def output_files(client: storage.Client, output_directory: str) -> tuple[list[str], list[str]]:
    """The ``predictions*`` and ``errors*`` files of a job's output directory, each sorted by name.

    Gemini jobs may also write an ``incremental_predictions/`` folder repeating lines: it is skipped.
    """
    uris = [u for u in list_objects(client, output_directory.rstrip("/") + "/") if "/incremental_predictions/" not in u]
    base = [(uri, uri.rsplit("/", 1)[-1]) for uri in uris]
    predictions = [uri for uri, name in base if name.startswith("predictions")]
    errors = [uri for uri, name in base if name.startswith("errors")]
    return predictions, errors


@contextmanager
def open_read(client: storage.Client, uri: str) -> Iterator[IO[bytes]]:
    """Open an object for streaming binary reads (chunked ranged GETs on GCS)."""
    if (path := _local_path(uri)) is not None:
        with open(path, "rb") as handle:
            yield handle
        return
    if (fs_path := _fsspec(uri)) is not None:
        fs, path = fs_path
        with fs.open(path, "rb", block_size=CHUNK_BYTES) as handle:
            yield handle
        return
    bucket, name = split_gcs_uri(uri, "uri")
    with client.bucket(bucket).blob(name, chunk_size=CHUNK_BYTES).open("rb") as handle:
        yield handle


@contextmanager
def open_write(client: storage.Client, uri: str, content_type: str) -> Iterator[IO[bytes]]:
    """Open an object for streaming binary writes that appear only when complete."""
    if (path := _local_path(uri)) is not None:
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=directory, prefix=".tmp-", delete=False)  # noqa: SIM115 - renamed on success
        try:
            with handle:
                yield handle
            os.replace(handle.name, path)
        finally:
            if os.path.exists(handle.name):
                os.unlink(handle.name)
        return
    if (fs_path := _fsspec(uri)) is not None:
        with _fsspec_write(*fs_path) as handle:
            yield handle
        return
    bucket, name = split_gcs_uri(uri, "uri")
    blob = client.bucket(bucket).blob(name, chunk_size=CHUNK_BYTES)
    with blob.open("wb", content_type=content_type, ignore_flush=True) as handle:
        yield handle


@contextmanager
def _fsspec_write(fs: Any, path: str) -> Iterator[IO[bytes]]:
    """Write through fsspec (object stores publish on close), removing whatever a failed write left."""
    try:
        with fs.open(path, "wb", block_size=CHUNK_BYTES) as handle:
            yield handle
    except BaseException:
        if fs.exists(path):
            fs.rm(path)
        raise


def iter_chunks(handle: IO[bytes], size: int = LINES_CHUNK_BYTES) -> Iterator[bytes]:
    """Split a binary stream into chunks of whole lines, about ``size`` bytes each.

    A line longer than ``size`` makes a longer chunk; a trailing partial line is the last chunk.
    """
    rest = b""
    while chunk := handle.read(size):
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            rest += chunk
            continue
        whole, rest = rest + chunk[:cut], chunk[cut:]
        yield whole
    if rest:
        yield rest


def write_text(client: storage.Client, uri: str, text: str, content_type: str = "text/plain") -> None:
    """Write a small object in one request, retrying transient errors (callers write the same text again)."""
    if not uri.startswith("gs://"):
        with open_write(client, uri, content_type) as handle:
            handle.write(text.encode())
        return
    from google.cloud.storage.retry import DEFAULT_RETRY

    bucket, name = split_gcs_uri(uri, "uri")
    client.bucket(bucket).blob(name).upload_from_string(text, content_type=content_type, retry=DEFAULT_RETRY)


def object_version(client: storage.Client, uri: str) -> str | None:
    """The version of a ``gs://`` object (generation and CRC32C), or None when it does not exist."""
    bucket, path = split_gcs_uri(uri, "uri")
    blob = client.bucket(bucket).get_blob(path)
    return None if blob is None else f"{blob.generation}:{blob.crc32c}"
