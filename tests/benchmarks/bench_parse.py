"""Benchmark: parsing a job's output to Parquet, beside DuckDB, bare msgspec decoding and the naive way.

Generates realistic, varied prediction JSONL (several ``predictions_<n>.jsonl`` files and an
``errors_00001.jsonl``; see :func:`generate`), then, each column in its own fresh interpreter (so
each peak RSS is that column's alone), the columns in turn ``--repeat`` times (each reports its
fastest run and its highest peak RSS), measures input MB/s and peak RSS of:

- ``provider``: :class:`ParseVideoActionPredictionsOperator` writing Parquet (file:// to file://);
- ``duckdb``: what a data engineer would write instead: DuckDB reading the same files with an
  explicit schema, ``UNNEST`` of the moments into the same eight columns, ``COPY ... TO`` Parquet,
  on 2 threads (the error lines to their own Parquet file);
- ``msgspec``: msgspec decoding the same bytes from memory into typed structs, nothing else (a
  bound on a Python per-line decoder), garbage collector paused as in the parser;
- ``pyarrow``: what a data engineer might write with pyarrow instead: ``read_json`` of each file
  with the same explicit schema (its own 2 threads), the moments flattened into the same eight
  columns, Parquet written, nothing checked (the error lines left out);
- ``arrow_read``: pyarrow's JSON reader alone, driven as the operator drives it (2 MiB chunks of
  whole lines side by side on 2 threads), the file reads included, nothing else: the ceiling of
  the operator's design, whose every other step (checks, flattening, counts, Parquet) adds to it;
- ``naive``: ``json.loads`` per line into dicts, a list of every record, one ``pyarrow`` write (the
  Vertex SDK's way); it holds every record in memory, so it runs only up to ``--naive-max-mb``.

Then, at each ``--gcs-sizes`` (env ``BENCH_GCS_SIZES_MB``, default 200 and 1000 MB), the same files
uploaded to the bundled GCS emulator (it holds every object in the benchmark's memory and serves HTTP
from Python), side by side in the same run:

- ``download_as_bytes`` and ``blob_open``: the raw read by the storage client, each file in turn
  (``blob.download_as_bytes()``, ``blob.open("rb")`` read 1 MiB at a time): the user's alternative, and
  what the emulator can serve;
- ``ranged_read``: the provider's reader alone (:func:`ranged_read.read_ahead`), nothing parsed;
- ``provider_gcs``: the operator parsing from ``gs://`` to a local Parquet file (``provider_gcs_read_concurrency_N``:
  the same with ``gcs_read_concurrency=N``, for each ``--read-concurrency`` other than the default);
- ``provider_local``: the operator parsing the same files from local disk to a local Parquet file.

One JSON line per size. Run: ``.venv/bin/python -m tests.benchmarks.bench_parse [--sizes 100 1000]
[--gcs-sizes 200 1000] [--read-concurrency 1 2 4]`` (an empty list skips that part; ``make bench`` runs every
benchmark). Each gs:// column also reports ``server_cpu_s``: the emulator serves from this benchmark's own
process, on the same cores as the parse, which a real GCS server does not.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from airflow_provider_video_actions.families.action_recognition import ACTION_RECOGNITION
from airflow_provider_video_actions.parse.ranged_read import CONCURRENCY
from tests.benchmarks.common import Stopwatch, child_result, emit, peak_rss_mb, run_case

MB = 1_000_000
FILE_MB = 25
LOCAL_SIZES_MB = (100, 1000)
NAIVE_MAX_MB = 1000
GCS_SIZES_MB = (200, 1000)
GCS_BUCKET = "bench-parse"
#: The storage client's raw reads of the same files, beside the operator's.
RAW_READS = ("download_as_bytes", "blob_open")
#: Bytes asked of ``blob.open("rb")`` at a time (the size of the operator's chunks of lines).
READ_BYTES = 1024 * 1024
DUCKDB_THREADS = 2
#: pyarrow's JSON reader parses blocks of this size side by side (the operator parses 2 MiB chunks).
ARROW_BLOCK_BYTES = 2 * 1024 * 1024
#: Runs per column, in turn; each column reports its fastest (other load on a shared machine only slows runs).
REPEAT = 3
WHOLE_VIDEO_SHARE = 0.7  # the rest are random segments, to the millisecond
ERROR_SHARE = 0.01  # instances the job could not serve, in errors_00001.jsonl
MOMENTS_PER_LINE = (1, 6)
VIDEO_TYPES = {ext.lstrip("."): mime for ext, mime in ACTION_RECOGNITION.mime_types.items()}  # mp4, avi, mov
ERRORS = [
    (5, "Video {uri} not found"),
    (3, "Unsupported mime type video/x-msvideo for {uri}; use video/avi"),
    (13, "Internal error while processing {uri}; retry later"),
    (3, "Time segment end 7200.000s is past the video's duration"),
]

# ---------------------------------------------------------------------------------------------
# Data: varied as real output is (segments to the millisecond, varied labels, long camera URIs).
# ---------------------------------------------------------------------------------------------

_VERBS = ["opening", "closing", "picking up", "putting down", "carrying", "pushing", "pulling", "climbing",
          "waving at", "pointing at", "kicking", "throwing", "catching", "sitting on", "standing near"]  # fmt: skip
_OBJECTS = ["door", "box", "cart", "ladder", "forklift pallet", "shelf", "bicycle", "trolley", "bag", "barrier",
            "window", "chair", "crate", "hose", "fence", "vehicle", "helmet", "phone", "tool case", "gate"]  # fmt: skip
LABELS = [(f"{verb} {thing}", str(3_000_000_000 + 7919 * n)) for n, (verb, thing) in
          enumerate((v, o) for v in _VERBS for o in _OBJECTS)]  # fmt: skip


def _seconds(value: float) -> str:
    """A Vertex duration string to the millisecond, as the job echoes and writes them (``"12.345s"``)."""
    return f"{value:.3f}".rstrip("0").rstrip(".") + "s"


class _Generator:
    """Random output lines: instances (whole video or a segment), their moments, some errors."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.sites = [f"site-{self.rng.randrange(10_000):04d}-{self.rng.choice(['north', 'dock', 'yard', 'hall'])}"
                      for _ in range(300)]  # fmt: skip
        self.cameras = [str(uuid.UUID(int=self.rng.getrandbits(128))) for _ in range(2000)]

    def instance(self) -> tuple[dict[str, Any], float, float]:
        """An instance as the job echoes it, with the span its moments fall in."""
        rng = self.rng
        ext = rng.choice(list(VIDEO_TYPES))
        uri = (
            f"gs://{rng.choice(['acme-cctv-archive-eu', 'acme-cctv-archive-us', 'plant-7-cams'])}/"
            f"{rng.choice(self.sites)}/{rng.choice(self.cameras)}/2026/{rng.randint(1, 12):02d}/"
            f"{rng.randint(1, 28):02d}/{rng.randint(0, 23):02d}/{uuid.UUID(int=rng.getrandbits(128)).hex}.{ext}"
        )
        instance: dict[str, Any] = {"content": uri, "mimeType": VIDEO_TYPES[ext]}
        if rng.random() < WHOLE_VIDEO_SHARE:
            if rng.random() < 0.5:  # whole video said explicitly, or by leaving the segment out
                instance |= {"timeSegmentStart": "0s", "timeSegmentEnd": "Infinity"}
            return instance, 0.0, rng.uniform(10, 900)
        start = rng.randint(0, 3_600_000) / 1000
        end = start + rng.randint(500, 120_000) / 1000
        instance |= {"timeSegmentStart": _seconds(start), "timeSegmentEnd": _seconds(end)}
        return instance, start, end

    def moments(self, start: float, end: float) -> list[dict[str, Any]]:
        """1-6 predicted moments (a point in time each) inside the span, in time order."""
        rng, moments = self.rng, []
        for at in sorted(
            rng.randint(round(start * 1000), round(end * 1000)) / 1000 for _ in range(rng.randint(*MOMENTS_PER_LINE))
        ):
            label, label_id = rng.choice(LABELS)
            moments.append({"id": label_id, "displayName": label, "timeSegmentStart": _seconds(at),
                            "timeSegmentEnd": _seconds(at), "confidence": rng.random()})  # fmt: skip
        return moments

    def error(self, instance: dict[str, Any]) -> dict[str, Any]:
        code, message = self.rng.choice(ERRORS)
        return {"instance": instance, "error": {"code": code, "message": message.format(uri=instance["content"])}}


def generate(directory: Path, total_mb: int, seed: int = 7) -> int:
    """Write ``predictions_<n>.jsonl`` files of about FILE_MB each plus an ``errors_00001.jsonl``; return bytes."""
    source, encoder = _Generator(seed), msgspec.json.Encoder()
    directory.mkdir(parents=True, exist_ok=True)
    errors: list[dict[str, Any]] = []
    for index in range(1, max(total_mb // FILE_MB, 1) + 1):
        with open(directory / f"predictions_{index:05d}.jsonl", "wb") as out:
            while out.tell() < min(FILE_MB, total_mb) * MB:
                lines = []
                for _ in range(5000):
                    instance, start, end = source.instance()
                    if source.rng.random() < ERROR_SHARE:
                        errors.append(source.error(instance))
                    else:
                        lines.append({"instance": instance, "prediction": source.moments(start, end)})
                out.write(encoder.encode_lines(lines))
    (directory / "errors_00001.jsonl").write_bytes(encoder.encode_lines(errors))
    return sum(p.stat().st_size for p in directory.iterdir())


# ---------------------------------------------------------------------------------------------
# Columns, each run in a fresh interpreter (``--case``).
# ---------------------------------------------------------------------------------------------


def case_provider(source: str, destination: str, read_concurrency: str = "") -> dict[str, Any]:
    """The parse operator, as a task runs it (imports done before the clock starts, as DuckDB's are)."""
    import pyarrow.parquet  # noqa: F401 - imported by the Parquet writer

    import airflow_provider_video_actions.families.action_recognition_arrow  # noqa: F401 - the fast path
    from airflow_provider_video_actions.operators.parse import ParseVideoActionPredictionsOperator

    if source.startswith("gs://"):  # the storage hook's imports (Google provider, storage client), not the parse's
        from airflow_provider_video_actions.hooks import storage  # noqa: F401
    options = {"gcs_read_concurrency": int(read_concurrency)} if read_concurrency else {}
    operator = ParseVideoActionPredictionsOperator(
        task_id="parse", output_directory=source, destination=destination, **options
    )
    clock, rss_before = Stopwatch(), peak_rss_mb()
    with clock.running():
        result = operator.execute({})
    return {
        "seconds": clock.seconds,
        "cpu_seconds": clock.cpu_seconds,
        "rss_before_mb": rss_before,
        "rows": result["rows"],
        "errors": result["errors"],
    }


def case_raw_read(source: str, method: str) -> dict[str, Any]:
    """The storage client reading every object under a ``gs://`` prefix in turn, whole or through ``blob.open``."""
    from google.cloud import storage

    bucket, _, prefix = source.removeprefix("gs://").partition("/")
    blobs = list(storage.Client(project="bench").list_blobs(bucket, prefix=prefix))
    clock, read = Stopwatch(), 0
    with clock.running():
        for blob in blobs:
            if method == "download_as_bytes":
                read += len(blob.download_as_bytes())
                continue
            with blob.open("rb") as handle:
                while block := handle.read(READ_BYTES):
                    read += len(block)
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "bytes": read}


def case_ranged_read(source: str) -> dict[str, Any]:
    """The operator's reader alone: every object under a ``gs://`` prefix read ahead by ranged GETs."""
    from google.cloud import storage

    from airflow_provider_video_actions.parse import ranged_read

    client = storage.Client(project="bench")
    bucket, _, prefix = source.removeprefix("gs://").partition("/")
    uris = sorted(f"gs://{bucket}/{blob.name}" for blob in client.list_blobs(bucket, prefix=prefix))
    clock, read = Stopwatch(), 0
    with clock.running():
        read = sum(len(data) for _, data in ranged_read.read_ahead(client, uris))
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "bytes": read}


_INSTANCE = "STRUCT(content VARCHAR, mimeType VARCHAR, timeSegmentStart VARCHAR, timeSegmentEnd VARCHAR)"
_MOMENT = "STRUCT(id VARCHAR, displayName VARCHAR, timeSegmentStart VARCHAR, timeSegmentEnd VARCHAR, confidence DOUBLE)"


def _duckdb_seconds(column: str) -> str:
    """SQL reading a Vertex duration (``"1.5s"``, ``"Infinity"``) as seconds, NULL for an open end."""
    return f"TRY_CAST(NULLIF(rtrim({column}, 's'), 'Infinity') AS DOUBLE)"


def case_duckdb(source: str, destination: str) -> dict[str, Any]:
    """DuckDB on 2 threads: explicit schema, UNNEST of the moments, the eight columns, COPY to Parquet."""
    import duckdb

    folder = source.removeprefix("file://")
    out = destination.removeprefix("file://")
    connection = duckdb.connect()
    connection.execute(f"SET threads = {DUCKDB_THREADS}")
    predictions = f"""
        SELECT instance.content AS video_uri,
               coalesce({_duckdb_seconds("instance.timeSegmentStart")}, 0.0) AS segment_start,
               {_duckdb_seconds("instance.timeSegmentEnd")} AS segment_end,
               m.id AS label_id, m.displayName AS label,
               {_duckdb_seconds("m.timeSegmentStart")} AS time_start,
               {_duckdb_seconds("m.timeSegmentEnd")} AS time_end,
               m.confidence AS confidence
        FROM (SELECT instance, UNNEST(prediction) AS m
              FROM read_json('{folder}/predictions_*.jsonl', format = 'newline_delimited',
                             columns = {{'instance': '{_INSTANCE}', 'prediction': '{_MOMENT}[]'}}))"""
    errors = f"""
        SELECT instance.content AS video_uri,
               coalesce({_duckdb_seconds("instance.timeSegmentStart")}, 0.0) AS segment_start,
               {_duckdb_seconds("instance.timeSegmentEnd")} AS segment_end,
               error.code AS code, error.message AS message
        FROM read_json('{folder}/errors_*.jsonl', format = 'newline_delimited',
                       columns = {{'instance': '{_INSTANCE}', 'error': 'STRUCT(code INTEGER, message VARCHAR)'}})"""
    clock = Stopwatch()
    with clock.running():
        rows = connection.execute(f"COPY ({predictions}) TO '{out}' (FORMAT parquet)").fetchone()[0]
        error_rows = connection.execute(f"COPY ({errors}) TO '{out}.errors.parquet' (FORMAT parquet)").fetchone()[0]
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "rows": rows, "errors": error_rows}


def _arrow_tables(source: str) -> Iterator[Any]:
    """Each predictions file read whole by pyarrow's JSON reader (the operator's schema, its 2 threads)."""
    import pyarrow as pa
    import pyarrow.json as pj

    from airflow_provider_video_actions.families.action_recognition_arrow import OUTPUT_LINE

    pa.set_cpu_count(DUCKDB_THREADS)
    options = pj.ParseOptions(explicit_schema=OUTPUT_LINE, unexpected_field_behavior="error")
    for path in sorted(Path(source.removeprefix("file://")).glob("predictions_*.jsonl")):
        yield pj.read_json(path, read_options=pj.ReadOptions(block_size=ARROW_BLOCK_BYTES), parse_options=options)


def case_arrow_read(source: str) -> dict[str, Any]:
    """pyarrow's JSON reader driven as the operator drives it (2 MiB chunks of whole lines, one per thread, 2
    threads), the file reads included, nothing else: rows read."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.json as pj

    from airflow_provider_video_actions.families.action_recognition_arrow import OUTPUT_LINE
    from airflow_provider_video_actions.parse.chunks import iter_chunks

    options = pj.ParseOptions(explicit_schema=OUTPUT_LINE, unexpected_field_behavior="error")

    def rows(chunk: bytes) -> int:
        one_block = pj.ReadOptions(block_size=len(chunk) + 1, use_threads=False)
        return pj.read_json(pa.BufferReader(chunk), read_options=one_block, parse_options=options).num_rows

    clock, lines = Stopwatch(), 0
    with clock.running(), ThreadPoolExecutor(DUCKDB_THREADS) as pool:
        for path in sorted(Path(source.removeprefix("file://")).glob("predictions_*.jsonl")):
            with open(path, "rb") as handle:
                lines += sum(pool.map(rows, iter_chunks(handle, ARROW_BLOCK_BYTES)))
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "lines": lines}


def case_pyarrow(source: str, destination: str) -> dict[str, Any]:
    """pyarrow without checks: read, flatten the moments into the eight columns, write Parquet."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from airflow_provider_video_actions.families.action_recognition_arrow import RECORDS

    def seconds(text: Any) -> Any:
        return pc.cast(pc.ascii_rtrim(pc.if_else(pc.equal(text, "Infinity"), None, text), "s"), pa.float64())

    pc.fill_null(seconds(pa.array(["1s", "Infinity"])), 0.0)  # its first Python scalar imports pandas: not timed
    clock, rows = Stopwatch(), 0
    with clock.running(), pq.ParquetWriter(destination.removeprefix("file://"), RECORDS) as writer:
        for table in _arrow_tables(source):
            prediction, instance = table.column("prediction"), table.column("instance")
            parents = pc.list_parent_indices(prediction)
            moments = pc.list_flatten(prediction)
            segment_start = pc.fill_null(seconds(pc.struct_field(instance, "timeSegmentStart")), 0.0)
            columns = [
                pc.take(pc.struct_field(instance, "content"), parents),
                pc.take(segment_start, parents),
                pc.take(seconds(pc.struct_field(instance, "timeSegmentEnd")), parents),
                pc.struct_field(moments, "id"),
                pc.struct_field(moments, "displayName"),
                seconds(pc.struct_field(moments, "timeSegmentStart")),
                seconds(pc.struct_field(moments, "timeSegmentEnd")),
                pc.struct_field(moments, "confidence"),
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=RECORDS))
            rows += len(parents)
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "rows": rows}


class _Instance(msgspec.Struct, gc=False):
    content: str | None = None
    timeSegmentStart: str | None = None  # noqa: N815 - wire names
    timeSegmentEnd: str | None = None  # noqa: N815


class _Moment(msgspec.Struct, gc=False):
    id: str = ""
    displayName: str = ""  # noqa: N815
    timeSegmentStart: str | None = None  # noqa: N815
    timeSegmentEnd: str | None = None  # noqa: N815
    confidence: float = 0.0


class _Status(msgspec.Struct, gc=False):
    code: int | None = None
    message: str = ""


class _Line(msgspec.Struct, gc=False):
    instance: _Instance | None = None
    prediction: list[_Moment] | None = None
    error: _Status | None = None


def case_msgspec(source: str) -> dict[str, Any]:
    """msgspec decoding every file's bytes from memory, 1 MiB of whole lines at a time, into typed structs."""
    from airflow_provider_video_actions.parse.chunks import iter_chunks

    gc.disable()
    decode_lines, clock, lines = msgspec.json.Decoder(_Line).decode_lines, Stopwatch(), 0
    for path in sorted(Path(source.removeprefix("file://")).iterdir()):
        with open(path, "rb") as handle:
            chunks = list(iter_chunks(handle))
        with clock.running():
            for chunk in chunks:
                lines += len(decode_lines(chunk))
        del chunks
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "lines": lines}


def case_naive(source: str, destination: str) -> dict[str, Any]:
    """The Vertex SDK's way: ``json.loads`` each line into dicts, keep every record, write Parquet once."""
    clock = Stopwatch()
    with clock.running():
        records, errors = _naive_records(source)
        _naive_write(records, destination)
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "rows": len(records), "errors": len(errors)}


def _naive_records(source: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every prediction record as a dict from ``json.loads``, and the error lines set aside."""
    records, errors = [], []
    for name, text in _naive_read(source):
        for line in text.splitlines():
            row = json.loads(line)
            if name.startswith("errors"):
                errors.append(row)
                continue
            instance = row["instance"]
            start, end = instance.get("timeSegmentStart", "0s"), instance.get("timeSegmentEnd", "Infinity")
            for p in row["prediction"]:
                records.append(
                    {
                        "video_uri": instance["content"],
                        "segment_start": float(start.rstrip("s")),
                        "segment_end": None if end == "Infinity" else float(end.rstrip("s")),
                        "label_id": p["id"],
                        "label": p["displayName"],
                        "time_start": float(p["timeSegmentStart"].rstrip("s")),
                        "time_end": float(p["timeSegmentEnd"].rstrip("s")),
                        "confidence": p["confidence"],
                    }
                )
    return records, errors


def _naive_read(source: str) -> Iterator[tuple[str, str]]:
    """(file name, whole text) of each output file, downloaded whole (``blob.download_as_text`` on GCS)."""
    if source.startswith("file://"):
        for path in sorted(Path(source.removeprefix("file://")).iterdir()):
            yield path.name, path.read_text()
        return
    from google.cloud import storage

    bucket, _, prefix = source.removeprefix("gs://").partition("/")
    for blob in storage.Client(project="bench").list_blobs(bucket, prefix=prefix):
        yield blob.name.rsplit("/", 1)[-1], blob.download_as_text()


def _naive_write(records: list[dict[str, Any]], destination: str) -> None:
    """Write every record at once: a pyarrow table from the dicts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(records), sink)
    data = sink.getvalue().to_pybytes()
    if destination.startswith("file://"):
        Path(destination.removeprefix("file://")).write_bytes(data)
        return
    from google.cloud import storage

    bucket, _, name = destination.removeprefix("gs://").partition("/")
    storage.Client(project="bench").bucket(bucket).blob(name).upload_from_string(data)


# ---------------------------------------------------------------------------------------------
# The driver: data, columns, one JSON line per size.
# ---------------------------------------------------------------------------------------------


HERE = "tests.benchmarks.bench_parse"


def _fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run, with the highest peak RSS of all runs."""
    return {**min(runs, key=lambda run: run["seconds"]), "peak_rss_mb": max(run["peak_rss_mb"] for run in runs)}


def _in_turn(
    cases: dict[str, tuple[str, ...]], repeat: int, run: Callable[[tuple[str, ...]], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each case's fastest run (see :func:`_fastest`), the cases run by ``run`` in turn ``repeat`` times."""
    runs: dict[str, list[dict[str, Any]]] = {column: [] for column in cases}
    for _ in range(repeat):
        for column, args in cases.items():
            runs[column].append(run(args))
    return {column: _fastest(measured) for column, measured in runs.items()}


def _measured(case: str, input_bytes: int, repeat: int, columns: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The JSON line's head: each column's MB/s of input, CPU seconds, peak RSS (and GCS server CPU seconds)."""
    result: dict[str, Any] = {
        "benchmark": "parse",
        "case": case,
        "input_mb": round(input_bytes / MB, 1),
        "runs": repeat,
    }
    for column, measured in columns.items():
        result[f"{column}_mb_s"] = round(input_bytes / MB / measured["seconds"], 1)
        result[f"{column}_cpu_s"] = round(measured["cpu_seconds"], 2)
        result[f"{column}_peak_rss_mb"] = measured["peak_rss_mb"]
        if "server_cpu_seconds" in measured:
            result[f"{column}_server_cpu_s"] = round(measured["server_cpu_seconds"], 2)
    return result


def compare(
    name: str,
    source: str,
    stem: str,
    input_bytes: int,
    naive: bool,
    repeat: int = 1,
) -> None:
    """Run each column in its own interpreter, the columns in turn ``repeat`` times, and print one JSON line.

    Each column reports its fastest run (other load on a shared machine only slows a run down) and the
    highest peak RSS of its runs; the naive way runs once.
    """
    local = source.startswith("file://")
    cases = {"provider": ("provider", source, f"{stem}-provider.parquet")}
    if local:
        cases |= {
            "duckdb": ("duckdb", source, f"{stem}-duckdb.parquet"),
            "pyarrow": ("pyarrow", source, f"{stem}-pyarrow.parquet"),
            "arrow_read": ("arrow_read", source),
            "msgspec": ("msgspec", source),
        }
    columns = _in_turn(cases, repeat, lambda args: run_case(HERE, "--case", *args))
    if naive:
        columns["naive"] = run_case(HERE, "--case", "naive", source, f"{stem}-naive.parquet")
    result = _measured(name, input_bytes, repeat, columns)
    result["rows"], result["errors"] = columns["provider"]["rows"], columns["provider"]["errors"]
    if "duckdb" in columns:
        result["provider_vs_duckdb"] = round(columns["duckdb"]["seconds"] / columns["provider"]["seconds"], 2)
    counted = {column: (m["rows"], m.get("errors", result["errors"])) for column, m in columns.items() if "rows" in m}
    mismatches = {column: counts for column, counts in counted.items() if counts != (result["rows"], result["errors"])}
    if mismatches:
        result["count_mismatch (rows, errors)"] = mismatches
    emit(result)


def run_local(root: Path, sizes: list[int], naive_max_mb: int, repeat: int) -> None:
    """file:// to Parquet at each size, every column."""
    for size in sizes:
        source = root / f"output-{size}mb"
        input_bytes = generate(source, size)
        compare(
            f"file_parquet_{size}mb",
            f"file://{source}",
            f"file://{root}/parsed-{size}",
            input_bytes,
            size <= naive_max_mb,
            repeat=repeat,
        )
        shutil.rmtree(source)
        for parsed in root.glob(f"parsed-{size}*"):
            parsed.unlink()


def run_gcs(root: Path, sizes: list[int], repeat: int, read_concurrency: list[int]) -> None:
    """At each size: the files in the GCS emulator read raw by the storage client, read by the operator's reader,
    parsed from gs:// and parsed from local disk (both to a local Parquet file), in turn, ``repeat`` times."""
    from airflow_provider_video_actions.emulator import Emulator

    if not sizes:
        return
    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)  # a line per request would bury the results
    with Emulator(buckets=[GCS_BUCKET]) as emulator:
        bucket = emulator.storage_client().bucket(GCS_BUCKET)
        env = emulator.env()  # both emulator variables: the hook then needs no Airflow connection
        for size in sizes:
            local = root / f"output-{size}mb"
            input_bytes = generate(local, size)
            for path in sorted(local.iterdir()):
                bucket.blob(f"output-{size}mb/{path.name}").upload_from_filename(str(path))
            source = f"gs://{GCS_BUCKET}/output-{size}mb"
            cases = {
                **{method: ("raw_read", source, method) for method in RAW_READS},
                "ranged_read": ("ranged_read", source),
                "provider_gcs": ("provider", source, f"file://{root}/parsed-gcs-{size}.parquet"),
                **{
                    f"provider_gcs_read_concurrency_{n}": (
                        "provider",
                        source,
                        f"file://{root}/c{n}-{size}.parquet",
                        str(n),
                    )
                    for n in read_concurrency
                    if n != CONCURRENCY
                },
                "provider_local": ("provider", f"file://{local}", f"file://{root}/parsed-local-{size}.parquet"),
            }
            columns = _in_turn(cases, repeat, lambda args: _served(args, env))
            emit(_gcs_result(size, input_bytes, repeat, columns))
            shutil.rmtree(local)
            for parsed in [*root.glob("parsed-*"), *root.glob("c*.parquet")]:
                parsed.unlink()
            for blob in list(bucket.list_blobs(prefix=f"output-{size}mb/")):
                blob.delete()


def _served(args: tuple[str, ...], env: dict[str, str]) -> dict[str, Any]:
    """One case's run, with the CPU seconds this process (the emulator's GCS server, on the same cores) spent."""
    cpu = time.process_time()
    run = run_case(HERE, "--case", *args, env=env)
    return {**run, "server_cpu_seconds": time.process_time() - cpu}


def _gcs_result(size: int, input_bytes: int, repeat: int, columns: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One JSON line: each column's MB/s, CPU seconds and peak RSS; the gs:// parse against the local one."""
    result = _measured(f"gcs_emulator_vs_local_{size}mb", input_bytes, repeat, columns)
    gcs, local = columns["provider_gcs"], columns["provider_local"]
    result["gcs_vs_local"] = round(local["seconds"] / gcs["seconds"], 2)
    result["gcs_extra_rss_mb"] = round(gcs["peak_rss_mb"] - local["peak_rss_mb"], 1)
    for column in ("provider_gcs", "provider_local"):  # what the parse itself adds, imports and clients aside
        result[f"{column}_parse_adds_rss_mb"] = round(
            columns[column]["peak_rss_mb"] - columns[column]["rss_before_mb"], 1
        )
    result["rows"], result["errors"] = gcs["rows"], gcs["errors"]
    if (local["rows"], local["errors"]) != (gcs["rows"], gcs["errors"]):
        result["count_mismatch (rows, errors)"] = {"provider_local": (local["rows"], local["errors"])}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case",
        choices=["provider", "duckdb", "pyarrow", "arrow_read", "msgspec", "naive", "raw_read", "ranged_read"],
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=list(LOCAL_SIZES_MB), help="file:// sizes in MB")
    parser.add_argument("--naive-max-mb", type=int, default=NAIVE_MAX_MB, help="largest size the naive way runs at")
    parser.add_argument(
        "--gcs-sizes",
        type=int,
        nargs="*",
        default=[int(size) for size in os.environ.get("BENCH_GCS_SIZES_MB", "").split()] or list(GCS_SIZES_MB),
        help="sizes in MB read through the GCS emulator and from local disk, side by side (env BENCH_GCS_SIZES_MB)",
    )
    parser.add_argument(
        "--read-concurrency",
        type=int,
        nargs="*",
        default=[1, CONCURRENCY, 4],
        help="gcs_read_concurrency values the gs:// parse also runs with (the default's column is provider_gcs)",
    )
    parser.add_argument("--repeat", type=int, default=REPEAT, help="runs per column (its fastest is reported)")
    parser.add_argument("args", nargs="*")
    options = parser.parse_args()
    if options.case:
        child_result(globals()[f"case_{options.case}"](*options.args))
        return
    root = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        run_local(root, options.sizes, options.naive_max_mb, options.repeat)
        run_gcs(root, options.gcs_sizes, options.repeat, options.read_concurrency)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
