"""The emulator's GCS answers ranged reads as GCS does, so the real client reads empty objects."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import storage

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


def test_a_download_pinned_to_a_replaced_generation_is_404_as_on_gcs(objects: storage.Bucket) -> None:
    """A read of a generation the object no longer has is NotFound; its current generation still reads."""
    old = objects.get_blob("hello.txt")
    objects.blob("hello.txt").upload_from_string(b"hello again")
    with pytest.raises(exceptions.NotFound):
        objects.blob("hello.txt", generation=old.generation).download_as_bytes(start=0, end=2)
    current = objects.get_blob("hello.txt")
    assert objects.blob("hello.txt", generation=current.generation).download_as_bytes(start=0, end=4) == b"hello"
