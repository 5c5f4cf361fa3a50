"""Benchmark: parsing a job's output, against bare msgspec decoding (the limit) and the naive way (the baseline).

Generates realistic prediction JSONL (several files, 1-10 moments per instance, an errors file),
then, each case in a fresh interpreter, measures throughput (input MB/s) and peak RSS of:

- ``provider``: :class:`ParseVideoActionPredictionsOperator` writing Parquet or JSONL;
- ``limit``: msgspec decoding the same bytes, from memory, into the parser's typed structs
  (``limit_untyped``: into dicts and lists, for reference), garbage collector paused as in the parser;
- ``baseline``: the Vertex SDK's way, ``json.loads`` per line into dicts, a list of every record,
  then one write.

Local cases read file:// (no emulator overhead) at 100 MB and 1 GB, so peak RSS can be compared
across sizes; the GCS case goes through the in-memory GCS emulator at a smaller size (it holds every
object in the benchmark's memory and serves HTTP from Python). One JSON line per case.

Run: ``.venv/bin/python -m tests.benchmarks.bench_parse`` (``make bench`` runs every benchmark).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from tests.benchmarks.common import Stopwatch, child_result, emit, run_case

MB = 1_000_000
FILE_MB = 100
LOCAL_SIZES_MB = (100, 1000)
GCS_SIZE_MB = 200
GCS_BUCKET = "bench-parse"
LABELS = [("wave", "1001"), ("jump", "1002"), ("run", "1003"), ("clap", "1004"), ("sit", "1005"), ("fall", "1006")]
FORMATS = ("parquet", "jsonl")
ERROR_EVERY = 100  # one instance in this many fails (missing video, bad mime type...)

# ---------------------------------------------------------------------------------------------
# Data.
# ---------------------------------------------------------------------------------------------


def _moments(rng: random.Random, start: float) -> list[dict[str, Any]]:
    """1-10 predicted moments inside a 30 s segment, in time order, as Vertex writes them."""
    moments = []
    for _ in range(rng.randint(1, 10)):
        label, label_id = rng.choice(LABELS)
        at = f"{start + rng.random() * 30:.6f}s"
        moments.append(
            {
                "id": label_id + "384957201938",
                "displayName": label,
                "timeSegmentStart": at,
                "timeSegmentEnd": at,
                "confidence": round(rng.random(), 3),
            }
        )
    return sorted(moments, key=lambda m: float(m["timeSegmentStart"][:-1]))


def _instance(number: int, start: float) -> dict[str, Any]:
    """An input line as the job echoes it: a camera clip, whole or a 30 s segment."""
    end = "Infinity" if number % 3 == 0 else f"{start + 30:.6f}s"
    return {
        "content": f"gs://customer-videos/cameras/site-{number % 97:03d}/2026/01/{number % 28 + 1:02d}/clip-{number:09d}.mp4",
        "mimeType": "video/mp4",
        "timeSegmentStart": f"{start:.6f}s",
        "timeSegmentEnd": end,
    }


def generate(directory: Path, total_mb: int, seed: int = 7) -> int:
    """Write ``predictions_*.jsonl`` files of about FILE_MB each plus an ``errors_00001.jsonl``; return bytes."""
    rng, encoder = random.Random(seed), msgspec.json.Encoder()
    pool = [_moments(rng, start) for start in (0.0, 30.0, 60.0) for _ in range(2000)]
    directory.mkdir(parents=True, exist_ok=True)
    number, errors = 0, []
    for index in range(1, max(total_mb // FILE_MB, 1) + 1):
        with open(directory / f"predictions_{index:05d}.jsonl", "wb") as out:
            while out.tell() < min(FILE_MB, total_mb) * MB:
                lines = []
                for _ in range(5000):
                    number += 1
                    moments = pool[rng.randrange(len(pool))]
                    instance = _instance(number, float(moments[0]["timeSegmentStart"][:-1]) // 30 * 30)
                    if number % ERROR_EVERY == 0:
                        errors.append({"instance": instance, "error": {"code": 5, "message": "video not found"}})
                    else:
                        lines.append({"instance": instance, "prediction": moments})
                out.write(encoder.encode_lines(lines))
    (directory / "errors_00001.jsonl").write_bytes(encoder.encode_lines(errors))
    return sum(p.stat().st_size for p in directory.iterdir())


# ---------------------------------------------------------------------------------------------
# Cases, each run in a fresh interpreter (``--case``).
# ---------------------------------------------------------------------------------------------


def case_provider(source: str, destination: str) -> dict[str, Any]:
    """The parse operator, as a task runs it (imports done before the clock starts)."""
    from airflow_provider_video_actions.operators.parse import ParseVideoActionPredictionsOperator

    operator = ParseVideoActionPredictionsOperator(task_id="parse", output_directory=source, destination=destination)
    clock = Stopwatch()
    with clock.running():
        result = operator.execute({})
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "rows": result["rows"]}


def case_limit(source: str) -> dict[str, Any]:
    """msgspec decoding every file's bytes from memory, in the parser's chunks, typed and untyped.

    The garbage collector is paused, as the parser pauses it.
    """
    from airflow_provider_video_actions import gcs
    from airflow_provider_video_actions.predictions import _DECODER

    gc.disable()
    typed, untyped = Stopwatch(), Stopwatch()
    plain = msgspec.json.Decoder()
    for path in sorted(Path(source.removeprefix("file://")).iterdir()):
        with open(path, "rb") as handle:
            chunks = list(gcs.iter_chunks(handle))
        with typed.running():
            for chunk in chunks:
                _DECODER.decode_lines(chunk)
        with untyped.running():
            for chunk in chunks:
                plain.decode_lines(chunk)
        del chunks
    return {"seconds": typed.seconds, "cpu_seconds": typed.cpu_seconds, "seconds_untyped": untyped.seconds}


def case_baseline(source: str, destination_stem: str) -> dict[str, Any]:
    """The Vertex SDK's way: list the outputs, ``json.loads`` each line, keep every record, write once.

    The records are read once and written as Parquet, then as JSONL, each write timed on its own
    (a format's baseline is the read plus its write); peak RSS is that of the whole run, which the
    list of every record dominates.
    """
    read, written = Stopwatch(), {}
    with read.running():
        records = _baseline_records(source)
    for fmt in FORMATS:
        written[fmt] = Stopwatch()
        with written[fmt].running():
            _baseline_write(records, f"{destination_stem}.{fmt}")
    return {f"{fmt}_seconds": read.seconds + written[fmt].seconds for fmt in FORMATS} | {"rows": len(records)}


def _baseline_records(source: str) -> list[dict[str, Any]]:
    """Every prediction record, as dicts from ``json.loads`` (error lines are read and set aside)."""
    records, errors = [], []
    for name, text in _baseline_read(source):
        for line in text.splitlines():
            row = json.loads(line)
            if name.startswith("errors"):
                errors.append(row)
                continue
            instance = row["instance"]
            end = instance.get("timeSegmentEnd")
            for p in row["prediction"]:
                records.append(
                    {
                        "video_uri": instance["content"],
                        "segment_start": float(instance["timeSegmentStart"].rstrip("s")),
                        "segment_end": None if end in (None, "Infinity") else float(end.rstrip("s")),
                        "label_id": p["id"],
                        "label": p["displayName"],
                        "time_start": float(p["timeSegmentStart"].rstrip("s")),
                        "time_end": float(p["timeSegmentEnd"].rstrip("s")),
                        "confidence": p["confidence"],
                    }
                )
    return records


def _baseline_read(source: str) -> Iterator[tuple[str, str]]:
    """(file name, whole text) of each output file, downloaded whole (``blob.download_as_text`` on GCS)."""
    if source.startswith("file://"):
        for path in sorted(Path(source.removeprefix("file://")).iterdir()):
            yield path.name, path.read_text()
        return
    from google.cloud import storage

    bucket, _, prefix = source.removeprefix("gs://").partition("/")
    for blob in storage.Client(project="bench").list_blobs(bucket, prefix=prefix):
        yield blob.name.rsplit("/", 1)[-1], blob.download_as_text()


def _baseline_write(records: list[dict[str, Any]], destination: str) -> None:
    """Write every record at once: a pyarrow table from the dicts, or ``json.dumps`` per record."""
    if destination.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(records), sink)
        data = sink.getvalue().to_pybytes()
    else:
        data = "".join(json.dumps(r) + "\n" for r in records).encode()
    if destination.startswith("file://"):
        Path(destination.removeprefix("file://")).write_bytes(data)
        return
    from google.cloud import storage

    bucket, _, name = destination.removeprefix("gs://").partition("/")
    storage.Client(project="bench").bucket(bucket).blob(name).upload_from_string(data)


# ---------------------------------------------------------------------------------------------
# The driver: data, cases, one JSON line each.
# ---------------------------------------------------------------------------------------------


HERE = "tests.benchmarks.bench_parse"


def compare_formats(
    name: str, source: str, destination_stem: str, input_bytes: int, env: dict[str, str] | None = None
) -> None:
    """Run the baseline once, then the provider for each format; one JSON line per format."""
    limit = run_case(HERE, "--case", "limit", source) if source.startswith("file://") else None
    baseline = run_case(HERE, "--case", "baseline", source, f"{destination_stem}-baseline", env=env)
    for fmt in FORMATS:
        provider = run_case(HERE, "--case", "provider", source, f"{destination_stem}.{fmt}", env=env)
        emit(
            _comparison(
                name.format(fmt=fmt), input_bytes, provider, baseline | {"seconds": baseline[f"{fmt}_seconds"]}, limit
            )
        )


def _comparison(
    name: str, input_bytes: int, provider: dict[str, Any], baseline: dict[str, Any], limit: dict[str, Any] | None
) -> dict[str, Any]:
    """One case's JSON line: provider, baseline, their ratio, and the limit when measured."""
    result = {
        "benchmark": "parse",
        "case": name,
        "input_mb": round(input_bytes / MB, 1),
        "rows": provider["rows"],
        "provider_mb_s": _rate(input_bytes, provider),
        "provider_cpu_s": round(provider["cpu_seconds"], 2),
        "provider_peak_rss_mb": provider["peak_rss_mb"],
        "baseline_mb_s": _rate(input_bytes, baseline),
        "baseline_peak_rss_mb": baseline["peak_rss_mb"],
        "speedup_vs_baseline": round(baseline["seconds"] / provider["seconds"], 2),
    }
    if limit is not None:
        result |= {
            "limit_mb_s": _rate(input_bytes, limit),
            "limit_untyped_mb_s": round(input_bytes / MB / limit["seconds_untyped"], 1),
            "limit_peak_rss_mb": limit["peak_rss_mb"],
            "ratio_to_limit": round(limit["seconds"] / provider["seconds"], 3),
            "ratio_to_limit_cpu": round(limit["cpu_seconds"] / provider["cpu_seconds"], 3),
            "ratio_to_untyped_limit": round(limit["seconds_untyped"] / provider["seconds"], 3),
        }
    if baseline["rows"] != provider["rows"]:
        result["mismatch"] = f"baseline found {baseline['rows']} rows"
    return result


def _rate(input_bytes: int, case: dict[str, Any]) -> float:
    return round(input_bytes / MB / case["seconds"], 1)


def run_local(root: Path) -> None:
    """file:// cases at each size, Parquet and JSONL."""
    for size in LOCAL_SIZES_MB:
        source = root / f"output-{size}mb"
        input_bytes = generate(source, size)
        compare_formats(f"file_{{fmt}}_{size}mb", f"file://{source}", f"file://{root}/parsed-{size}", input_bytes)
        shutil.rmtree(source)


def run_gcs(root: Path) -> None:
    """One source uploaded to the in-memory GCS emulator, parsed to Parquet and JSONL in it."""
    from airflow_provider_video_actions.emulator import Emulator

    source = root / f"output-{GCS_SIZE_MB}mb"
    input_bytes = generate(source, GCS_SIZE_MB)
    with Emulator(buckets=[GCS_BUCKET]) as emulator:
        bucket = emulator.storage_client().bucket(GCS_BUCKET)
        for path in sorted(source.iterdir()):
            bucket.blob(f"output/{path.name}").upload_from_filename(str(path))
        env = emulator.env()  # both emulator variables: the hook then needs no Airflow connection
        name = f"gcs_emulator_{{fmt}}_{GCS_SIZE_MB}mb"
        compare_formats(name, f"gs://{GCS_BUCKET}/output", f"gs://{GCS_BUCKET}/parsed", input_bytes, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["provider", "limit", "baseline"])
    parser.add_argument("args", nargs="*")
    options = parser.parse_args()
    if options.case:
        child_result(globals()[f"case_{options.case}"](*options.args))
        return
    root = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        run_local(root)
        run_gcs(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
