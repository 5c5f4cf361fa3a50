"""The hand-written fast paths against the exact ones: same records on good output, refusal on anything else."""

from __future__ import annotations

import json
import threading

import msgspec
import pytest

from airflow_provider_video_actions.families.action_recognition_answers import decode_exactly
from airflow_provider_video_actions.families.action_recognition_arrow import read_fast
from airflow_provider_video_actions.parse import chunks
from airflow_provider_video_actions.parse.keep import PredictionFilter
from airflow_provider_video_actions.predictions import RECORD_FIELDS
from tests.benchmarks.bench_parse import _Generator


def realistic_chunk(lines: int = 400, seed: int = 3) -> bytes:
    """Varied, valid output lines as the benchmark writes them (whole videos and millisecond segments)."""
    source, out = _Generator(seed), []
    for _ in range(lines):
        instance, start, end = source.instance()
        out.append({"instance": instance, "prediction": source.moments(start, end)})
    return msgspec.json.Encoder().encode_lines(out)


def exact_columns(chunk: bytes, keep: PredictionFilter) -> dict[str, list]:
    decoded = decode_exactly(chunk, "f", 1)
    assert not decoded.errors
    return dict(zip(RECORD_FIELDS, keep.columns(decoded), strict=True))


@pytest.mark.parametrize(
    "keep",
    [PredictionFilter(), PredictionFilter(0.5), PredictionFilter(0.2, frozenset({"carrying bag", "kicking box"}))],
)
def test_fast_path_gives_the_exact_records(keep):
    chunk = realistic_chunk()
    fast = read_fast(chunk, keep)
    assert fast is not None and fast.lines == 400 and fast.instances == 400
    assert fast.records.to_pydict() == exact_columns(chunk, keep)
    assert dict(fast.label_counts()) == {
        label: exact_columns(chunk, keep)["label"].count(label) for label in set(exact_columns(chunk, keep)["label"])
    }


def test_fast_path_reads_open_ends_missing_segments_and_null_errors_as_the_exact_path_does():
    lines = [
        {"instance": {"content": "gs://b/a.mp4"}, "prediction": [{"id": "1", "displayName": "w",
         "timeSegmentStart": "0.000001s", "timeSegmentEnd": "7.123456789s", "confidence": 1}]},
        {"instance": {"content": "gs://b/b.mp4", "timeSegmentStart": "1.25s", "timeSegmentEnd": "inf"},
         "prediction": [], "error": None},
    ]  # fmt: skip
    chunk = "".join(json.dumps(line) + "\n" for line in lines).encode()
    fast = read_fast(chunk, PredictionFilter())
    assert fast is not None and fast.moments == 1
    assert fast.records.to_pydict() == exact_columns(chunk, PredictionFilter())


def assert_same_outcome(chunk: bytes) -> None:
    """The fast path either refuses the chunk or gives exactly the exact path's records (and the chunk has no error)."""
    keep = PredictionFilter()
    fast = read_fast(chunk, keep)
    if fast is not None:
        assert not decode_exactly(chunk, "f", 1).errors
        assert fast.records.to_pydict() == exact_columns(chunk, keep)


@pytest.mark.parametrize(
    ("segment_end", "moment_end"),
    [("0.0000035s", "0.001004s"), ("2.0000005s", "2s"), ("1.0000015s", "1.001001s"), ("7.123456789s", "7s")],
)
def test_fast_path_reads_instance_bounds_finer_than_microseconds_as_the_exact_path_does(segment_end, moment_end):
    moment = {"id": "1", "displayName": "w", "timeSegmentStart": "0s", "timeSegmentEnd": moment_end, "confidence": 1}
    line = {"instance": {"content": "gs://b/v.mp4", "timeSegmentEnd": segment_end}, "prediction": [moment]}
    assert_same_outcome(realistic_chunk(5) + json.dumps(line).encode() + b"\n")


GOOD = {"id": "1", "displayName": "wave", "timeSegmentStart": "3s", "timeSegmentEnd": "3s", "confidence": 0.5}


@pytest.mark.parametrize(
    "line",
    [
        {"instance": {"content": "gs://b/v.mp4", "timeSegmentStart": "2s", "timeSegmentEnd": "4s"},
         "prediction": [{**GOOD, **bad}]}
        for bad in (
            {"timeSegmentStart": "-1s"}, {"timeSegmentStart": "1_000s"}, {"timeSegmentStart": "\u0663s"},
            {"timeSegmentEnd": "Infinity"}, {"timeSegmentStart": "1e309s"}, {"timeSegmentStart": "3"},
            {"confidence": 1.5}, {"confidence": -0.1}, {"displayName": ""}, {"id": ""}, {"id": 7},
            {"timeSegmentStart": "3.5s"}, {"timeSegmentStart": "1s", "timeSegmentEnd": "1s"},
            {"timeSegmentStart": "9s", "timeSegmentEnd": "9s"}, {"confidence": None},
        )
    ]
    + [
        {"instance": {"content": "gs://b/v.mp4"}, "error": {"code": 5, "message": "gone"}},
        {"instance": {"content": "gs://b/v.mp4", "timeSegmentStart": "5s", "timeSegmentEnd": "4s"}, "prediction": []},
        {"instance": {"content": ""}, "prediction": []},
        {"instance": {"content": "gs://b/v.mp4", "timeSegmentStart": 2}, "prediction": []},
        {"instance": {"content": "gs://b/v.mp4"}, "prediction": [], "status": ""},
        {"content": "gs://b/v.mp4", "prediction": []},
        {"instance": {"content": "gs://b/v.mp4"}, "prediction": [None]},
    ],
)  # fmt: skip
def test_fast_path_refuses_a_chunk_with_any_line_it_cannot_vouch_for(line):
    chunk = realistic_chunk(20) + json.dumps(line).encode() + b"\n"
    assert read_fast(chunk, PredictionFilter()) is None
    decoded = decode_exactly(chunk, "f", 1)
    assert len(decoded.instances) + sum(e.kind != "invalid_moment" for e in decoded.errors) == 21


def test_fast_path_refuses_blank_lines_and_invalid_utf8_and_leaves_top_k_to_the_exact_path():
    assert read_fast(realistic_chunk(5) + b"\n" + realistic_chunk(5), PredictionFilter()) is None
    bad_utf8 = b'{"instance": {"content": "gs://b/\xff.mp4"}, "prediction": []}\n'
    assert read_fast(realistic_chunk(5) + bad_utf8, PredictionFilter()) is None
    assert [e.kind for e in decode_exactly(bad_utf8, "f", 1).errors] == ["malformed"]
    accented = '{"instance": {"content": "gs://b/caf\u00e9.mp4"}, "prediction": []}\n'.encode()
    assert read_fast(accented, PredictionFilter()).video_hashes.tolist() == [hash("gs://b/caf\u00e9.mp4")]
    assert read_fast(realistic_chunk(5), PredictionFilter(top_k=1)) is None


def test_exact_path_numbers_lines_across_blank_ones():
    chunk = b'\n{"instance": {"content": "gs://b/v.mp4"}, "prediction": []}\n\n"not an object"\n'
    decoded = decode_exactly(chunk, "f", 10)
    assert (decoded.lines, decoded.blank_lines, len(decoded.instances)) == (4, 2, 1)
    assert [(e.line, e.kind) for e in decoded.errors] == [(13, "malformed")]


def test_prefetched_yields_everything_in_order_and_hands_errors_over():
    assert list(chunks.prefetched(iter(range(100)))) == list(range(100))

    def failing():
        yield 1
        raise OSError("read failed")

    with pytest.raises(OSError, match="read failed"):
        list(chunks.prefetched(failing()))


def test_prefetched_stops_its_reader_when_the_caller_stops():
    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    closed = []

    def endless_file():
        try:
            yield from endless()
        finally:
            closed.append(True)  # as a file opened in the generator closes

    threads, source = set(threading.enumerate()), endless_file()
    items = chunks.prefetched(source, depth=2)
    assert next(items) == 0
    items.close()  # joins the reader thread
    assert set(threading.enumerate()) <= threads and closed == [True]  # the reader is gone and closed its source
    assert len(produced) <= 4 and next(source, None) is None  # 1 taken, 2 queued, 1 waiting; then nothing more


@pytest.mark.parametrize(
    ("values", "type_name"),
    [(["a", None, "caf\u00e9", ""], "string"), ([1.5, None, 0.0], "double"), ([3, None, -7], "int64"), ([], "string")],
)
def test_arrow_arrays_built_from_buffers_equal_pyarrows_own(values, type_name):
    import pyarrow as pa

    from airflow_provider_video_actions.writers import arrow_array

    arrow_type = {"string": pa.string(), "double": pa.float64(), "int64": pa.int64()}[type_name]
    built = arrow_array(values, arrow_type)
    built.validate(full=True)
    assert built.equals(pa.array(values, arrow_type))


GOOD_LINE = json.dumps({"instance": {"content": "gs://b/v.mp4", "timeSegmentStart": "2s", "timeSegmentEnd": "4s"},
                        "prediction": [GOOD]}).encode()  # fmt: skip


@pytest.mark.parametrize(
    "chunk",
    [
        b"null\n" + GOOD_LINE + b"\n",  # pyarrow 26 crashed the process (SIGSEGV) on a chunk opening with null
        b"null\n",
        b"\xef\xbb\xbf" + GOOD_LINE + b"\n",  # Arrow skipped a BOM opening a chunk; the exact path calls it malformed
        GOOD_LINE + b"\n" + GOOD_LINE + GOOD_LINE + b"\n\n",  # two objects on a line, balanced by a blank line
        GOOD_LINE + b"\n" + GOOD_LINE + b" " + GOOD_LINE + b"\n\n",
        b" " + GOOD_LINE + b"\n",
    ],
    ids=["null-first", "null-alone", "bom", "two-objects", "two-objects-spaced", "leading-space"],
)
def test_a_line_that_does_not_open_one_object_goes_to_the_exact_path(chunk):
    """Hostile lines found by review: wherever a line sits in its chunk, it gets the exact decoder's outcome."""
    assert read_fast(chunk, PredictionFilter()) is None
    decoded = decode_exactly(chunk, "f", 1)
    assert len(decoded.instances) + len(decoded.errors) == len([line for line in chunk.split(b"\n") if line.strip()])
