"""The emulator's GCS answers ranged reads as GCS does, so the real client reads empty objects."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import storage
from google.cloud.storage.exceptions import InvalidResponse

from airflow_provider_video_actions.gcs import open_read

from .conftest import BUCKET


@pytest.fixture
def objects(gcs: storage.Client) -> storage.Bucket:
    """The bucket with an empty object and a five-byte one."""
    bucket = gcs.bucket(BUCKET)
    bucket.blob("empty.jsonl").upload_from_string(b"")
    bucket.blob("hello.txt").upload_from_string(b"hello")
    return bucket


def test_an_empty_object_reads_as_empty_through_ranged_reads(gcs: storage.Client, objects: storage.Bucket) -> None:
    """blob.open("rb") (chunked ranged GETs, as the provider's parse reads) returns b"" as it does on GCS."""
    with objects.blob("empty.jsonl", chunk_size=1024 * 1024).open("rb") as handle:
        assert handle.read() == b""
    with objects.blob("empty.jsonl").open("rb") as handle:
        assert handle.read() == b""
    with open_read(gcs, f"gs://{BUCKET}/empty.jsonl") as handle:  # the provider's own streaming read
        assert handle.read() == b""


def test_a_range_past_the_end_is_416_as_on_gcs(objects: storage.Bucket) -> None:
    """GCS answers 416 with ``bytes */SIZE``; the client raises for a plain ranged download."""
    with pytest.raises(exceptions.RequestRangeNotSatisfiable):
        objects.blob("empty.jsonl").download_as_bytes(start=0)
    with pytest.raises(exceptions.RequestRangeNotSatisfiable):
        objects.blob("hello.txt").download_as_bytes(start=5)


def test_ranges_inside_an_object_and_whole_reads_are_unchanged(objects: storage.Bucket) -> None:
    assert objects.blob("hello.txt").download_as_bytes(start=1) == b"ello"
    assert objects.blob("hello.txt").download_as_bytes(start=1, end=2) == b"el"
    assert objects.blob("hello.txt").download_as_bytes() == b"hello"
    assert objects.blob("empty.jsonl").download_as_bytes() == b""
    with pytest.raises(exceptions.NotFound):
        objects.blob("missing").download_as_bytes(start=0)


def test_if_generation_match_zero_creates_only_once(objects: storage.Bucket) -> None:
    """``if_generation_match=0`` (must not exist): the first upload wins, the second is PreconditionFailed,
    for simple, multipart and resumable uploads alike."""
    objects.blob("once.txt").upload_from_string(b"first", if_generation_match=0)
    with pytest.raises(exceptions.PreconditionFailed):
        objects.blob("once.txt").upload_from_string(b"second", if_generation_match=0)
    with (
        pytest.raises(InvalidResponse) as refused,  # blob.open's writer raises the raw 412 (as on GCS)
        objects.blob("once.txt", chunk_size=256 * 1024).open("wb", if_generation_match=0, retry=None) as handle,
    ):
        handle.write(b"x" * 300 * 1024)  # more than one chunk: a resumable upload, refused when it starts
    assert refused.value.response.status_code == 412
    with pytest.raises(exceptions.PreconditionFailed):  # multipart: metadata and content in one request
        objects.blob("once.txt").upload_from_string(b"third", if_generation_match=0, content_type="text/csv")
    assert objects.blob("once.txt").download_as_bytes() == b"first"
    with objects.blob("new.bin", chunk_size=256 * 1024).open("wb", if_generation_match=0) as handle:
        handle.write(b"y" * 300 * 1024)
    assert objects.get_blob("new.bin").size == 300 * 1024


def test_resumable_upload_fails_when_its_object_appears_meanwhile(objects: storage.Bucket) -> None:
    """A resumable ``if_generation_match=0`` upload started before another writer made the object fails at its
    last request (the preconditions travel with every request of the session), leaving the other's object."""
    with (
        pytest.raises(InvalidResponse) as refused,
        objects.blob("raced.bin", chunk_size=256 * 1024).open("wb", if_generation_match=0, retry=None) as handle,
    ):
        handle.write(b"a" * 300 * 1024)  # the session starts and its first chunk is sent
        objects.blob("raced.bin").upload_from_string(b"the other writer")
    assert refused.value.response.status_code == 412
    assert objects.blob("raced.bin").download_as_bytes() == b"the other writer"


def test_generation_and_metageneration_preconditions(objects: storage.Bucket) -> None:
    """Writes, deletes and reads hold only when the named generation (or metageneration) does."""
    blob = objects.get_blob("hello.txt")
    generation = blob.generation
    with pytest.raises(exceptions.PreconditionFailed):
        objects.blob("hello.txt").upload_from_string(b"stale", if_generation_match=generation + 1)
    with pytest.raises(exceptions.PreconditionFailed):
        objects.blob("hello.txt").upload_from_string(b"same", if_generation_not_match=generation)
    with pytest.raises(exceptions.PreconditionFailed):
        objects.blob("hello.txt").upload_from_string(b"meta", if_metageneration_match=blob.metageneration + 1)
    with pytest.raises(exceptions.PreconditionFailed):
        objects.blob("hello.txt").download_as_bytes(if_generation_match=generation + 1)
    with pytest.raises(exceptions.PreconditionFailed):
        objects.get_blob("hello.txt", if_generation_match=generation + 1)
    with pytest.raises(exceptions.PreconditionFailed):
        objects.blob("hello.txt").delete(if_generation_match=generation + 1)
    with pytest.raises(exceptions.PreconditionFailed):  # a missing object has no metageneration to match
        objects.blob("absent.txt").upload_from_string(b"x", if_metageneration_match=1)
    assert objects.blob("hello.txt").download_as_bytes(if_generation_match=generation) == b"hello"

    objects.blob("hello.txt").upload_from_string(b"hello again", if_generation_match=generation)
    replaced = objects.get_blob("hello.txt")
    assert (replaced.generation != generation, replaced.download_as_bytes()) == (True, b"hello again")
    objects.blob("hello.txt").delete(if_generation_match=replaced.generation)
    assert objects.get_blob("hello.txt") is None


def test_listing_pages_and_offsets(gcs: storage.Client) -> None:
    """``max_results`` pages in name order; ``start_offset`` / ``end_offset`` bound the names; prefixes page too."""
    bucket = gcs.bucket(BUCKET)
    names = [f"list/{letter}.txt" for letter in "abcde"]
    for name in names:
        bucket.blob(name).upload_from_string(b"")
    bucket.blob("list/sub/f.txt").upload_from_string(b"")

    pages = gcs.list_blobs(BUCKET, prefix="list/", max_results=None, page_size=2).pages
    assert [[blob.name for blob in page] for page in pages] == [names[:2], names[2:4], [names[4], "list/sub/f.txt"]]
    listed = gcs.list_blobs(BUCKET, prefix="list/", max_results=2, start_offset="list/b")
    assert [blob.name for blob in listed] == names[1:3]
    bounded = gcs.list_blobs(BUCKET, prefix="list/", start_offset="list/b", end_offset="list/d")
    assert [blob.name for blob in bounded] == names[1:3]

    folders = gcs.list_blobs(BUCKET, prefix="list/", delimiter="/", page_size=3)
    assert [[blob.name for blob in page] for page in folders.pages] == [names[:3], names[3:]]
    assert folders.prefixes == {"list/sub/"}
    with pytest.raises(exceptions.BadRequest):
        list(gcs.list_blobs(BUCKET, page_token="not-ours!"))


def test_a_download_pinned_to_a_replaced_generation_is_404_as_on_gcs(objects: storage.Bucket) -> None:
    """A read of a generation the object no longer has is NotFound; its current generation still reads."""
    old = objects.get_blob("hello.txt")
    objects.blob("hello.txt").upload_from_string(b"hello again")
    with pytest.raises(exceptions.NotFound):
        objects.blob("hello.txt", generation=old.generation).download_as_bytes(start=0, end=2)
    current = objects.get_blob("hello.txt")
    assert objects.blob("hello.txt", generation=current.generation).download_as_bytes(start=0, end=4) == b"hello"
