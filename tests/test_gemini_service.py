"""Gemini as Google's service speaks it, through the emulator: echo shapes, mime rules, refusals, limits, regions,
model names, sampling options, partial output of a cancelled job, and the client's user agent."""

from __future__ import annotations

import json
import time
import uuid
from types import SimpleNamespace

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform_v1
from google.protobuf import json_format

from airflow_provider_video_actions.emulator import PlantedAction, make_video
from airflow_provider_video_actions.hooks.batch_prediction import VideoActionBatchPredictionHook, _api_endpoint
from airflow_provider_video_actions.job import JobSpec, VideoActionsValueError
from airflow_provider_video_actions.operators.submit import VideoActionBatchPredictionOperator
from tests.conftest import BUCKET, PATIENCE, run_dag, task_states, write_dag, xcom_value

LABELS = ["wave", "fall"]
PREFIX = f"gs://{BUCKET}/gemini-service"


@pytest.fixture
def videos(storage_client) -> dict[str, str]:
    """The same planted video under several extensions: name -> gs:// URI."""
    video = make_video([PlantedAction("wave", 1.0, 0.5, 0.8), PlantedAction("fall", 2.5, 0.5, 0.6)])
    bucket = storage_client.bucket(BUCKET)
    uris = {}
    for name in ("a.mp4", "b.webm", "c.avi", "d.3gp"):
        bucket.blob(f"gemini-service/videos/{name}").upload_from_string(video)
        uris[name] = f"{PREFIX}/videos/{name}"
    return uris


def operator(**kwargs) -> VideoActionBatchPredictionOperator:
    args = {"task_id": "predict", "project_id": "my-project", "region": "us-central1", "model": "gemini-2.5-flash",
            "action_labels": LABELS, "gcs_destination_prefix": f"{PREFIX}/out", **kwargs}  # fmt: skip
    return VideoActionBatchPredictionOperator(**args)


def create(op: VideoActionBatchPredictionOperator) -> aiplatform_v1.BatchPredictionJob:
    """Write the instances and create the job the way the operator's submit does (find or create)."""
    ti = SimpleNamespace(dag_id="d", task_id=op.task_id, run_id=str(uuid.uuid4()), map_index=-1)
    op._deadline = time.time() + 60
    return op._find_or_create(op._spec({"ti": ti}))


def request_lines(storage_client, job: aiplatform_v1.BatchPredictionJob) -> list[dict]:
    bucket, name = job.input_config.gcs_source.uris[0].removeprefix("gs://").split("/", 1)
    text = storage_client.bucket(bucket).blob(name).download_as_text()
    return [json.loads(line)["request"] for line in text.splitlines()]


def gemini_dag(dag_id: str, predict: str, parse: str = "") -> str:
    return write_dag(
        dag_id,
        f"""
        from airflow.providers.common.compat.sdk import XComArg
        from airflow_provider_video_actions import ParseVideoActionPredictionsOperator
        predict = VideoActionBatchPredictionOperator(
            task_id="predict", project_id="my-project", model="gemini-2.5-flash", action_labels={LABELS!r},
            gcs_destination_prefix="{PREFIX}/out", poll_interval=0.1, min_poll_interval=0.1, {predict}
        )
        ParseVideoActionPredictionsOperator(task_id="parse", {parse or "job=predict.output"})
        """,
    )


# 1. Google's echo shapes: camelCase with explicit nulls and Duration objects, and snake_case.


@pytest.mark.parametrize("echo", ["camel", "snake"])
def test_both_documented_echo_shapes_give_the_records(emulator, airflow_db, storage_client, videos, echo):
    emulator.service.family_settings["gemini"].echo = echo
    segment = {"content": videos["a.mp4"], "time_segment_start": 0.5, "time_segment_end": 3.5}
    run = run_dag(gemini_dag(f"gemini_echo_{echo}", f"region='us-central1', videos=[{segment!r}]"))
    assert run.state == "success", task_states(run)
    summary, parsed = xcom_value(run, "predict"), xcom_value(run, "parse")
    output = (
        storage_client.bucket(BUCKET)
        .blob(summary["output_directory"].removeprefix(f"gs://{BUCKET}/") + "/predictions.jsonl")
        .download_as_text()
    )
    echoed = json.loads(output)["request"]["contents"][0]["parts"][0]
    if echo == "camel":
        assert echoed["text"] is None and echoed["videoMetadata"]["startOffset"] == {"seconds": 0, "nanos": 500000000}
    else:
        assert (
            echoed["file_data"]["file_uri"] == videos["a.mp4"] and echoed["video_metadata"]["start_offset"] == "0.500s"
        )
    assert {(p["video_uri"], p["segment_start"], p["segment_end"], p["label"]) for p in parsed["predictions"]} == {
        (videos["a.mp4"], 0.5, 3.5, "wave"),
        (videos["a.mp4"], 0.5, 3.5, "fall"),
    }
    assert parsed["errors"] == parsed["malformed_lines"] == 0


# 2. Mime types per family, and videos_prefix lists the family's extensions.


def test_videos_prefix_lists_gemini_types_and_not_avi(emulator, storage_client, videos):
    job = create(operator(videos_prefix=f"{PREFIX}/videos/"))
    files = [r["contents"][0]["parts"][0]["fileData"] for r in request_lines(storage_client, job)]
    assert files == [
        {"fileUri": videos["a.mp4"], "mimeType": "video/mp4"},
        {"fileUri": videos["b.webm"], "mimeType": "video/webm"},
        {"fileUri": videos["d.3gp"], "mimeType": "video/3gpp"},
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"videos": ["gs://bkt/v.avi"]}, "cannot tell the video type.*gemini models take"),
        ({"videos": [{"content": "gs://bkt/v.mp4", "mime_type": "video/avi"}]}, "'video/avi'.*not supported by gemini"),
        ({"model": "1234", "action_labels": None, "videos": ["gs://bkt/v.webm"]}, "action_recognition models take"),
    ],
)
def test_mime_types_are_the_family_s(kwargs, message):
    with pytest.raises(VideoActionsValueError, match=message):
        operator(**{"videos": ["gs://bkt/v.mp4"], **kwargs})


def test_emulator_refuses_avi_for_gemini(emulator, storage_client, videos):
    op = operator(videos=[videos["a.mp4"]])
    job = create(op)
    line = json.dumps({"request": {**request_lines(storage_client, job)[0]}}).replace("video/mp4", "video/avi")
    storage_client.bucket(BUCKET).blob("gemini-service/avi.jsonl").upload_from_string(line + "\n")
    spec = JobSpec("p", "us-central1", "publishers/google/models/gemini-2.5-flash", "avi",
                   (f"{PREFIX}/avi.jsonl",), f"{PREFIX}/out")  # fmt: skip
    name = VideoActionBatchPredictionHook().create_job(spec).name
    job = wait(emulator, name)
    assert job.completion_stats.failed_count == 1 and job.completion_stats.successful_count == 0


def wait(emulator, name: str) -> aiplatform_v1.BatchPredictionJob:
    """The job once terminal (the emulator's ticker advances it; each read advances due transitions)."""
    deadline = time.monotonic() + PATIENCE
    while (job := emulator.job(name)).state.name not in (
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
    ):
        assert time.monotonic() < deadline, f"{name} still {job.state.name} after {PATIENCE:.0f} s"
        time.sleep(0.05)
    return job


# 3. No custom service account or CMEK for Gemini: refused at construction, and by the emulated service.


@pytest.mark.parametrize("param", ["service_account", "encryption_key"])
def test_gemini_refuses_service_account_and_cmek(emulator, instances_uri, param):
    value = (
        "sa@p.iam.gserviceaccount.com"
        if param == "service_account"
        else "projects/p/locations/l/keyRings/r/cryptoKeys/k"
    )
    with pytest.raises(VideoActionsValueError, match=f"{param} is not for Gemini models"):
        operator(videos=["gs://bkt/v.mp4"], **{param: value})
    spec = JobSpec("p", "us-central1", "publishers/google/models/gemini-2.5-flash", "n", (instances_uri,),
                   f"{PREFIX}/out", **{param: value})  # fmt: skip
    with pytest.raises(exceptions.InvalidArgument, match="does not support"):
        VideoActionBatchPredictionHook().create_job(spec)


# 4. Limits: refused before any job exists; the emulated service enforces them too.


@pytest.mark.parametrize(("kwargs", "message"), [({"max_requests_per_job": 2}, "3 requests pass max_requests_per_job=2"),
                                                  ({"max_input_bytes": 1000}, "over max_input_bytes=1,000")])  # fmt: skip
def test_limits_refuse_before_creating_a_job(emulator, videos, kwargs, message):
    before = len(emulator.created)
    with pytest.raises(VideoActionsValueError, match=message):
        create(operator(videos=[videos["a.mp4"]] * 3, **kwargs))
    assert len(emulator.created) == before


def test_emulator_enforces_the_request_limit(emulator, storage_client, videos):
    emulator.service.family_settings["gemini"].max_requests_per_job = 1
    job = wait(emulator, create(operator(videos=[videos["a.mp4"]] * 2)).name)
    assert job.state.name == "JOB_STATE_FAILED" and "at most 1" in job.error.message


# 5 and 6. region="global", the full publisher path, and a tuned Gemini model by model_family.


def test_global_region_full_path_and_tuned_model(emulator, airflow_db, videos):
    tuned = "projects/my-project/locations/us-central1/models/gemini-tuned-7"
    full = "projects/my-project/locations/us-central1/publishers/google/models/gemini-2.5-flash"
    dag_id = write_dag(
        "gemini_names",
        f"""
        from airflow_provider_video_actions import ParseVideoActionPredictionsOperator
        for task_id, region, model, family in (("global_", "global", "gemini-2.5-flash", None),
                                               ("full", "us-central1", {full!r}, None),
                                               ("tuned", "us-central1", {tuned!r}, "gemini")):
            predict = VideoActionBatchPredictionOperator(
                task_id=task_id, project_id="my-project", region=region, model=model, model_family=family,
                action_labels={LABELS!r}, videos=[{videos["a.mp4"]!r}], gcs_destination_prefix="{PREFIX}/out",
                poll_interval=0.1,
                min_poll_interval=0.1,
            )
            ParseVideoActionPredictionsOperator(task_id="parse_" + task_id, job=predict.output)
        """,
    )
    run = run_dag(dag_id)
    assert run.state == "success", task_states(run)
    models = {task: xcom_value(run, task)["model"] for task in ("global_", "full", "tuned")}
    assert models == {"global_": "publishers/google/models/gemini-2.5-flash", "full": full, "tuned": tuned}
    assert "/locations/global/" in xcom_value(run, "global_")["name"]
    for task in ("global_", "full", "tuned"):
        assert xcom_value(run, f"parse_{task}")["label_counts"] == {"fall": 1, "wave": 1}
    assert _api_endpoint("global") == "aiplatform.googleapis.com:443"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "projects/p/locations/europe-west4/publishers/google/models/gemini-2.5-flash"}, "make them agree"),
        ({"model": "projects/p/locations/global/models/7", "model_family": "gemini", "region": "global"}, "tuned"),
        ({"model_family": "palm"}, "model_family must be one of"),
        ({"model": "1234", "action_labels": None, "region": "global"}, "region must be a Vertex AI region"),
        ({"model": "1234", "action_labels": None, "fps": 2}, "fps is only for Gemini"),
        (
            {"model": "1234", "action_labels": None, "max_requests_per_job": 9},
            "max_requests_per_job is only for Gemini",
        ),
    ],
)
def test_model_names_and_regions_are_checked(kwargs, message):
    with pytest.raises(VideoActionsValueError, match=message):
        operator(videos=["gs://bkt/v.mp4"], **kwargs)


# 7. Sampling: fps and media resolution reach the request lines.


def test_fps_and_media_resolution_are_sent(emulator, storage_client, videos):
    [request] = request_lines(storage_client, create(operator(videos=[videos["a.mp4"]], fps=5, media_resolution="low")))
    message = aiplatform_v1.GenerateContentRequest.pb()()
    json_format.ParseDict(request, message)
    parsed = aiplatform_v1.GenerateContentRequest.wrap(message)
    assert parsed.contents[0].parts[0].video_metadata.fps == 5.0
    assert parsed.generation_config.media_resolution.name == "MEDIA_RESOLUTION_LOW"


@pytest.mark.parametrize(("kwargs", "message"), [({"fps": 0}, "fps must be"), ({"fps": 25}, "at most 24"),
                                                  ({"media_resolution": "ultra"}, "media_resolution must be")])  # fmt: skip
def test_sampling_options_are_checked(kwargs, message):
    with pytest.raises(VideoActionsValueError, match=message):
        operator(videos=["gs://bkt/v.mp4"], **kwargs)


# 8. The rows a cancelled job completed are read with allow_partial.


def test_partial_output_of_a_cancelled_job(emulator, airflow_db, videos):
    emulator.force_outcome("JOB_STATE_CANCELLED", display_name="cancelled-gemini")
    parse = "job=XComArg(predict, key='failed_job'), allow_partial=True, trigger_rule='all_done'"
    predict = f"region='us-central1', videos=[{videos['a.mp4']!r}], job_display_name='cancelled-gemini'"
    dag_id = gemini_dag("gemini_partial", predict, parse)
    run = run_dag(dag_id)
    assert task_states(run) == {"predict": "failed", "parse": "success"}
    failed = xcom_value(run, "predict", key="failed_job")
    assert failed["state"] == "JOB_STATE_CANCELLED" and failed["output_directory"]
    assert failed["gemini"]["action_labels"]  # the family's part: a parse of it needs the label set and threshold
    assert xcom_value(run, "parse")["label_counts"] == {"fall": 1, "wave": 1}


# 9. The clients carry the Google provider's user agent.


def test_job_client_sends_the_provider_user_agent(emulator, submit_job):
    from airflow.providers.google.common.consts import CLIENT_INFO

    submit_job("user-agent")
    assert CLIENT_INFO.to_user_agent() in emulator.service.api_clients
