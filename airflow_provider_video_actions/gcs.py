"""Objects the job reads and writes: instances files, videos, prediction outputs, parsed results.

URIs are ``gs://bucket/path`` (through the real ``google.cloud.storage`` client, so the hook's
credentials and ``STORAGE_EMULATOR_HOST`` apply), ``file://`` paths (``file:///path`` or
``file://localhost/path``, RFC 8089; local runs and benchmarks), or any other fsspec URL (``s3://``,
``memory://``... when its fsspec implementation is installed and the caller opted in).
Reads and writes stream in chunks; a written GCS object appears only when its upload completes, a
local file is written to a temporary file in the same directory and renamed over the destination
(keeping an existing file's mode), and a failed fsspec write is removed, so a failed write never
leaves a half-written destination.
"""

from __future__ import annotations

import os
import posixpath
import secrets
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_video_actions.job import VideoActionsValueError, split_gcs_uri

if TYPE_CHECKING:
    from google.cloud import storage

    from airflow_provider_video_actions.window import CreationWindow

#: Read and upload in chunks of this size: large enough for throughput, small enough for memory.
CHUNK_BYTES = 4 * 1024 * 1024


def local_path(uri: str) -> str | None:
    """The filesystem path of a ``file://`` URI (RFC 8089: no host or ``localhost``), or None for another URI."""
    if not uri.startswith("file://"):
        return None
    host, _, path = uri.removeprefix("file://").partition("/")
    if host.lower() not in ("", "localhost"):
        raise VideoActionsValueError(
            f"{uri!r} names host {host!r}: a file:// URI is a local path, file:///path or file://localhost/path."
        )
    return "/" + path


def _fsspec(uri: str) -> tuple[Any, str] | None:
    """The fsspec filesystem and path of a URI that is neither gs:// nor file://, else None."""
    if uri.startswith(("gs://", "file://")):
        return None
    from fsspec.core import url_to_fs

    return url_to_fs(uri)


def list_objects(client: storage.Client, prefix_uri: str) -> list[str]:
    """URIs of every object under a prefix, sorted by name."""
    if (path := local_path(prefix_uri)) is not None:
        return sorted(
            f"file://{os.path.join(root, name)}" for root, _, names in os.walk(path.rstrip("/")) for name in names
        )
    if (fs_path := _fsspec(prefix_uri)) is not None:
        fs, path = fs_path
        return sorted(fs.unstrip_protocol(name) for name in fs.find(path))
    bucket, prefix = split_gcs_uri(prefix_uri, "prefix", want_object=False)
    return sorted(f"gs://{bucket}/{blob.name}" for blob in client.list_blobs(bucket, prefix=prefix))


def list_videos(
    client: storage.Client, prefix_uri: str, extensions: Collection[str], created_in: CreationWindow | None = None
) -> list[str]:
    """URIs of the video files under a prefix with one of ``extensions`` (the model family's), sorted.

    With ``created_in`` (a ``gs://`` prefix only), just the objects whose ``timeCreated`` lies in that
    half-open window, read from the listing itself (no request per object).
    """
    if created_in is None:
        return [uri for uri in list_objects(client, prefix_uri) if os.path.splitext(uri)[1].lower() in extensions]
    bucket, prefix = split_gcs_uri(prefix_uri, "videos_prefix", want_object=False)
    listing = client.list_blobs(bucket, prefix=prefix, fields="items(name,timeCreated),nextPageToken")
    return sorted(
        f"gs://{bucket}/{blob.name}"
        for blob in listing
        if os.path.splitext(blob.name)[1].lower() in extensions and blob.time_created in created_in
    )


def list_folder(client: storage.Client, folder_uri: str) -> tuple[dict[str, int], list[str]]:
    """The objects directly in a folder (name -> size in bytes) and its subfolders' names (not recursive), sorted."""
    folder = folder_uri.rstrip("/") + "/"
    if (path := local_path(folder)) is not None:
        if not os.path.isdir(path):
            return {}, []
        with os.scandir(path) as entries:
            found = [(entry.name, entry.is_dir(), 0 if entry.is_dir() else entry.stat().st_size) for entry in entries]
    elif (fs_path := _fsspec(folder)) is not None:
        fs, path = fs_path
        found = [
            (entry["name"].rstrip("/").rsplit("/", 1)[-1], entry["type"] == "directory", entry.get("size"))
            for entry in fs.ls(path, detail=True)
        ]
    else:
        bucket, prefix = split_gcs_uri(folder, "folder", want_object=False)
        listing = client.list_blobs(bucket, prefix=prefix, delimiter="/")
        found = [(blob.name[len(prefix) :], False, blob.size) for blob in listing]
        # The prefixes are known once the pages are read.
        found += [(sub[len(prefix) :].rstrip("/"), True, 0) for sub in listing.prefixes]
    files = {name: int(size or 0) for name, is_dir, size in sorted(found) if not is_dir}
    return files, sorted(name for name, is_dir, _ in found if is_dir)


def same_or_inside(uri: str, directory_uri: str) -> bool:
    """Whether ``uri`` is the directory or lies anywhere under it (local paths compared resolved)."""
    if (path := local_path(uri)) is not None:
        folder = local_path(directory_uri) if directory_uri.startswith("file://") else None
        if folder is None:
            return False
        path, folder = os.path.realpath(path), os.path.realpath(folder)
        return os.path.commonpath([path, folder]) == folder
    directory = directory_uri.rstrip("/")
    return uri == directory or uri.startswith(directory + "/")


@contextmanager
def open_read(client: storage.Client, uri: str) -> Iterator[IO[bytes]]:
    """Open an object for streaming binary reads (chunked ranged GETs on GCS)."""
    if (path := local_path(uri)) is not None:
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
    """Open an object for streaming binary writes that appear, whole, only when complete."""
    if (path := local_path(uri)) is not None:
        with _local_write(path) as handle:
            yield handle
        return
    if (fs_path := _fsspec(uri)) is not None:
        with _fsspec_write(*fs_path) as handle:
            yield handle
        return
    bucket, name = split_gcs_uri(uri, "uri")
    blob = client.bucket(bucket).blob(name, chunk_size=CHUNK_BYTES)
    # The resumable upload is the commit: the object appears (or replaces the old one) only when it finishes.
    with blob.open("wb", content_type=content_type, ignore_flush=True) as handle:
        yield handle


@contextmanager
def _local_write(path: str) -> Iterator[IO[bytes]]:
    """Write a temporary file beside ``path``, then rename it over ``path`` (atomic on POSIX).

    The file gets an existing destination's mode, else the usual mode for a new file (0666 less the umask).
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".tmp-{os.path.basename(path)}-{secrets.token_hex(6)}")
    mode = os.stat(path).st_mode & 0o7777 if os.path.isfile(path) else None
    try:
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


@contextmanager
def _fsspec_write(fs: Any, path: str) -> Iterator[IO[bytes]]:
    """Write a temporary object beside ``path`` through fsspec, then move it over ``path``.

    A failed write removes the temporary object and leaves an existing ``path`` as it was.
    """
    folder, name = posixpath.split(path)
    temporary = posixpath.join(folder, f".tmp-{name}-{secrets.token_hex(6)}")
    try:
        with fs.open(temporary, "wb", block_size=CHUNK_BYTES) as handle:
            yield handle
        fs.mv(temporary, path)
    finally:
        if fs.exists(temporary):
            fs.rm(temporary)


def delete(client: storage.Client, uri: str) -> None:
    """Remove an object if it exists (an earlier run's file that no longer describes this run)."""
    if (path := local_path(uri)) is not None:
        if os.path.isfile(path):
            os.unlink(path)
        return
    if (fs_path := _fsspec(uri)) is not None:
        fs, path = fs_path
        if fs.exists(path):
            fs.rm(path)
        return
    from google.api_core.exceptions import NotFound

    bucket, name = split_gcs_uri(uri, "uri")
    with suppress(NotFound):
        client.bucket(bucket).blob(name).delete()


def write_text(client: storage.Client, uri: str, text: str | bytes, content_type: str = "text/plain") -> None:
    """Write an object (text, or its UTF-8 bytes) in one request, retrying transient errors (callers write the same
    text again)."""
    if not uri.startswith("gs://"):
        with open_write(client, uri, content_type) as handle:
            handle.write(text.encode() if isinstance(text, str) else text)
        return
    from google.cloud.storage.retry import DEFAULT_RETRY

    bucket, name = split_gcs_uri(uri, "uri")
    client.bucket(bucket).blob(name).upload_from_string(text, content_type=content_type, retry=DEFAULT_RETRY)


def _metadata(client: storage.Client, uri: str) -> storage.Blob | None:
    """A ``gs://`` object's metadata (one GET), or None when it does not exist."""
    bucket, path = split_gcs_uri(uri, "uri")
    return client.bucket(bucket).get_blob(path)


def object_size(client: storage.Client, uri: str) -> int | None:
    """The size in bytes of a ``gs://`` object from its metadata, or None when it does not exist."""
    blob = _metadata(client, uri)
    return None if blob is None else int(blob.size or 0)


def object_version(client: storage.Client, uri: str) -> str | None:
    """The version of a ``gs://`` object (generation and CRC32C), or None when it does not exist."""
    blob = _metadata(client, uri)
    return None if blob is None else f"{blob.generation}:{blob.crc32c}"


#: A folder holding at most this many of the listed videos is checked with one GET per video, else listed once.
GET_PER_VIDEO_LIMIT = 20
#: Concurrent GCS requests while checking that listed videos exist.
EXISTENCE_THREADS = 16


def read_head(client: storage.Client, uri: str, max_bytes: int) -> bytes:
    """The first ``max_bytes`` of an object (one ranged GET on GCS): never the whole of a large file."""
    if uri.startswith("gs://"):
        bucket, name = split_gcs_uri(uri, "uri")
        return client.bucket(bucket).blob(name).download_as_bytes(start=0, end=max_bytes - 1)
    if (fs_path := _fsspec(uri)) is not None:
        fs, path = fs_path
        return fs.cat_file(path, start=0, end=max_bytes)
    with open_read(client, uri) as handle:
        return handle.read(max_bytes)


def bucket_exists(client: storage.Client, bucket: str) -> bool | None:
    """Whether a bucket exists; None when the credentials may not read bucket metadata (then nothing is known)."""
    from google.api_core.exceptions import Forbidden

    try:
        return client.lookup_bucket(bucket) is not None
    except Forbidden:
        return None


def missing_objects(client: storage.Client, uris: Collection[str]) -> list[str]:
    """Those of ``uris`` (gs://) that do not exist, sorted, at a cost bounded by folders rather than objects.

    Each distinct folder is checked once, concurrently: one GET per object where it holds at most
    :data:`GET_PER_VIDEO_LIMIT` of them, else one listing of the folder (names only, not its subfolders).
    """
    from concurrent.futures import ThreadPoolExecutor

    folders: dict[tuple[str, str], set[str]] = {}
    for uri in uris:
        bucket, name = split_gcs_uri(uri, "uri")
        folder = name.rpartition("/")[0]
        folders.setdefault((bucket, f"{folder}/" if folder else ""), set()).add(name)
    with ThreadPoolExecutor(EXISTENCE_THREADS, thread_name_prefix="video-actions-exists") as pool:
        futures = []
        for (bucket, folder), names in folders.items():
            if len(names) <= GET_PER_VIDEO_LIMIT:
                futures += [pool.submit(_missing_by_get, client, bucket, {name}) for name in names]
            else:
                futures.append(pool.submit(_missing_by_listing, client, bucket, folder, names))
        return sorted(uri for future in futures for uri in future.result())


def _missing_by_get(client: storage.Client, bucket: str, names: set[str]) -> list[str]:
    """The names that one metadata GET each finds missing, as URIs."""
    return [f"gs://{bucket}/{name}" for name in names if client.bucket(bucket).get_blob(name) is None]


def _missing_by_listing(client: storage.Client, bucket: str, folder: str, names: set[str]) -> list[str]:
    """The names missing from one listing of their folder (names only, this level only), as URIs."""
    listing = client.list_blobs(bucket, prefix=folder, delimiter="/", fields="items(name),prefixes,nextPageToken")
    return [f"gs://{bucket}/{name}" for name in names - {blob.name for blob in listing}]


def count_lines(client: storage.Client, uri: str, stop_after: int) -> int:
    """The number of lines of an object, streamed, stopping once it passes ``stop_after`` (then more than it)."""
    count, last = 0, b"\n"
    with open_read(client, uri) as handle:
        while count <= stop_after and (block := handle.read(CHUNK_BYTES)):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")
