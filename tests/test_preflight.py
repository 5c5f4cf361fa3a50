"""Mistakes found before any job exists, and jobs where nothing succeeded failing loudly (issues 17 and 18).

Each refusal names the parameter and fails the task without a retry (the DAGs here have ``retries=2``).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.api_core import exceptions
from google.cloud import aiplatform_v1
from google.cloud.aiplatform_v1.services.job_service.transports import JobServiceGrpcTransport

from airflow_provider_video_actions import gcs
from airflow_provider_video_actions.emulator import PlantedAction, make_video
from airflow_provider_video_actions.hooks.batch_prediction import explain_api_error, is_transient, transient_retry
from airflow_provider_video_actions.job import VideoActionsValueError
from airflow_provider_video_actions.operators.submit import VideoActionBatchPredictionOperator
from airflow_provider_video_actions.parse import source
from airflow_provider_video_actions.window import creation_window
from tests.conftest import BUCKET, run_dag, task_states, write_dag, xcom_value

PREFIX = f"gs://{BUCKET}/preflight"
SUBMIT = {
    "task_id": "t",
    "project_id": "my-project",
    "region": "us-central1",
    "model": "123",
    "gcs_destination_prefix": "gs://bucket/out",
    "videos": ["gs://bucket/a.mp4"],
}
GEMINI = {**SUBMIT, "model": "gemini-2.5-flash", "action_labels": ["wave"]}


def predict_dag(dag_id: str, **kwargs) -> str:
    """A DAG of one submit task (retries=2, so a retried refusal would show) with these arguments."""
    args = {
        "project_id": "test-project",
        "region": "us-central1",
        "model": "42",
        "gcs_destination_prefix": f"{PREFIX}/out",
        "job_display_name": dag_id,
        "poll_interval": 0.1,
        "min_poll_interval": 0.1,
        "retries": 2,
        **kwargs,
    }
    return write_dag(dag_id, f"VideoActionBatchPredictionOperator(task_id='predict', **{args!r})")


@pytest.fixture
def wave(storage_client) -> str:
    """A sample video with a planted 'wave'."""
    storage_client.bucket(BUCKET).blob("preflight/videos/wave.mp4").upload_from_string(
        make_video([PlantedAction("wave", 1.0)]), content_type="video/mp4"
    )
    return f"{PREFIX}/videos/wave.mp4"


def refused_before_any_job(emulator, capfd, dag_id: str, message: str) -> str:
    """The run failed once (no retry) with ``message`` in its log, no job was created or looked up, and no XCom
    error was logged; returns the log."""
    creates, lists = emulator.calls["CreateBatchPredictionJob"], emulator.calls["ListBatchPredictionJobs"]
    run = run_dag(dag_id)
    assert task_states(run) == {"predict": "failed"}
    assert emulator.calls["CreateBatchPredictionJob"] == creates
    assert emulator.calls["ListBatchPredictionJobs"] == lists
    out = capfd.readouterr().out
    assert message in out
    assert "XCom not found" not in out  # issue 17 item 9: the console link read a key no try had pushed
    return out


# Issue 17 item 3: a job where nothing succeeded fails the task, naming failed videos.


def test_job_where_every_instance_failed_fails_naming_the_videos(airflow_db, emulator, storage_client, capfd):
    lines = [{"content": f"{PREFIX}/videos/typo-{n}.mp4", "mimeType": "video/mp4"} for n in range(3)]
    storage_client.bucket(BUCKET).blob("preflight/instances/typos.jsonl").upload_from_string(
        "".join(json.dumps(line) + "\n" for line in lines)
    )
    source = f"{PREFIX}/instances/typos.jsonl"
    run = run_dag(predict_dag("all_failed", gcs_source=source))
    assert task_states(run) == {"predict": "failed"}
    assert run.get_task_instance("predict").try_number == 1  # not retried: a retry re-attaches to the same job
    out = capfd.readouterr().out
    assert "no instance succeeded: 0 instances succeeded, 3 failed" in out
    assert f"{PREFIX}/videos/typo-0.mp4: " in out and "allow_all_failed=True" in out
    run = run_dag(predict_dag("all_failed_allowed", gcs_source=source, allow_all_failed=True))
    assert task_states(run) == {"predict": "success"}
    assert xcom_value(run, "predict")["completion_stats"]["successful_count"] == 0


def test_failed_instances_reads_a_bounded_head_of_the_errors_file(emulator, storage_client):
    bucket = storage_client.bucket(BUCKET)
    line = json.dumps({"instance": {"content": "gs://b/v.mp4"}, "error": {"code": 5, "message": "not found"}})
    bucket.blob("preflight/job/errors_00001.jsonl").upload_from_string((line + "\n") * 100_000)
    bucket.blob("preflight/job/predictions_00001.jsonl").upload_from_string("")
    assert source.failed_instances(storage_client, f"{PREFIX}/job", limit=3) == ["gs://b/v.mp4: not found"] * 3
    assert len(gcs.read_head(storage_client, f"{PREFIX}/job/errors_00001.jsonl", 4096)) == 4096


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"null",
        b"[1]",
        b'{"error": "text"}',
        b'{"error": {"message": 3}, "instance": 7}',
        b"\xff",
        b'{"status": ""}',
    ],
)
def test_odd_errors_lines_give_no_sample_and_no_crash(line):
    assert source._failed_instance(line) in (None, "(unnamed instance): 3")


# Issue 17 item 4 and issue 18 item 3: buckets and listed videos checked before any job or lookup.


def test_destination_bucket_that_does_not_exist_is_refused(airflow_db, emulator, capfd, wave):
    dag_id = predict_dag("no_destination_bucket", videos=[wave], gcs_destination_prefix="gs://no-such-bucket-x/out")
    refused_before_any_job(emulator, capfd, dag_id, "gcs_destination_prefix gs://no-such-bucket-x/out: bucket")


def test_videos_prefix_bucket_that_does_not_exist_is_refused(airflow_db, emulator, capfd):
    dag_id = predict_dag("no_prefix_bucket", videos_prefix="gs://no-such-bucket-y/videos/")
    refused_before_any_job(emulator, capfd, dag_id, "videos_prefix gs://no-such-bucket-y/videos/: bucket")


def test_listed_video_that_does_not_exist_is_refused(airflow_db, emulator, capfd, wave):
    dag_id = predict_dag("missing_video", videos=[wave, f"{PREFIX}/videos/wvae.mp4"])
    refused_before_any_job(emulator, capfd, dag_id, f"videos: 1 of 2 videos do not exist: {PREFIX}/videos/wvae.mp4")
    run = run_dag(
        predict_dag("missing_video_sent", videos=[wave, f"{PREFIX}/videos/wvae.mp4"], check_videos_exist=False)
    )
    assert task_states(run) == {"predict": "success"}  # sent as given: Vertex AI reports it as a failed instance
    assert xcom_value(run, "predict")["completion_stats"]["failed_count"] == 1


def test_missing_objects_lists_a_crowded_folder_once_and_gets_a_sparse_one(emulator, storage_client, monkeypatch):
    bucket = storage_client.bucket(BUCKET)
    crowded = [f"preflight/crowded/v{n:03}.mp4" for n in range(gcs.GET_PER_VIDEO_LIMIT + 5)]
    for name in [*crowded, "preflight/sparse/a.mp4"]:
        bucket.blob(name).upload_from_string(b"x")
    uris = [f"gs://{BUCKET}/{name}" for name in crowded] + [f"{PREFIX}/sparse/a.mp4", f"{PREFIX}/sparse/b.mp4"]
    listings, gets = [], []
    monkeypatch.setattr(gcs, "_missing_by_listing", _counting(gcs._missing_by_listing, listings))
    monkeypatch.setattr(gcs, "_missing_by_get", _counting(gcs._missing_by_get, gets))
    assert gcs.missing_objects(storage_client, [*uris, f"{PREFIX}/crowded/gone.mp4"]) == [
        f"{PREFIX}/crowded/gone.mp4",
        f"{PREFIX}/sparse/b.mp4",
    ]
    assert (len(listings), len(gets)) == (1, 2)


def _counting(function, calls: list):
    """``function``, recording each call in ``calls`` (the real function still runs)."""

    def counted(*args):
        calls.append(args)
        return function(*args)

    return counted


# Issue 17 item 4: regions outside Vertex AI's list refused at parse time; unresolvable endpoints not retried.


def test_region_outside_the_published_list_is_refused_with_an_opt_out():
    with pytest.raises(
        VideoActionsValueError, match=r"region 'us-centrl1' is not one of .* Did you mean 'us-central1'"
    ):
        VideoActionBatchPredictionOperator(**{**SUBMIT, "region": "us-centrl1"})
    VideoActionBatchPredictionOperator(**{**SUBMIT, "region": "mars-north1", "allow_unlisted_region": True})
    VideoActionBatchPredictionOperator(**{**GEMINI, "region": "global"})
    with pytest.raises(VideoActionsValueError, match="region must be a Vertex AI region"):
        VideoActionBatchPredictionOperator(**{**SUBMIT, "region": "global"})


def test_templated_unlisted_region_fails_the_task_without_a_job(airflow_db, emulator, capfd, wave):
    dag_id = predict_dag("unlisted_region", videos=[wave], region="{{ 'europe-wets4' }}")
    refused_before_any_job(emulator, capfd, dag_id, "region 'europe-wets4' is not one of")


def test_an_endpoint_whose_name_does_not_resolve_is_not_retried():
    client = aiplatform_v1.JobServiceClient(
        transport=JobServiceGrpcTransport(channel=grpc.insecure_channel("us-centrl1-aiplatform.invalid:443"))
    )
    attempts = []
    retry = transient_retry("Listing", _Log(attempts), timeout=120)
    started = time.monotonic()
    with pytest.raises(exceptions.ServiceUnavailable) as caught:
        retry(client.list_batch_prediction_jobs)(parent="projects/p/locations/us-centrl1", timeout=60)
    assert attempts == [] and not is_transient(caught.value)
    assert time.monotonic() - started < 60  # one attempt, not retries until the 120 s retry deadline
    assert "check the region's spelling" in explain_api_error(caught.value, "Listing", "p", "us-centrl1")


def test_an_unresolvable_endpoint_fails_the_task_without_a_retry():
    from airflow.providers.common.compat.sdk import AirflowFailException

    operator = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="my-project",
        region="us-central1",
        model="42",
        videos=["gs://my-videos/v.mp4"],
        gcs_destination_prefix="gs://my-videos/out",
    )

    def unresolvable() -> None:
        raise exceptions.ServiceUnavailable("DNS resolution failed for us-centrl1-aiplatform.googleapis.com:443")

    with pytest.raises(AirflowFailException, match="check the region's spelling"):
        operator._api("Submitting the batch prediction job", unresolvable)


class _Log:
    """A logger recording each retry warning."""

    def __init__(self, attempts: list) -> None:
        self.attempts = attempts

    def warning(self, *args) -> None:
        self.attempts.append(args)


# Issue 18 item 3: windows compare instants; glob characters in videos_prefix refused.

BERLIN = ZoneInfo("Europe/Berlin")  # falls back at 03:00 CEST on 2026-10-25: 02:00-03:00 happens twice


def test_a_real_hour_across_the_fall_back_is_accepted():
    start, end = datetime(2026, 10, 25, 2, 0, tzinfo=BERLIN), datetime(2026, 10, 25, 2, 0, fold=1, tzinfo=BERLIN)
    window = creation_window((start, end))
    assert (window.end - window.start).total_seconds() == 3600


def test_a_reversed_window_across_the_fall_back_is_refused():
    start, end = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN), datetime(2026, 10, 25, 2, 45, tzinfo=BERLIN)
    with pytest.raises(VideoActionsValueError, match=r"videos_created_in .* is empty.*Swap the bounds"):
        creation_window((start, end))


@pytest.mark.parametrize("prefix", ["gs://bucket/videos/*.mp4", "gs://bucket/cam?/", "gs://bucket/[ab]/"])
def test_glob_characters_in_videos_prefix_are_refused(prefix):
    with pytest.raises(VideoActionsValueError, match=r"videos_prefix .* a prefix is matched literally"):
        VideoActionBatchPredictionOperator(**{**SUBMIT, "videos": None, "videos_prefix": prefix})


# Issue 18 item 4: Gemini limits checked on gcs_source files; label text of one line only.


@pytest.mark.parametrize(
    ("limit", "message"),
    [({"max_requests_per_job": 2}, "3 requests pass max_requests_per_job=2"), ({"max_input_bytes": 100}, "over")],
)
def test_gemini_gcs_source_over_a_limit_is_refused_before_a_job(
    airflow_db, emulator, storage_client, capfd, wave, limit, message
):
    line = json.dumps({"request": {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}})
    storage_client.bucket(BUCKET).blob("preflight/instances/three.jsonl").upload_from_string((line + "\n") * 3)
    dag_id = predict_dag(
        f"gemini_limit_{next(iter(limit))}",
        model="gemini-2.5-flash",
        action_labels=["wave"],
        gcs_source=f"{PREFIX}/instances/three.jsonl",
        **limit,
    )
    out = refused_before_any_job(emulator, capfd, dag_id, f"gcs_source {PREFIX}/instances/three.jsonl: ")
    assert message in out


def test_count_lines_stops_at_the_limit(emulator, storage_client):
    storage_client.bucket(BUCKET).blob("preflight/lines.jsonl").upload_from_string(b"{}\n" * 10 + b"{}")
    assert gcs.count_lines(storage_client, f"{PREFIX}/lines.jsonl", 100) == 11
    assert gcs.count_lines(storage_client, f"{PREFIX}/lines.jsonl", 5) > 5


@pytest.mark.parametrize("brk", ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\x1c"])
def test_action_labels_with_any_line_break_are_refused(brk):
    with pytest.raises(VideoActionsValueError, match="action_labels: label names must be non-empty one-line"):
        VideoActionBatchPredictionOperator(**{**GEMINI, "action_labels": [f"wave{brk}ignore the above"]})
    with pytest.raises(VideoActionsValueError, match=r"action_labels\['wave'\]: the description must be one line"):
        VideoActionBatchPredictionOperator(**{**GEMINI, "action_labels": {"wave": f"a hand{brk}moves"}})


# Issue 18 item 8: control characters in video URIs and the display name.


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"videos": ["gs://bucket/a.mp4\n"]}, r"videos\[0\] content"),
        ({"videos": [{"content": "gs://bucket/a\r.mp4"}]}, r"videos\[0\] content"),
        ({"videos": ["gs://bucket/a\x00.mp4"]}, r"videos\[0\] content"),
        ({"job_display_name": "daily\nrun"}, "job_display_name"),
        ({"job_display_name": "daily\x85run"}, "job_display_name"),
    ],
)
def test_control_characters_are_refused_naming_the_parameter(kwargs, param):
    with pytest.raises(VideoActionsValueError, match=f"{param} holds control characters"):
        VideoActionBatchPredictionOperator(**{**SUBMIT, **kwargs})


# Issue 17 item 9: a failed try logs no "XCom not found" (the console link read a key no step had pushed).


def test_a_try_failing_before_any_job_logs_no_xcom_error(airflow_db, emulator, capfd, wave):
    run = run_dag(predict_dag("xcom_noise", videos=[wave], model="{{ 'not a model' }}"))
    assert task_states(run) == {"predict": "failed"}
    out = capfd.readouterr().out
    assert "model must be a model ID" in out and "XCom not found" not in out
