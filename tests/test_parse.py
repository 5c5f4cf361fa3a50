"""The parse operator on hand-written output directories (file://) and on the emulated GCS."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_video_actions.operators.parse import ParseVideoActionPredictionsOperator
from tests.conftest import BUCKET


def moment(label: str, at: float, confidence: float, label_id: str = "1") -> dict:
    return {"id": label_id, "displayName": label, "timeSegmentStart": f"{at}s", "timeSegmentEnd": f"{at}s",
            "confidence": confidence}  # fmt: skip


def instance(video: str, start: str = "0s", end: str = "Infinity") -> dict:
    return {"content": video, "mimeType": "video/mp4", "timeSegmentStart": start, "timeSegmentEnd": end}


@pytest.fixture
def output_dir(tmp_path):
    """A job output directory with two predictions files and an errors file (nested and flat errors)."""
    out = tmp_path / "prediction-model-2026_01_01T00_00_00_000Z"
    out.mkdir()
    (out / "predictions_00001.jsonl").write_text(
        json.dumps({"instance": instance("gs://b/a.mp4"), "prediction": [moment("wave", 1.5, 0.9), moment("jump", 0.5, 0.3, "2")]})
        + "\n"
        + json.dumps({"instance": instance("gs://b/b.mp4", "2s", "4.5s"), "prediction": [moment("run", 3.0, 0.8, "3")]})
        + "\n"
    )  # fmt: skip
    (out / "predictions_00002.jsonl").write_text(
        json.dumps({"instance": instance("gs://b/c.mp4"), "prediction": []}) + "\n"
        + '{"instance": {"content": "gs://b/d.mp4"}, "prediction": [{"displayName": "wave", "confid\n'
    )  # fmt: skip
    (out / "errors_00001.jsonl").write_text(
        json.dumps({"instance": instance("gs://b/missing.mp4"), "error": {"code": 5, "message": "not found"}}) + "\n"
        + json.dumps({**instance("gs://b/flat.avi"), "error": {"code": 3, "message": "bad mime"}}) + "\n"
    )  # fmt: skip
    return f"file://{out}"


def parse(**kwargs) -> dict:
    return ParseVideoActionPredictionsOperator(task_id="parse", **kwargs).execute({})


def test_records_errors_and_malformed_lines_are_all_reported(output_dir):
    result = parse(output_directory=output_dir)
    assert result["rows"] == 3 and result["videos"] == 3 and result["instances"] == 3
    assert result["label_counts"] == {"jump": 1, "run": 1, "wave": 1}
    by_video = {(p["video_uri"], p["label"]): p for p in result["predictions"]}
    assert by_video[("gs://b/a.mp4", "wave")] == {
        "video_uri": "gs://b/a.mp4", "segment_start": 0.0, "segment_end": None, "label_id": "1",
        "label": "wave", "time_start": 1.5, "time_end": 1.5, "confidence": 0.9,
    }  # fmt: skip
    assert by_video[("gs://b/b.mp4", "run")]["segment_end"] == 4.5
    assert result["errors"] == 3 and result["malformed_lines"] == 1
    errors = {(e["video_uri"], e["code"]) for e in result["error_records"]}
    assert errors == {("gs://b/missing.mp4", 5), ("gs://b/flat.avi", 3), (None, None)}
    [malformed] = [e for e in result["error_records"] if e["code"] is None]
    assert malformed["file"].endswith("predictions_00002.jsonl") and malformed["line"] == 2


def test_filters(output_dir):
    assert {p["label"] for p in parse(output_directory=output_dir, min_confidence=0.5)["predictions"]} == {
        "wave",
        "run",
    }
    assert {p["label"] for p in parse(output_directory=output_dir, labels=["jump"])["predictions"]} == {"jump"}
    top1 = parse(output_directory=output_dir, top_k=1)["predictions"]
    assert {(p["video_uri"], p["label"]) for p in top1} == {("gs://b/a.mp4", "wave"), ("gs://b/b.mp4", "run")}


def test_malformed_line_threshold_fails_with_file_and_line(output_dir):
    with pytest.raises(AirflowException, match=r"predictions_00002.jsonl line 2"):
        parse(output_directory=output_dir, max_malformed_lines=0)
    assert parse(output_directory=output_dir, max_malformed_lines=1)["malformed_lines"] == 1


def test_xcom_budget_points_to_a_gcs_destination(output_dir):
    with pytest.raises(AirflowFailException, match=r"max_xcom_bytes=200.*destination='gs://"):
        parse(output_directory=output_dir, max_xcom_bytes=200)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_local_destinations(output_dir, tmp_path, fmt):
    dest = tmp_path / "parsed" / f"moments.{fmt}"
    result = parse(output_directory=output_dir, destination=f"file://{dest}")
    assert result["uri"] == f"file://{dest}" and "predictions" not in result
    if fmt == "jsonl":
        rows = [json.loads(line) for line in dest.read_text().splitlines()]
    elif fmt == "csv":
        rows = list(csv.DictReader(dest.open()))
    else:
        rows = pq.read_table(dest).to_pylist()
    assert len(rows) == 3 and {r["label"] for r in rows} == {"wave", "jump", "run"}
    errors = (tmp_path / "parsed" / "moments.errors.jsonl").read_text().splitlines()
    assert len(errors) == result["errors"] == 3
    assert [p.name for p in (tmp_path / "parsed").iterdir() if p.name.startswith(".tmp")] == []


def test_parse_is_repeatable(output_dir, tmp_path):
    dest = tmp_path / "moments.parquet"
    parse(output_directory=output_dir, destination=f"file://{dest}")
    first = dest.read_bytes()
    parse(output_directory=output_dir, destination=f"file://{dest}")
    assert pq.read_table(dest).to_pylist() == pq.read_table(pa.BufferReader(first)).to_pylist()


def test_empty_output_directory_says_what_to_check(tmp_path):
    with pytest.raises(AirflowException, match=r"No predictions_<n>.jsonl or errors_<n>.jsonl files"):
        parse(output_directory=f"file://{tmp_path}")


def test_job_dict_without_output_directory(tmp_path):
    with pytest.raises(AirflowFailException, match="job must be the submit operator's result"):
        parse(job={"name": "x", "state": "JOB_STATE_FAILED"})


def test_failed_write_leaves_no_destination(emulator, storage_client, output_dir):
    """A parse that fails half way (XCom-free, to GCS) leaves no object behind."""
    dest = f"gs://{BUCKET}/parsed/failed.jsonl"
    with pytest.raises(AirflowException):
        parse(output_directory=output_dir, destination=dest, max_malformed_lines=0)
    assert not storage_client.bucket(BUCKET).blob("parsed/failed.jsonl").exists()
    assert not storage_client.bucket(BUCKET).blob("parsed/failed.errors.jsonl").exists()
