"""The example DAG, run by dag.test() against the emulator: submit -> deferred wait -> parse."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest

from airflow_provider_video_actions import path_segment
from airflow_provider_video_actions.emulator.samples import MISSING_VIDEO, SAMPLE_VIDEOS
from tests.conftest import BUCKET as TEST_BUCKET
from tests.conftest import example_dag_run, task_states, xcom_value

BUCKET = "video-actions-example"


def planted(min_strength: float = 0.0) -> dict[tuple[str, str], tuple[float, float]]:
    """(video URI, label) -> (moment, confidence) the emulator reports for the sample videos."""
    return {
        (f"gs://{BUCKET}/{name}", a.label): (a.start + a.duration / 2, a.strength)
        for name, actions in SAMPLE_VIDEOS.items()
        for a in actions
        if a.strength >= min_strength
    }


def found(records: list[dict]) -> dict[tuple[str, str], tuple[float, float]]:
    return {(r["video_uri"], r["label"]): (r["time_start"], r["confidence"]) for r in records}


def assert_planted(records: list[dict], expected: dict) -> None:
    got = found(records)
    assert got.keys() == expected.keys()
    for key, (moment, confidence) in expected.items():
        assert got[key][0] == pytest.approx(moment, abs=0.1), key
        assert got[key][1] == pytest.approx(confidence, abs=0.05), key


@pytest.fixture(scope="module")
def example_run(airflow_db, emulator_session, tmp_path_factory):
    """One run of the example DAG, shared by the assertions below."""
    timeline = tmp_path_factory.mktemp("timeline") / "timeline.png"
    with example_dag_run(
        emulator_session,
        "video_action_recognition.py",
        "video_action_recognition",
        VIDEO_ACTIONS_BUCKET=BUCKET,
        VIDEO_ACTIONS_TIMELINE=str(timeline),
    ) as run:
        yield run


def test_example_dag_succeeds(example_run):
    assert example_run.state == "success", task_states(example_run)
    assert set(task_states(example_run).values()) == {"success"}


def test_submit_returns_the_job_summary(example_run):
    summary = xcom_value(example_run, "predict")
    assert summary["state"] == "JOB_STATE_SUCCEEDED"
    assert summary["name"].startswith("projects/demo-project/locations/us-central1/batchPredictionJobs/")
    assert summary["output_directory"].startswith(f"gs://{BUCKET}/predictions/prediction-")
    assert summary["instances_uri"].startswith(f"gs://{BUCKET}/predictions/instances/")
    assert summary["completion_stats"] == {"successful_count": 3, "failed_count": 1, "incomplete_count": 0}
    assert summary["create_time"] and summary["end_time"]
    assert xcom_value(example_run, "predict", key="batch_prediction_job_name") == summary["name"]


def test_parse_to_xcom_returns_the_planted_actions(example_run):
    parsed = xcom_value(example_run, "parse_to_xcom")
    assert_planted(parsed["predictions"], planted(min_strength=0.5))
    assert parsed["rows"] == len(parsed["predictions"]) == 4
    assert parsed["videos"] == 3
    assert parsed["label_counts"] == {"clap": 1, "jump": 1, "run": 1, "wave": 1}


def test_missing_video_is_an_error_record(example_run):
    parsed = xcom_value(example_run, "parse_to_xcom")
    assert parsed["errors"] == 1
    [error] = parsed["error_records"]
    assert error["video_uri"] == f"gs://{BUCKET}/{MISSING_VIDEO}"
    assert error["code"] == 5
    assert parsed["error_samples"][0]["video"] == error["video_uri"]


def test_parse_to_parquet_writes_every_moment(example_run, storage_client):
    parsed = xcom_value(example_run, "parse_to_parquet")
    assert "predictions" not in parsed
    # The package's path_segment filter (the DAG defines none): the run id as one folder.
    assert parsed["uri"] == f"gs://{BUCKET}/parsed/{path_segment(example_run.run_id)}/moments.parquet"
    bucket, name = parsed["uri"].removeprefix("gs://").split("/", 1)
    table = pq.read_table(io.BytesIO(storage_client.bucket(bucket).blob(name).download_as_bytes()))
    assert table.num_rows == parsed["rows"] == 5
    assert_planted(table.to_pylist(), planted())
    errors_name = parsed["errors_uri"].removeprefix(f"gs://{bucket}/")
    assert MISSING_VIDEO in storage_client.bucket(bucket).blob(errors_name).download_as_text()


def test_draw_timeline_writes_a_png(example_run):
    path = xcom_value(example_run, "draw_timeline")
    with open(path, "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"


def test_example_videos_outside_the_emulator_lists_the_bucket(emulator, storage_client, monkeypatch):
    """Against a real bucket (no job service emulator), the example DAGs list videos both families take."""
    from airflow_provider_video_actions.emulator.samples import example_videos

    monkeypatch.delenv("VERTEX_AI_EMULATOR_HOST")
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", "google-cloud-platform://")  # ADC; GCS stays emulated
    bucket = storage_client.bucket(TEST_BUCKET)
    for name in ("videos/listed.mp4", "videos/listed.mov", "videos/clip.avi", "videos/notes.txt"):
        bucket.blob(name).upload_from_string(b"x")
    found = example_videos(TEST_BUCKET)
    assert {f"gs://{TEST_BUCKET}/videos/listed.mp4", f"gs://{TEST_BUCKET}/videos/listed.mov"} <= set(found)
    assert not any(uri.endswith((".avi", ".txt")) for uri in found)
