"""What the parse operator reads: only the job's own files, any line length, a BOM, U+2028, known schemes."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_video_actions import gcs
from airflow_provider_video_actions.job import VideoActionsValueError
from airflow_provider_video_actions.parse import chunks
from tests.conftest import BUCKET
from tests.test_parse import instance, moment, output_dir, parse  # noqa: F401 - output_dir is a fixture

MB = 1024 * 1024


def prediction_line(video: str, label: str = "wave") -> str:
    return json.dumps({"instance": instance(video), "prediction": [moment(label, 1.0, 0.9)]}) + "\n"


def test_only_the_files_vertex_writes_are_read(output_dir):  # noqa: F811
    """A backup, a Parquet file, a subfolder and Gemini's incremental folder are not the job's output."""
    out = output_dir.removeprefix("file://")
    stray = prediction_line("gs://b/stray.mp4")
    for name in ("predictions_00001.jsonl~", "predictions.parquet", "predictions_1.jsonl.tmp", "errors.txt"):
        (Path(out) / name).write_text(stray)
    for folder in ("sub", "incremental_predictions"):
        (Path(out) / folder).mkdir()
        (Path(out) / folder / "predictions_00001.jsonl").write_text(stray)
    result = parse(output_directory=output_dir)
    assert result["rows"] == 3 and result["instances"] == 3 and result["errors"] == 3


def test_gemini_predictions_file_is_the_jobs_output(tmp_path):
    (tmp_path / "predictions.jsonl").write_text("not json\n")
    assert parse(output_directory=f"file://{tmp_path}")["malformed_lines"] == 1


def test_destination_prefix_with_several_jobs_is_refused(tmp_path):
    for job in ("prediction-model-2026_01_01T00_00_00_000Z", "prediction-model-2026_01_02T00_00_00_000Z"):
        (tmp_path / job).mkdir()
        (tmp_path / job / "predictions_00001.jsonl").write_text(prediction_line("gs://b/a.mp4"))
    with pytest.raises(
        AirflowFailException, match=r"2 jobs \(prediction-model-2026_01_01.*, prediction-model-2026_01_02"
    ):
        parse(output_directory=f"file://{tmp_path}")


def test_only_the_jobs_files_on_gcs(storage_client):
    """Through the real storage client: a non-recursive listing of exactly Vertex's names."""
    bucket = storage_client.bucket(BUCKET)
    job = "own-files/prediction-model-1"
    bucket.blob(f"{job}/predictions_00001.jsonl").upload_from_string(prediction_line("gs://b/a.mp4"))
    bucket.blob(f"{job}/predictions_00001.jsonl~").upload_from_string(prediction_line("gs://b/stray.mp4"))
    bucket.blob(f"{job}/sub/predictions_00001.jsonl").upload_from_string(prediction_line("gs://b/stray.mp4"))
    bucket.blob(f"{job}-other/predictions_00001.jsonl").upload_from_string(prediction_line("gs://b/stray.mp4"))
    result = parse(output_directory=f"gs://{BUCKET}/{job}")
    assert result["rows"] == 1 and [p["video_uri"] for p in result["predictions"]] == ["gs://b/a.mp4"]
    bucket.blob("own-files/prediction-model-2/predictions_00001.jsonl").upload_from_string(
        prediction_line("gs://b/c.mp4")
    )
    with pytest.raises(
        AirflowFailException, match=r"3 jobs \(prediction-model-1, prediction-model-1-other, prediction-model-2\)"
    ):
        parse(output_directory=f"gs://{BUCKET}/own-files/")


@pytest.mark.parametrize("name", ["parsed.jsonl", "predictions_00001.jsonl", "sub/parsed.parquet"])
def test_destination_inside_the_output_directory_is_refused(output_dir, name):  # noqa: F811
    out = Path(output_dir.removeprefix("file://"))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(AirflowFailException, match=r"inside the job's output directory"):
        parse(output_directory=output_dir, destination=f"{output_dir}/{name}")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_destination_paths_are_compared_resolved(output_dir):  # noqa: F811
    """``..`` does not hide a destination inside the directory; one beside it (``<dir>.jsonl``) is fine."""
    with pytest.raises(AirflowFailException, match=r"inside the job's output directory"):
        parse(output_directory=output_dir, destination=f"{output_dir}/x/../parsed.csv")
    assert parse(output_directory=output_dir, destination=f"{output_dir}.jsonl")["rows"] == 3


def test_destination_inside_the_output_directory_on_gcs(storage_client):
    bucket = storage_client.bucket(BUCKET)
    bucket.blob("inside/prediction-1/predictions_00001.jsonl").upload_from_string(prediction_line("gs://b/a.mp4"))
    with pytest.raises(AirflowFailException, match=r"inside the job's output directory"):
        parse(
            output_directory=f"gs://{BUCKET}/inside/prediction-1/",
            destination=f"gs://{BUCKET}/inside/prediction-1/p.jsonl",
        )
    assert not bucket.blob("inside/prediction-1/p.jsonl").exists()
    assert not bucket.blob("inside/prediction-1/p.errors.jsonl").exists()


@pytest.mark.parametrize(
    "uri",
    ["http://169.254.169.254/computeMetadata/v1/", "https://example.com/out", "memory://out", "s3://bucket/out"],
)
def test_other_schemes_need_an_explicit_opt_in(uri):
    """Refused when the DAG is parsed (a literal) and when the task runs (a rendered template)."""
    with pytest.raises(
        VideoActionsValueError, match=r"output_directory must be a gs:// or file:// URI.*allow_other_schemes=True"
    ):
        parse(output_directory=uri)
    with pytest.raises(AirflowFailException, match=r"job\['output_directory'\] must be a gs:// or file:// URI"):
        parse(job={"output_directory": uri})
    with pytest.raises(VideoActionsValueError, match=r"destination must be a gs:// or file:// URI"):
        parse(output_directory="gs://bkt1/out", destination=uri.rstrip("/") + "/p.jsonl")


def test_other_schemes_with_the_opt_in(tmp_path):
    from fsspec.implementations.memory import MemoryFileSystem

    MemoryFileSystem().pipe("/opt-in/out/predictions_00001.jsonl", prediction_line("gs://b/a.mp4").encode())
    result = parse(
        output_directory="memory://opt-in/out", destination="memory://opt-in/parsed.jsonl", allow_other_schemes=True
    )
    assert result["rows"] == 1 and MemoryFileSystem().cat("/opt-in/parsed.jsonl").count(b"\n") == 1


def test_a_failed_write_through_fsspec_leaves_the_previous_object():
    from fsspec.implementations.memory import MemoryFileSystem

    memory = MemoryFileSystem()
    memory.pipe("/kept/parsed.jsonl", b"old\n")
    with pytest.raises(RuntimeError, match="lost"), gcs.open_write(None, "memory://kept/parsed.jsonl", "") as handle:
        handle.write(b"new\n")
        raise RuntimeError("connection lost")
    assert memory.cat("/kept/parsed.jsonl") == b"old\n" and memory.ls("/kept", detail=False) == ["/kept/parsed.jsonl"]
    with gcs.open_write(None, "memory://kept/parsed.jsonl", "") as handle:
        handle.write(b"new\n")
    assert memory.cat("/kept/parsed.jsonl") == b"new\n" and memory.ls("/kept", detail=False) == ["/kept/parsed.jsonl"]


def test_a_line_past_max_line_bytes_is_an_error_record_and_the_rest_is_read(tmp_path):
    (tmp_path / "predictions_00001.jsonl").write_text(
        prediction_line("gs://b/a.mp4")
        + json.dumps({"instance": instance("gs://b/long.mp4"), "prediction": [moment("x" * 3 * MB, 1.0, 0.5)]})
        + "\n"
        + prediction_line("gs://b/c.mp4")
    )
    result = parse(output_directory=f"file://{tmp_path}", max_line_bytes=MB)
    assert result["rows"] == 2 and result["errors"] == 1
    [error] = result["error_records"]
    assert error["file"].endswith("predictions_00001.jsonl") and error["line"] == 2
    assert error["message"].startswith("output line of 3145") and "max_line_bytes=1048576" in error["message"]


@pytest.mark.parametrize("ends_with_newline", [True, False])
def test_a_long_line_is_never_held_whole(ends_with_newline):
    """40 MB in one line with a 4 MiB limit: memory stays near the limit, and the lines around it are kept."""
    body = b'{"a": 1}\n' + b"x" * (40 * MB) + (b'\n{"b": 2}\n' if ends_with_newline else b"")
    stream = io.BytesIO(body)
    tracemalloc.start()
    try:
        items = list(chunks.iter_chunks(stream, size=MB, max_line_bytes=4 * MB))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert items[:2] == [b'{"a": 1}\n', chunks.LongLine(40 * MB)]
    assert items[2:] == ([b'{"b": 2}\n'] if ends_with_newline else [])
    assert peak < 12 * MB


def test_lines_are_cut_at_newlines_only_and_joined_once():
    """Lines across many blocks come out whole; U+2028 and a CR inside a line do not cut it."""
    lines = [json.dumps({"n": n, "text": "a\u2028b\u2029c" * n}, ensure_ascii=False).encode() for n in range(200)]
    body = b"\n".join(lines) + b"\n"
    items = list(chunks.iter_chunks(io.BytesIO(body), size=7, max_line_bytes=10 * MB))
    assert b"".join(items) == body and all(item.endswith(b"\n") for item in items)


def test_bom_and_line_separators(tmp_path):
    """A UTF-8 BOM opening a file (as some editors and exporters write) and U+2028 inside a value."""
    (tmp_path / "predictions_00001.jsonl").write_bytes(b"\xef\xbb\xbf" + prediction_line("gs://b/bom.mp4").encode())
    line = json.dumps({"instance": instance("gs://b/a\u2028b.mp4"), "prediction": [moment("wa\u2029ve", 1.0, 0.9)]})
    (tmp_path / "predictions_00002.jsonl").write_text(line + "\n", encoding="utf-8")
    result = parse(output_directory=f"file://{tmp_path}")
    assert result["errors"] == 0 and result["rows"] == 2
    assert {p["video_uri"] for p in result["predictions"]} == {"gs://b/bom.mp4", "gs://b/a\u2028b.mp4"}


def test_videos_seen_in_many_chunks_take_memory_once_and_are_counted_exactly():
    from airflow_provider_video_actions.parse.count import ParseStats, video_hashes

    stats, videos = ParseStats(), video_hashes(f"gs://b/{n}.mp4" for n in range(1000))
    for _ in range(100):  # every chunk holds the same 1000 videos
        stats.add_kept(1000, 0, videos, 0, [])
    assert stats.videos == 1000
    assert sum(len(bucket) for bucket in stats.video_buckets) < 4 * 1000  # not one hash per video per chunk


PARSE_FROM_GCS = """
import pathlib, sys, tempfile
from google.cloud import storage
from tests.benchmarks.bench_parse import generate
from airflow_provider_video_actions.operators.parse import ParseVideoActionPredictionsOperator

folder = pathlib.Path(tempfile.mkdtemp())
generate(folder / "in", 1)
bucket = storage.Client(project="test").bucket(sys.argv[1])
for path in (folder / "in").iterdir():
    bucket.blob(f"no-vertex/{path.name}").upload_from_filename(str(path))
result = ParseVideoActionPredictionsOperator(
    task_id="parse", output_directory=f"gs://{sys.argv[1]}/no-vertex", destination=f"file://{folder}/out.parquet"
).execute({})
assert result["rows"] > 0, result
print(sorted(name for name in sys.modules if name.startswith("google.cloud.aiplatform")))
"""


def test_a_parse_from_gcs_imports_no_vertex_ai_client(emulator):
    """Reading files needs the storage client only: the Vertex AI client's imports cost ~75 MB and ~3 CPU s."""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", PARSE_FROM_GCS, BUCKET], capture_output=True, text=True, timeout=600, env=os.environ
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
