"""Both model families through the emulator: the two-family example DAG, and Gemini's bad answers from one DAG."""

from __future__ import annotations

import json

import pytest
from google.cloud import aiplatform_v1
from google.protobuf import json_format

from airflow_provider_video_actions.emulator import PlantedAction, make_video
from airflow_provider_video_actions.emulator.samples import MISSING_VIDEO
from tests.conftest import BUCKET as TEST_BUCKET
from tests.conftest import example_dag_run, run_dag, task_states, write_dag, xcom_value
from tests.test_end_to_end import assert_planted, planted

BUCKET = "video-actions-example"
LABELS = ["wave", "jump", "run", "clap", "sit", "fall"]  # the example DAG's label set, in order
MOMENT_FIELDS = ("video_uri", "segment_start", "segment_end", "label", "time_start", "time_end", "confidence")


@pytest.fixture(scope="module")
def two_families_run(airflow_db, emulator_session):
    """One run of the two-family example DAG, shared by the assertions below."""
    with example_dag_run(
        emulator_session, "video_actions_two_families.py", "video_actions_two_families", VIDEO_ACTIONS_BUCKET=BUCKET
    ) as run:
        yield run


def read(storage_client, uri: str) -> str:
    bucket, name = uri.removeprefix("gs://").split("/", 1)
    return storage_client.bucket(bucket).blob(name).download_as_text()


def test_two_family_dag_succeeds(two_families_run):
    assert two_families_run.state == "success", task_states(two_families_run)
    assert set(task_states(two_families_run).values()) == {"success"}


def test_both_families_give_the_same_records(two_families_run):
    automl, gemini = (xcom_value(two_families_run, task) for task in ("parse_automl", "parse_gemini"))
    assert_planted(automl["predictions"], planted(min_strength=0.2))
    assert_planted(gemini["predictions"], planted(min_strength=0.2))

    def moments(parsed):
        return sorted(tuple(p[f] for f in MOMENT_FIELDS) for p in parsed["predictions"])

    assert moments(gemini) == moments(automl)
    assert list(gemini["predictions"][0]) == list(automl["predictions"][0])
    assert {k: v for k, v in gemini.items() if k not in ("predictions", "error_records", "error_samples")} == {
        k: v for k, v in automl.items() if k not in ("predictions", "error_records", "error_samples")
    }


def test_gemini_label_ids_are_indexes_in_the_label_set(two_families_run):
    for record in xcom_value(two_families_run, "parse_gemini")["predictions"]:
        assert record["label_id"] == str(LABELS.index(record["label"]))


def test_missing_video_is_the_same_error_in_both_families(two_families_run):
    for task in ("parse_automl", "parse_gemini"):
        [error] = xcom_value(two_families_run, task)["error_records"]
        assert error["video_uri"] == f"gs://{BUCKET}/{MISSING_VIDEO}"
        assert error["code"] == 5
        assert "not found" in error["message"]


def test_compare_task_sees_equal_label_counts(two_families_run):
    compared = xcom_value(two_families_run, "compare_label_counts")
    assert compared["agree"] is True
    assert compared["label_counts"]["sit"] == {"automl": 1, "gemini": 1}
    assert compared["errors"] == {"automl": 1, "gemini": 1}


def test_gemini_job_reads_request_lines_and_writes_response_lines(two_families_run, storage_client):
    summary = xcom_value(two_families_run, "predict_gemini")
    assert summary["model"] == "publishers/google/models/gemini-2.5-flash"
    assert summary["gemini"]["action_labels"] == LABELS
    assert summary["gemini"]["confidence_threshold"] == 0.2
    assert summary["completion_stats"] == {"successful_count": 3, "failed_count": 1, "incomplete_count": 0}
    assert "/prediction-model-" in summary["output_directory"]
    requests = read(storage_client, summary["instances_uri"]).splitlines()
    assert len(requests) == 4
    for line in requests:  # every request line is a valid GenerateContentRequest (protobuf JSON)
        json_format.ParseDict(json.loads(line)["request"], aiplatform_v1.GenerateContentRequest.pb()())
    output = read(storage_client, summary["output_directory"] + "/predictions.jsonl").splitlines()
    for line in map(json.loads, output):
        if line["status"]:
            assert not line["response"]
        else:
            json_format.ParseDict(line["response"], aiplatform_v1.GenerateContentResponse.pb()())


def test_bad_gemini_answers_each_become_an_error_record(emulator, airflow_db, storage_client):
    """Out-of-set, schema-invalid and truncated answers, and a segment past the end, from one DAG run."""
    bucket = storage_client.bucket(TEST_BUCKET)
    names = ["good", "offlabel", "badschema", "truncated"]
    for name in names:
        video = make_video([PlantedAction("wave", 1.0, 0.5, 0.8), PlantedAction("fall", 2.5, 0.5, 0.6)])
        bucket.blob(f"gemini/{name}.mp4").upload_from_string(video, content_type="video/mp4")
    uri = f"gs://{TEST_BUCKET}/gemini/{{}}.mp4"
    videos = [uri.format(n) for n in names] + [{"content": uri.format("good"), "time_segment_start": 30}]
    dag_id = write_dag(
        "gemini_bad_answers",
        f"""
        from airflow_provider_video_actions import ParseVideoActionPredictionsOperator
        predict = VideoActionBatchPredictionOperator(
            task_id="predict", project_id="my-project", region="us-central1", model="gemini-2.5-flash",
            action_labels=["wave", "fall"], videos={videos!r},
            gcs_destination_prefix="gs://{TEST_BUCKET}/gemini-out", poll_interval=0.1, min_poll_interval=0.1,
        )
        ParseVideoActionPredictionsOperator(task_id="parse", job=predict.output)
        """,
    )
    run = run_dag(dag_id)
    assert run.state == "success", task_states(run)
    parsed = xcom_value(run, "parse")
    assert {(p["video_uri"], p["label"]) for p in parsed["predictions"]} == {
        (uri.format("good"), "wave"),
        (uri.format("good"), "fall"),
    }
    errors = {(e["video_uri"], e["segment_start"]): e for e in parsed["error_records"]}
    assert len(errors) == parsed["errors"] == 4
    assert "'off-label', which is not in the label set" in errors[(uri.format("offlabel"), 0.0)]["message"]
    assert "does not match the response schema" in errors[(uri.format("badschema"), 0.0)]["message"]
    assert "finishReason MAX_TOKENS" in errors[(uri.format("truncated"), 0.0)]["message"]
    out_of_range = errors[(uri.format("good"), 30.0)]
    assert out_of_range["code"] == 11 and "outside the video" in out_of_range["message"]
    assert parsed["malformed_lines"] == 0
