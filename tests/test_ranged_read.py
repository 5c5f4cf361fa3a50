"""The read-ahead of gs:// objects by concurrent ranged GETs (ranged_read), against the emulator's GCS."""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import AirflowException
from google.cloud import storage

from airflow_provider_video_actions.job import VideoActionsValueError
from airflow_provider_video_actions.parse import ranged_read
from tests.benchmarks.bench_parse import generate
from tests.conftest import BUCKET
from tests.test_parse import parse


def _upload(client: storage.Client, contents: list[bytes]) -> list[str]:
    """Each content as an object of a fresh folder, in order; their URIs."""
    folder = f"ranged/{uuid.uuid4().hex}"
    uris = []
    for index, data in enumerate(contents):
        client.bucket(BUCKET).blob(f"{folder}/{index}.jsonl").upload_from_string(data)
        uris.append(f"gs://{BUCKET}/{folder}/{index}.jsonl")
    return uris


def _content(size: int, seed: int) -> bytes:
    """``size`` bytes no two ranges of which look alike (so a range read twice or out of place shows)."""
    return b"".join(b"%d-%08d\n" % (seed, n) for n in range(size // 11 + 1))[:size]


def _objects_read(reads: list[tuple[str, bytes]]) -> dict[str, bytes]:
    """The bytes read per object, joined in the order they came."""
    found: dict[str, bytes] = {}
    for uri, data in reads:
        found[uri] = found.get(uri, b"") + data
    return found


@pytest.mark.parametrize(("concurrency", "max_buffered"), [(1, 1), (3, 2), (4, 8)])
def test_bytes_in_order_across_ranges_and_objects(storage_client, concurrency: int, max_buffered: int) -> None:
    """Every object's exact bytes, objects and ranges in order, whatever the sizes: an empty object, one byte,
    a multiple of the range, one byte more, and a size that is none of these."""
    contents = [_content(size, seed) for seed, size in enumerate([0, 1, 3000, 3001, 10_007, 999, 0])]
    uris = _upload(storage_client, contents)
    reads = list(ranged_read.read_ahead(storage_client, uris, ranged_read.ReadAhead(concurrency, 1000, max_buffered)))
    expected = {uri: data for uri, data in zip(uris, contents, strict=True) if data}
    assert list(dict.fromkeys(uri for uri, _ in reads)) == list(expected)
    assert _objects_read(reads) == expected
    sizes = [len(data) for _, data in reads]
    assert max(sizes) == 1000
    assert sizes[:8] == [1, 1000, 1000, 1000, 1000, 1000, 1000, 1]  # each range whole, the last one short


def test_streams_read_across_range_boundaries(storage_client) -> None:
    """A stream's reads of any size cross range boundaries and give the object's bytes; b"" at its end."""
    contents = [_content(2500, 1), b"", _content(700, 2)]
    uris = _upload(storage_client, contents)
    found = {}
    for uri, stream in ranged_read.streams(storage_client, uris, ranged_read.ReadAhead(range_bytes=1000)):
        pieces = [stream.read(333), stream.read(1000), stream.read(-1)]
        while piece := stream.read(333):
            pieces.append(piece)
        assert stream.read(10) == b""
        found[uri] = b"".join(pieces)
    assert found == {uris[0]: contents[0], uris[2]: contents[2]}


def test_a_vanished_object_fails_in_its_turn(storage_client) -> None:
    """An object gone before it is read raises, after every byte of the objects before it."""
    first = _upload(storage_client, [_content(2500, 1)])
    missing = f"gs://{BUCKET}/ranged/{uuid.uuid4().hex}/gone.jsonl"
    reads = ranged_read.read_ahead(storage_client, [*first, missing], ranged_read.ReadAhead(2, 1000, 4))
    assert b"".join(data for _, data in (next(reads), next(reads), next(reads))) == _content(2500, 1)
    with pytest.raises(ranged_read.ObjectReadError, match=r"gone\.jsonl was listed but no longer exists"):
        next(reads)


def test_a_generation_change_between_ranges_fails(storage_client) -> None:
    """An object replaced while it is read fails with the generation named, never mixing two versions."""
    (uri,) = _upload(storage_client, [_content(10_000, 1)])
    reads = ranged_read.read_ahead(storage_client, [uri], ranged_read.ReadAhead(1, 1000, 1))
    assert next(reads)[1] == _content(10_000, 1)[:1000]
    storage_client.bucket(BUCKET).blob(uri.split("/", 3)[3]).upload_from_string(_content(10_000, 2))
    with pytest.raises(ranged_read.ObjectReadError, match=r"changed while it was read: generation \d+ was replaced"):
        list(reads)


def test_ranges_in_flight_and_waiting_stay_bounded(storage_client, monkeypatch: pytest.MonkeyPatch) -> None:
    """No more than ``max_buffered`` ranges are fetched ahead of the consumer, ``concurrency`` at once."""
    started, running, most = [0], [0], [0]
    lock = threading.Lock()
    download = storage.Blob.download_to_file

    def counted(blob: storage.Blob, *args: object, **kwargs: object) -> None:
        with lock:
            started[0] += 1
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return download(blob, *args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(storage.Blob, "download_to_file", counted)
    uris = _upload(storage_client, [_content(3000, 1), _content(2000, 2)])
    taken = 0
    for _ in ranged_read.read_ahead(storage_client, uris, ranged_read.ReadAhead(2, 100, 3)):
        taken += 1
        assert started[0] <= taken + 3
    assert (taken, started[0]) == (50, 50)
    assert most[0] <= 2


def test_a_range_whose_connection_drops_is_read_again(emulator, storage_client) -> None:
    """Two ranges lose their connection half way through the body: the storage client retries each, and the bytes
    arrive whole, in order, with the object's CRC32C holding."""
    from airflow_provider_video_actions.emulator import storage_layer

    content = _content(5000, 3)
    uris = _upload(storage_client, [content])
    emulator.cut_next_downloads(2)
    reads = list(ranged_read.read_ahead(storage_client, uris, ranged_read.ReadAhead(2, 1000)))
    assert storage_layer._cuts == [0]  # both cuts happened
    assert b"".join(data for _, data in reads) == content


def test_a_consumer_that_stops_early_leaves_no_thread(storage_client) -> None:
    """Closing the reader part way cancels what is queued and joins the fetching threads."""
    uris = _upload(storage_client, [_content(5000, 1), _content(5000, 2)])
    reads = ranged_read.read_ahead(storage_client, uris, ranged_read.ReadAhead(3, 500, 6))
    next(reads)
    assert any(thread.name.startswith("video-actions-range") for thread in threading.enumerate())
    reads.close()
    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("video-actions-range")]


def test_a_gzip_encoded_object_is_refused(storage_client) -> None:
    """Byte ranges of a gzip-encoded object are of its compressed bytes: refused, saying why."""
    (uri,) = _upload(storage_client, [b""])
    blob = storage_client.bucket(BUCKET).blob(uri.split("/", 3)[3])
    blob.content_encoding = "gzip"
    blob.upload_from_string(gzip.compress(_content(5000, 1)))
    with pytest.raises(VideoActionsValueError, match="stored gzip-compressed"):
        list(ranged_read.read_ahead(storage_client, [uri]))


@pytest.mark.parametrize(
    ("field", "name"),
    [("range_bytes", "range_bytes"), ("concurrency", "gcs_read_concurrency"), ("max_buffered", "max_buffered")],
)
@pytest.mark.parametrize("value", [0, -1, 1.5, "4"])
def test_bad_read_parameters_are_refused(field: str, name: str, value: object) -> None:
    """A read-ahead parameter that is not a positive integer is refused, named as the user gave it."""
    with pytest.raises(VideoActionsValueError, match=f"{name} must be a positive integer"):
        ranged_read.ReadAhead(**{field: value})  # type: ignore[arg-type]


def test_read_concurrency_is_bounded_so_memory_is() -> None:
    """A concurrency of a billion would schedule every range of every file at once: refused, with the bound."""
    assert ranged_read.ReadAhead(ranged_read.MAX_CONCURRENCY).window == ranged_read.MAX_CONCURRENCY + 2
    with pytest.raises(VideoActionsValueError, match=r"gcs_read_concurrency=1000000000 is more than 32 .* at most 32"):
        ranged_read.ReadAhead(10**9)


def test_the_window_defaults_to_two_ranges_beyond_the_reads() -> None:
    """Each read stays busy while the parse takes a range, and one more waits: the memory bound follows."""
    assert ranged_read.ReadAhead(3).window == 5
    assert ranged_read.ReadAhead(3, max_buffered=4).window == 4


def _upload_folder(client: storage.Client, folder: Path, prefix: str) -> str:
    """Every file of a local folder as an object under ``prefix``; the gs:// folder."""
    for path in sorted(folder.iterdir()):
        client.bucket(BUCKET).blob(f"{prefix}/{path.name}").upload_from_filename(str(path))
    return f"gs://{BUCKET}/{prefix}"


def test_a_parse_from_gcs_reads_what_the_local_parse_reads(storage_client, tmp_path: Path) -> None:
    """Lines cut by range boundaries (9 MB: three ranges) and several files parse from gs:// exactly as from disk."""
    import pyarrow.parquet as pq

    generate(tmp_path / "output", 9)
    source = _upload_folder(storage_client, tmp_path / "output", f"ranged/{uuid.uuid4().hex}")
    results, tables = [], []
    for name, directory in (("gcs", source), ("local", f"file://{tmp_path}/output")):
        result = parse(output_directory=directory, destination=f"file://{tmp_path}/{name}.parquet")
        text = json.dumps({key: value for key, value in result.items() if not key.endswith("uri")}, sort_keys=True)
        results.append(json.loads(text.replace(directory, "SOURCE")))  # error samples name their file
        tables.append(pq.read_table(tmp_path / f"{name}.parquet"))
    assert results[0] == results[1] and results[0]["rows"] > 40_000 and results[0]["errors"] > 0
    assert tables[0].equals(tables[1])


def test_a_parse_that_fails_part_way_leaves_no_read_running(storage_client, tmp_path: Path) -> None:
    """A parse stopped by a bad line while later ranges and files are read ahead joins every reading thread."""
    generate(tmp_path / "output", 9)
    first = tmp_path / "output" / "predictions_00001.jsonl"
    first.write_bytes(b"not json\n" + first.read_bytes())
    (tmp_path / "output" / "predictions_00002.jsonl").write_bytes(first.read_bytes())
    source = _upload_folder(storage_client, tmp_path / "output", f"ranged/{uuid.uuid4().hex}")
    with pytest.raises(AirflowException, match="More than max_malformed_lines=0"):
        parse(output_directory=source, max_malformed_lines=0)
    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("video-actions-")]
