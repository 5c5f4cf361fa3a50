"""Bad input gets a clear error naming the parameter and the fix: a table of cases across the operators."""

from __future__ import annotations

import pytest

from airflow_provider_video_actions.job import VideoActionsValueError
from airflow_provider_video_actions.operators.parse import ParseVideoActionPredictionsOperator
from airflow_provider_video_actions.operators.submit import VideoActionBatchPredictionOperator
from airflow_provider_video_actions.sensors.wait import VideoActionBatchPredictionSensor
from tests.conftest import BUCKET, run_dag, task_states, write_dag

SUBMIT = {
    "project_id": "my-project",
    "region": "us-central1",
    "model": "123",
    "gcs_destination_prefix": "gs://bucket/out",
    "videos": ["gs://bucket/a.mp4"],
}
V = "gs://bucket/a.mp4"
J = "projects/p/locations/us-central1/batchPredictionJobs/1"

SUBMIT_CASES = {
    "two inputs": ({"videos_prefix": "gs://bucket/videos/"}, r"exactly one of videos, videos_prefix or gcs_source; got videos, videos_prefix"),
    "no input": ({"videos": None}, r"exactly one of videos, videos_prefix or gcs_source; got none"),
    "three inputs": ({"videos_prefix": "gs://bkt1/x/", "gcs_source": "gs://bkt1/i.jsonl"}, r"exactly one of"),
    "non-gs video": ({"videos": ["s3://bucket/a.mp4"]}, r"videos\[0\] content must be a gs:// URI"),
    "http video": ({"videos": ["https://example.com/a.mp4"]}, r"videos\[0\] content must be a gs:// URI"),
    "bucket only video": ({"videos": ["gs://bucket"]}, r"must name an object"),
    "folder video": ({"videos": ["gs://bucket/dir/"]}, r"must name an object"),
    "bad bucket name": ({"videos": ["gs://B!/a.mp4"]}, r"invalid bucket name"),
    "unknown extension": ({"videos": ["gs://bucket/a.mkv"]}, r"cannot tell the video type.*\.mp4, \.avi, \.mov"),
    "no extension": ({"videos": ["gs://bucket/video"]}, r"cannot tell the video type"),
    "unsupported mime": ({"videos": [{"content": V, "mime_type": "video/webm"}]}, r"mime_type 'video/webm'.*not supported"),
    "start after end": ({"videos": [{"content": V, "time_segment_start": 5, "time_segment_end": 2}]}, r"ends at 2.0s, not after its start 5.0s"),
    "start equals end": ({"videos": [{"content": V, "time_segment_start": "3s", "time_segment_end": "3s"}]}, r"not after its start"),
    "negative start": ({"videos": [{"content": V, "time_segment_start": -1}]}, r"time_segment_start.*zero or more seconds"),
    "infinite start": ({"videos": [{"content": V, "time_segment_start": "inf"}]}, r"time_segment_start.*cannot be infinite"),
    "huge integer start": ({"videos": [{"content": V, "time_segment_start": 10**400}]}, r"time_segment_start.*must be seconds, got an integer of 1329 bits"),
    "text segment": ({"videos": [{"content": V, "time_segment_end": "ten"}]}, r"time_segment_end.*seconds like 1.5"),
    "nan segment": ({"videos": [{"content": V, "time_segment_end": float("nan")}]}, r"zero or more seconds"),
    "bool segment": ({"videos": [{"content": V, "time_segment_start": True}]}, r"seconds as a number"),
    "unknown video key": ({"videos": [{"content": V, "start": 1}]}, r"unknown keys \['start'\]"),
    "video not str or dict": ({"videos": [42]}, r"videos\[0\] items must be gs:// URIs or dicts"),
    "videos is a string": ({"videos": V}, r"videos must be a list"),
    "videos empty": ({"videos": []}, r"videos is empty"),
    "threshold above 1": ({"confidence_threshold": 1.5}, r"confidence_threshold must be a number between 0 and 1, got 1.5"),
    "threshold negative": ({"confidence_threshold": -0.1}, r"confidence_threshold must be a number between 0 and 1"),
    "threshold text": ({"confidence_threshold": "high"}, r"confidence_threshold must be a number between 0 and 1"),
    "max predictions zero": ({"max_predictions": 0}, r"max_predictions must be a positive integer"),
    "max predictions float": ({"max_predictions": 2.5}, r"max_predictions must be a positive integer"),
    "poll interval zero": ({"poll_interval": 0}, r"poll_interval must be a finite positive number"),
    "timeout negative": ({"timeout": -5}, r"timeout must be a finite positive number"),
    "failed ratio above 1": ({"max_failed_ratio": 2}, r"max_failed_ratio must be a number between 0 and 1"),
    "model with spaces": ({"model": "my model"}, r"model must be a model ID"),
    "model not a name": ({"model": -123}, r"model must be a model ID .* got -123"),  # a positive int is an ID
    "model other region": ({"model": "projects/p/locations/europe-west4/models/1"}, r"lives in region 'europe-west4' but region='us-central1'"),
    "model endpoint path": ({"model": "projects/p/locations/us-central1/endpoints/1"}, r"model must be a model ID"),
    "region bad": ({"region": "US Central"}, r"region must be a Vertex AI region"),
    "project empty": ({"project_id": ""}, r"project_id must be a Google Cloud project id"),
    "destination not gs": ({"gcs_destination_prefix": "/tmp/out"}, r"gcs_destination_prefix must be a gs:// URI"),
    "prefix not gs": ({"videos": None, "videos_prefix": "bucket/videos"}, r"videos_prefix must be a gs:// URI"),
    "gcs_source not gs": ({"videos": None, "gcs_source": "instances.jsonl"}, r"gcs_source must be a gs:// URI"),
    "gcs_source list item": ({"videos": None, "gcs_source": ["gs://bkt1/i.jsonl", "file.jsonl"]}, r"gcs_source must be a gs:// URI"),
    "label key upper": ({"labels": {"Team": "x"}}, r"labels key 'Team' is invalid"),
    "label value colon": ({"labels": {"team": "a:b"}}, r"labels\['team'\] = 'a:b' is invalid"),
    "label value long": ({"labels": {"team": "x" * 64}}, r"labels\['team'\].*is invalid"),
    "labels not dict": ({"labels": ["team"]}, r"labels must be a dict"),
    # Found by a hostile-input review: each passed construction and failed later, or never.
    "project None": ({"project_id": None}, r"project_id must be a Google Cloud project id .* got None"),
    "region None": ({"region": None}, r"region must be a Vertex AI region .* got None"),
    "model None": ({"model": None}, r"model is required"),
    "destination None": ({"gcs_destination_prefix": None}, r"gcs_destination_prefix must be a gs:// URI .* got None"),
    "machine type number": ({"machine_type": 5}, r"machine_type must be a name"),
    "service account number": ({"service_account": 5}, r"service_account must be a name"),
    "encryption key spaced": ({"encryption_key": " k"}, r"encryption_key must be a name"),
    "accelerator type number": ({"machine_type": "n1-standard-4", "accelerator_type": 5}, r"accelerator_type must be a name"),
    "replicas over int32": ({"machine_type": "n1-standard-4", "max_replica_count": 2**31}, r"max_replica_count must be at most 2147483647"),
    "accelerators over int32": ({"machine_type": "n1-standard-4", "accelerator_count": 2**31}, r"accelerator_count must be at most"),
    "prompt number": ({"model": "gemini-2.5-flash", "action_labels": ["wave"], "prompt": 5}, r"prompt must be text"),
    "poll interval huge": ({"poll_interval": 10**400}, r"poll_interval must be a finite positive number"),
    "timeout huge": ({"timeout": 10**400}, r"timeout must be a finite positive number"),
    "gcs_source number": ({"videos": None, "gcs_source": 5}, r"gcs_source must be an instances JSONL URI or a list"),
}  # fmt: skip

PARSE_CASES = {
    "no source": ({}, r"exactly one of job .* or output_directory"),
    "two sources": ({"job": {"output_directory": "gs://bkt1/o"}, "output_directory": "gs://bkt1/o"}, r"exactly one of job"),
    "bad destination format": ({"output_directory": "gs://bkt1/o", "destination": "gs://bkt1/p.xlsx"}, r"must end in \.jsonl, \.csv, \.parquet"),
    "min confidence above 1": ({"output_directory": "gs://bkt1/o", "min_confidence": 3}, r"min_confidence must be a number between 0 and 1"),
    "top_k zero": ({"output_directory": "gs://bkt1/o", "top_k": 0}, r"top_k must be a positive integer"),
    "xcom bytes negative": ({"output_directory": "gs://bkt1/o", "max_xcom_bytes": -1}, r"max_xcom_bytes must be a positive integer"),
    "malformed limit negative": ({"output_directory": "gs://bkt1/o", "max_malformed_lines": -1}, r"max_malformed_lines must be None or an integer"),
    "malformed limit bool": ({"output_directory": "gs://bkt1/o", "max_malformed_lines": True}, r"max_malformed_lines must be None or an integer"),
    "labels empty": ({"output_directory": "gs://bkt1/o", "labels": []}, r"labels is empty, which would keep no prediction"),
    "labels dict": ({"output_directory": "gs://bkt1/o", "labels": {"wave": 1}}, r"labels must be a list of label names"),
    "labels text": ({"output_directory": "gs://bkt1/o", "labels": "wave"}, r"labels must be a list of label names"),
    "labels number": ({"output_directory": "gs://bkt1/o", "labels": 5}, r"labels must be a list of label names"),
    "label spaced": ({"output_directory": "gs://bkt1/o", "labels": [" wave"]}, r"without surrounding spaces, got ' wave'"),
    "asset alias empty": ({"output_directory": "gs://bkt1/o", "destination": "gs://bkt1/p.jsonl", "asset_alias": ""}, r"asset_alias must be an AssetAlias name"),
    "action labels number": ({"output_directory": "gs://bkt1/o", "action_labels": 5}, r"action_labels"),
    "action labels text": ({"output_directory": "gs://bkt1/o", "action_labels": "wave"}, r"action_labels"),
    "progress huge": ({"output_directory": "gs://bkt1/o", "progress_interval": 10**400}, r"progress_interval must be a finite positive"),
}  # fmt: skip

SENSOR_CASES = {
    "job id only": ({"job_name": "123"}, r"job_name must be a full resource name"),
    "model name": ({"job_name": "projects/p/locations/us-central1/models/1"}, r"job_name must be a full resource name"),
    "poll floor nan": ({"job_name": J, "poke_interval": 0.001, "min_poll_interval": float("nan")}, r"min_poll_interval must be a finite positive"),
    "poll floor negative": ({"job_name": J, "min_poll_interval": -1}, r"min_poll_interval must be a finite positive"),
    "poll floor text": ({"job_name": J, "min_poll_interval": "x"}, r"min_poll_interval must be a finite positive"),
    "timeout infinite": ({"job_name": J, "timeout": float("inf")}, r"timeout must be a finite positive"),
    "timeout bool": ({"job_name": J, "timeout": True}, r"timeout must be a finite positive"),
    "poke interval bool": ({"job_name": J, "poke_interval": True}, r"poke_interval must be a finite positive"),
}  # fmt: skip


@pytest.mark.parametrize(("kwargs", "message"), SUBMIT_CASES.values(), ids=SUBMIT_CASES.keys())
def test_submit_rejects(kwargs, message):
    with pytest.raises(VideoActionsValueError, match=message):
        VideoActionBatchPredictionOperator(task_id="t", **{**SUBMIT, **kwargs})


@pytest.mark.parametrize(("kwargs", "message"), PARSE_CASES.values(), ids=PARSE_CASES.keys())
def test_parse_rejects(kwargs, message):
    with pytest.raises(VideoActionsValueError, match=message):
        ParseVideoActionPredictionsOperator(task_id="t", **kwargs)


@pytest.mark.parametrize(("kwargs", "message"), SENSOR_CASES.values(), ids=SENSOR_CASES.keys())
def test_sensor_rejects(kwargs, message):
    with pytest.raises(VideoActionsValueError, match=message):
        VideoActionBatchPredictionSensor(task_id="t", **kwargs)


def test_templates_are_checked_after_rendering_not_before():
    op = VideoActionBatchPredictionOperator(
        task_id="t", **{**SUBMIT, "model": "{{ params.model }}", "videos": "{{ params.videos }}"}
    )
    assert op.model == "{{ params.model }}"


BAD_RENDERED = {
    "videos rendered to a string": (
        {"videos": "{{ params.videos }}"},
        {"videos": "gs://x/a.mp4"},
        "videos must be a list",
    ),
    "model rendered badly": ({"model": "{{ params.model }}"}, {"model": "a b"}, "model must be a model ID"),
    "empty prefix": (
        {"videos": None, "videos_prefix": f"gs://{BUCKET}/{{{{ params.prefix }}}}"},
        {"prefix": "nothing/"},
        "holds no video files",
    ),
}


@pytest.mark.parametrize(("options", "params", "message"), BAD_RENDERED.values(), ids=BAD_RENDERED.keys())
def test_bad_rendered_values_fail_the_task_without_creating_a_job(
    airflow_db, emulator, capfd, options, params, message
):
    dag_id = "bad_" + "_".join(params)
    kwargs = {
        "project_id": "test-project",
        "region": "us-central1",
        "model": "42",
        "gcs_destination_prefix": f"gs://{BUCKET}/out",
        "videos": [f"gs://{BUCKET}/videos/wave.mp4"],
        **options,
    }
    write_dag(
        dag_id,
        f"""
        dag.params.update({params!r})
        VideoActionBatchPredictionOperator(task_id="predict", **{kwargs!r})
        """,
    )
    creates = emulator.calls["CreateBatchPredictionJob"]
    run = run_dag(dag_id)
    assert task_states(run) == {"predict": "failed"}
    assert emulator.calls["CreateBatchPredictionJob"] == creates
    assert message in capfd.readouterr().out


@pytest.mark.parametrize(
    ("state", "message"),
    [([], r"job: state must be a job state's name or number, got list"), (5, r"ended in JOB_STATE_FAILED"),
     (3, r"is JOB_STATE_RUNNING, not finished")],
)  # fmt: skip
def test_a_summary_state_given_as_a_number_or_garbage_is_read_as_google_writes_it(tmp_path, state, message):
    """The submit summary's state was used unchecked: a list crashed (TypeError), FAILED as 5 parsed as success."""
    out = tmp_path / "prediction-model-2026_01_01T00_00_00_000Z"
    out.mkdir()
    (out / "predictions_00001.jsonl").write_text("")
    parse = ParseVideoActionPredictionsOperator(task_id="p", job={"output_directory": f"file://{out}", "state": state})
    with pytest.raises(VideoActionsValueError, match=message):
        parse.execute({})


def test_action_labels_on_action_recognition_output_is_refused(tmp_path):
    """The parse ignored them there: a DAG copied from a Gemini one kept every label without a word."""
    out = tmp_path / "prediction-model-2026_01_01T00_00_00_000Z"
    out.mkdir()
    (out / "predictions_00001.jsonl").write_text("")
    parse = ParseVideoActionPredictionsOperator(task_id="p", output_directory=f"file://{out}", action_labels=["wave"])
    with pytest.raises(VideoActionsValueError, match=r"^action_labels .* this is action_recognition output"):
        parse.execute({})
