"""The emulated JobService, driven by the real aiplatform_v1 and google-cloud-storage clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timezone

import grpc
import pytest
from google.api_core import exceptions
from google.cloud import aiplatform_v1, storage
from google.cloud.aiplatform_v1.services.job_service.transports import JobServiceGrpcAsyncIOTransport
from google.protobuf import field_mask_pb2

from airflow_provider_video_actions.emulator import Emulator, PlantedAction
from tests.conftest import PATIENCE

from .conftest import BUCKET, MODEL, PARENT, TERMINAL

Submit = Callable[..., aiplatform_v1.BatchPredictionJob]
WaitFor = Callable[..., aiplatform_v1.BatchPredictionJob]


def video_line(uri: str, **extra: str) -> dict:
    """An instance line for an mp4 video."""
    return {"content": uri, "mimeType": "video/mp4", **extra}


def test_full_run_writes_predictions_and_errors(
    submit: Submit, wait_for: WaitFor, upload: Callable, upload_video: Callable, read_outputs: Callable
) -> None:
    """A job predicts the good instances and reports each kind of bad instance in the errors file."""
    wave = upload_video("wave.mp4", [PlantedAction("wave", 1.0), PlantedAction("sit", 2.0, strength=0.2)])
    jump = upload_video("jump.mp4", [PlantedAction("jump", 0.5, duration=1.0)])
    not_video = upload("notes.mp4", b"this is text, not a video")
    good = [video_line(wave), video_line(jump, timeSegmentStart="0.5s", timeSegmentEnd="Infinity")]
    bad = [
        video_line(f"gs://{BUCKET}/missing.mp4"),
        {"content": wave, "mimeType": "image/png"},
        video_line(not_video),
        video_line(wave, timeSegmentStart="9s", timeSegmentEnd="inf"),
        "{not json",
    ]

    created = submit(
        [*good, *bad], display_name="full", labels={"team": "vision"}, parameters={"confidenceThreshold": 0.5}
    )
    job = wait_for(created.name)

    assert created.state.name == "JOB_STATE_QUEUED"
    assert job.state.name == "JOB_STATE_SUCCEEDED"
    assert (job.display_name, dict(job.labels), job.model) == ("full", {"team": "vision"}, MODEL)
    assert job.completion_stats.successful_count == 2
    assert job.completion_stats.failed_count == 5
    assert job.create_time <= job.start_time <= job.end_time
    directory = job.output_info.gcs_output_directory
    # prediction-<model display name>-<create time, RFC 3339 with microseconds>, as Vertex AI names it
    stamp = job.create_time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert directory == f"gs://{BUCKET}/out/prediction-video-action-recognition-4242-{stamp}"
    outputs = read_outputs(directory)
    assert sorted(outputs) == ["errors_00001.jsonl", "predictions_00001.jsonl"]
    predictions = outputs["predictions_00001.jsonl"]
    assert [line["instance"] for line in predictions] == good
    assert [[p["displayName"] for p in line["prediction"]] for line in predictions] == [["wave"], ["jump"]]
    assert predictions[0]["prediction"][0]["timeSegmentStart"] == "1.250000s"
    errors = outputs["errors_00001.jsonl"]
    # Each failed instance's own fields, then "error" (flat, as documented); a line that is no object stays whole.
    assert [{k: v for k, v in line.items() if k != "error"} for line in errors[:4]] == bad[:4]
    assert all(list(line)[-1] == "error" for line in errors)
    assert errors[4] == {"instance": "{not json", "error": errors[4]["error"]}
    assert [line["error"]["code"] for line in errors] == [5, 3, 3, 11, 3]
    assert "missing.mp4" in errors[0]["error"]["message"]


def test_output_is_split_every_lines_per_file(
    emulator: Emulator, submit: Submit, wait_for: WaitFor, upload_video: Callable, read_outputs: Callable
) -> None:
    """Output files hold at most lines_per_file lines and are numbered from 00001."""
    emulator.timeline.lines_per_file = 2
    uri = upload_video("clap.mp4", [PlantedAction("clap", 1.0)])

    job = wait_for(submit([video_line(uri)] * 5).name)

    outputs = read_outputs(job.output_info.gcs_output_directory)
    assert {name: len(lines) for name, lines in outputs.items()} == {
        "predictions_00001.jsonl": 2,
        "predictions_00002.jsonl": 2,
        "predictions_00003.jsonl": 1,
    }


def test_max_predictions_parameter(
    submit: Submit, wait_for: WaitFor, upload_video: Callable, read_outputs: Callable
) -> None:
    """The maxPredictions model parameter reaches the model."""
    uri = upload_video("three.mp4", [PlantedAction("wave", 0.5, strength=0.5), PlantedAction("run", 2.0)])

    job = wait_for(submit([video_line(uri)], parameters={"maxPredictions": 1}).name)

    (line,) = read_outputs(job.output_info.gcs_output_directory)["predictions_00001.jsonl"]
    assert [p["displayName"] for p in line["prediction"]] == ["run"]


def test_missing_instances_file_fails_the_job(submit: Submit, wait_for: WaitFor) -> None:
    """A missing instances file fails the whole job with NOT_FOUND naming the file."""
    job = wait_for(submit(instances_uri=f"gs://{BUCKET}/nope.jsonl").name)

    assert job.state.name == "JOB_STATE_FAILED"
    assert job.error.code == 5
    assert f"gs://{BUCKET}/nope.jsonl" in job.error.message


@pytest.mark.parametrize(
    ("state", "error_code"),
    [
        ("JOB_STATE_FAILED", 13),
        ("JOB_STATE_CANCELLED", 1),
        ("JOB_STATE_EXPIRED", 4),
        ("JOB_STATE_PARTIALLY_SUCCEEDED", 0),
        ("JOB_STATE_SUCCEEDED", 0),
    ],
)
def test_forced_outcomes(
    emulator: Emulator,
    submit: Submit,
    wait_for: WaitFor,
    upload_video: Callable,
    read_outputs: Callable,
    state: str,
    error_code: int,
) -> None:
    """Each forced terminal state is reached with its error, while outputs are still written."""
    uri = upload_video("fall.mp4", [PlantedAction("fall", 1.0)])
    emulator.force_outcome(state)

    job = wait_for(submit([video_line(uri), video_line(f"gs://{BUCKET}/gone.mp4")]).name)

    assert job.state.name == state
    assert job.error.code == error_code
    assert (job.completion_stats.successful_count, job.completion_stats.failed_count) == (1, 1)
    assert "predictions_00001.jsonl" in read_outputs(job.output_info.gcs_output_directory)


def test_forced_outcome_by_display_name_and_pause(
    emulator: Emulator, submit: Submit, wait_for: WaitFor, upload_video: Callable
) -> None:
    """A display-name rule affects only that job; PAUSED holds until the rule is removed."""
    uri = upload_video("run.mp4", [PlantedAction("run", 1.0)])
    emulator.force_outcome("JOB_STATE_PAUSED", display_name="held")

    held = submit([video_line(uri)], display_name="held")
    free = submit([video_line(uri)], display_name="free")

    assert wait_for(free.name).state.name == "JOB_STATE_SUCCEEDED"
    assert wait_for(held.name, "JOB_STATE_PAUSED").state.name == "JOB_STATE_PAUSED"
    time.sleep(0.3)
    assert emulator.job(held.name).state.name == "JOB_STATE_PAUSED"
    emulator.force_outcome(None, display_name="held")
    assert wait_for(held.name).state.name == "JOB_STATE_SUCCEEDED"


def test_a_rule_covers_the_providers_default_display_names(
    emulator: Emulator,
    job_client: aiplatform_v1.JobServiceClient,
    submit: Submit,
    wait_for: WaitFor,
    upload_video: Callable,
) -> None:
    """``dag.predict`` covers ``dag.predict.<run id>[.<map index>]`` (the provider's default display names) but not
    ``dag.predict_other``; the most specific rule wins. The docs' ``hold("my_dag.predict")`` held nothing before."""
    uri = upload_video("wave.mp4", [PlantedAction("wave", 1.0)])
    emulator.force_outcome("JOB_STATE_PAUSED", display_name="dag.predict")
    emulator.force_outcome("JOB_STATE_FAILED", display_name="dag.predict.manual__2.0")
    emulator.hold_cancels("dag.predict")

    held = submit([video_line(uri)], display_name="dag.predict.manual__1")
    failed = submit([video_line(uri)], display_name="dag.predict.manual__2.0")
    free = submit([video_line(uri)], display_name="dag.predict_other.manual__1")

    assert wait_for(free.name).state.name == "JOB_STATE_SUCCEEDED"
    assert wait_for(failed.name).state.name == "JOB_STATE_FAILED"
    assert wait_for(held.name, "JOB_STATE_PAUSED").state.name == "JOB_STATE_PAUSED"
    job_client.cancel_batch_prediction_job(name=held.name)
    assert emulator.job(held.name).state.name == "JOB_STATE_PAUSED"  # the cancel is accepted and held
    emulator.release_cancels("dag.predict")
    assert emulator.job(held.name).state.name in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")


def test_cancel_goes_through_cancelling(
    emulator: Emulator, job_client: aiplatform_v1.JobServiceClient, submit: Submit, wait_for: WaitFor
) -> None:
    """Cancel moves through CANCELLING to CANCELLED; cancelling a finished job is refused."""
    emulator.timeline.queued_seconds = 60
    emulator.timeline.cancelling_seconds = 600  # held in CANCELLING until the test has seen it, however slow
    job = submit([])

    job_client.cancel_batch_prediction_job(name=job.name)

    assert job_client.get_batch_prediction_job(name=job.name).state.name == "JOB_STATE_CANCELLING"
    emulator.timeline.cancelling_seconds = 0  # released: the next tick ends the cancel
    cancelled = wait_for(job.name)
    assert cancelled.state.name == "JOB_STATE_CANCELLED"
    assert (cancelled.error.code, cancelled.error.message) == (1, "Job cancelled")
    with pytest.raises(exceptions.FailedPrecondition):
        job_client.cancel_batch_prediction_job(name=job.name)


def test_cancel_while_running_keeps_partial_outputs(
    emulator: Emulator,
    job_client: aiplatform_v1.JobServiceClient,
    gcs: storage.Client,
    submit: Submit,
    wait_for: WaitFor,
    upload_video: Callable,
    read_outputs: Callable,
) -> None:
    """A job cancelled after writing its first file keeps it; the stats account for every instance."""
    emulator.timeline.running_seconds, emulator.timeline.lines_per_file = 60, 1
    uri = upload_video("wave.mp4", [PlantedAction("wave", 1.0)])
    job = submit([video_line(uri)] * 4)
    deadline = time.monotonic() + PATIENCE
    while not any(b.name.endswith("predictions_00001.jsonl") for b in gcs.list_blobs(BUCKET, prefix="out/")):
        assert time.monotonic() < deadline, "the job wrote no output"
        time.sleep(0.02)

    job_client.cancel_batch_prediction_job(name=job.name)

    cancelled = wait_for(job.name)
    assert cancelled.state.name == "JOB_STATE_CANCELLED"
    assert "predictions_00001.jsonl" in read_outputs(cancelled.output_info.gcs_output_directory)
    stats = cancelled.completion_stats
    assert (stats.successful_count + stats.incomplete_count, stats.failed_count) == (4, 0)


def test_delete_only_finished_jobs(
    emulator: Emulator, job_client: aiplatform_v1.JobServiceClient, submit: Submit, wait_for: WaitFor
) -> None:
    """Delete refuses unfinished jobs and removes finished ones through a done operation."""
    emulator.force_outcome("JOB_STATE_PAUSED")
    job = submit([])
    wait_for(job.name, "JOB_STATE_PAUSED")
    with pytest.raises(exceptions.FailedPrecondition):
        job_client.delete_batch_prediction_job(name=job.name)

    emulator.force_outcome(None)
    wait_for(job.name)
    job_client.delete_batch_prediction_job(name=job.name).result(timeout=10)

    with pytest.raises(exceptions.NotFound):
        job_client.get_batch_prediction_job(name=job.name)
    # Gone from the service, but a test reading what was created (emulator.created) still can.
    assert job.name not in {j.name for j in emulator.jobs()} and job.name in emulator.created
    assert emulator.job(job.name).state.name == "JOB_STATE_SUCCEEDED"


def test_get_unknown_job_is_not_found(job_client: aiplatform_v1.JobServiceClient) -> None:
    """An unknown name is NOT_FOUND with the name in the message."""
    name = f"{PARENT}/batchPredictionJobs/123"

    with pytest.raises(exceptions.NotFound, match=name):
        job_client.get_batch_prediction_job(name=name)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": ""}, "model"),
        (
            {"input_config": {"instances_format": "csv", "gcs_source": {"uris": ["gs://bucket/i.jsonl"]}}},
            "instances_format",
        ),
        ({"input_config": {"instances_format": "jsonl"}}, "gcs_source"),
        # Vertex AI refuses a malformed instances URI at create; the emulator once failed the job INTERNAL.
        ({"input_config": {"instances_format": "jsonl", "gcs_source": {"uris": ["bucket/i.jsonl"]}}}, "gs:// URI"),
        (
            {"input_config": {"instances_format": "jsonl", "gcs_source": {"uris": ["gs://Bad Bucket/i.jsonl"]}}},
            "invalid bucket name 'Bad Bucket'",
        ),
        ({"input_config": {"instances_format": "jsonl", "gcs_source": {"uris": ["gs://bucket/"]}}}, "not a bucket"),
        (
            {
                "output_config": {
                    "predictions_format": "jsonl",
                    "gcs_destination": {"output_uri_prefix": "/tmp"},
                }
            },
            "gs://",
        ),
        ({"model_parameters": {"confidenceThreshold": "high"}}, "confidenceThreshold"),
    ],
)
def test_create_rejects_invalid_jobs(job_client: aiplatform_v1.JobServiceClient, change: dict, message: str) -> None:
    """Create refuses jobs the emulator cannot run, naming the bad field."""
    job = {
        "display_name": "bad",
        "model": MODEL,
        "input_config": {"instances_format": "jsonl", "gcs_source": {"uris": ["gs://bucket/i.jsonl"]}},
        "output_config": {
            "predictions_format": "jsonl",
            "gcs_destination": {"output_uri_prefix": "gs://bucket/out"},
        },
        **change,
    }

    with pytest.raises(exceptions.InvalidArgument, match=message):
        job_client.create_batch_prediction_job(parent=PARENT, batch_prediction_job=job)


def test_list_filters_paging_and_read_mask(
    emulator: Emulator, job_client: aiplatform_v1.JobServiceClient, submit: Submit, wait_for: WaitFor
) -> None:
    """List honours parent, filters, paging and read_mask; a field that cannot be filtered is refused."""
    emulator.force_outcome("JOB_STATE_FAILED", display_name="broken")
    first = submit([], display_name="a", labels={"run": "r1", "team": "x"})
    second = submit([], display_name="a", labels={"run": "r2"})
    broken = submit([], display_name="broken", labels={"run": "r3"})
    for job in (first, second, broken):
        wait_for(job.name)
    other_parent = "projects/other/locations/europe-west4"
    job_client.create_batch_prediction_job(
        parent=other_parent, batch_prediction_job={**_minimal_job(), "display_name": "a"}
    )

    def names(filter_: str, **kwargs: object) -> list[str]:
        """Names of the listed jobs, all pages."""
        request = {"parent": PARENT, "filter": filter_, **kwargs}
        return [job.name for job in job_client.list_batch_prediction_jobs(request=request)]

    assert names("") == [first.name, second.name, broken.name]
    assert names('labels.run="r2"') == [second.name]
    assert names("labels.team:*") == [first.name]
    assert names('display_name="a" AND state="JOB_STATE_SUCCEEDED"') == [first.name, second.name]
    assert names('state!="JOB_STATE_SUCCEEDED"') == [broken.name]
    assert names("", page_size=2) == [first.name, second.name, broken.name]

    page = job_client.list_batch_prediction_jobs(request={"parent": PARENT, "page_size": 2}).pages
    assert [len(p.batch_prediction_jobs) for p in page] == [2, 1]

    masked = job_client.list_batch_prediction_jobs(
        request={"parent": PARENT, "read_mask": field_mask_pb2.FieldMask(paths=["display_name", "state"])}
    )
    (job, *_) = list(masked)
    assert (job.name, job.display_name, job.state.name) == (first.name, "a", "JOB_STATE_SUCCEEDED")
    assert not job.model
    assert not job.labels
    assert "create_time" not in job

    assert len(names('create_time>="2020-01-01T00:00:00Z"')) == len(names(""))
    assert names('create_time<"2020-01-01T00:00:00Z"') == []
    with pytest.raises(exceptions.InvalidArgument, match="update_time"):
        names('update_time>"2020-01-01T00:00:00Z"')
    assert names('display_name="a" OR display_name="b"') == [first.name, second.name]


def _minimal_job() -> dict:
    """The smallest valid job request body."""
    return {
        "model": MODEL,
        "input_config": {"instances_format": "jsonl", "gcs_source": {"uris": ["gs://bucket/i.jsonl"]}},
        "output_config": {
            "predictions_format": "jsonl",
            "gcs_destination": {"output_uri_prefix": "gs://bucket/out"},
        },
    }


def test_injected_faults_are_deterministic_and_counted(
    emulator: Emulator, job_client: aiplatform_v1.JobServiceClient, submit: Submit
) -> None:
    """Rate-based faults repeat for the same seed and are counted with the calls."""
    job = submit([])

    def outcomes() -> list[bool]:
        """Twenty Gets: True if served, False if faulted."""
        results = []
        for _ in range(20):
            try:
                job_client.get_batch_prediction_job(name=job.name)
                results.append(True)
            except exceptions.ServiceUnavailable:
                results.append(False)
        return results

    emulator.inject_faults(0.5, methods=["GetBatchPredictionJob"], seed=7)
    first = outcomes()
    emulator.inject_faults(0.5, methods=["GetBatchPredictionJob"], seed=7)
    second = outcomes()
    emulator.inject_faults(0.0)

    assert first == second
    assert 0 < first.count(False) < 20
    assert emulator.faults["GetBatchPredictionJob"] == 2 * first.count(False)
    assert emulator.calls["GetBatchPredictionJob"] == 40
    assert emulator.calls["CreateBatchPredictionJob"] == 1


def test_fail_next_create_creates_nothing(
    emulator: Emulator, job_client: aiplatform_v1.JobServiceClient, submit: Submit
) -> None:
    """A faulted create raises ServiceUnavailable in the client and creates no job."""
    emulator.fail_next("CreateBatchPredictionJob", 2)

    for _ in range(2):
        with pytest.raises(exceptions.ServiceUnavailable):
            submit([])
    assert emulator.created == []
    assert list(job_client.list_batch_prediction_jobs(parent=PARENT)) == []

    job = submit([])
    assert emulator.created == [job.name]
    assert emulator.calls["CreateBatchPredictionJob"] == 3
    assert emulator.faults["CreateBatchPredictionJob"] == 2


def test_fault_code_is_configurable(emulator: Emulator, job_client: aiplatform_v1.JobServiceClient) -> None:
    """Faults use the chosen status code; unknown method names are refused."""
    emulator.inject_faults(1.0, methods=["ListBatchPredictionJobs"], code=grpc.StatusCode.RESOURCE_EXHAUSTED)

    with pytest.raises(exceptions.ResourceExhausted):
        job_client.list_batch_prediction_jobs(parent=PARENT)
    with pytest.raises(ValueError, match="unknown JobService methods"):
        emulator.fail_next("GetJob", 1)


def test_async_client_reaches_the_emulator(emulator: Emulator, submit: Submit) -> None:
    """The asyncio JobServiceAsyncClient (as a deferrable trigger would use) talks to the same server."""
    job = submit([])

    async def get_state() -> str:
        """Get the job once over a grpc.aio channel."""
        channel = grpc.aio.insecure_channel(emulator.vertex_host)
        client = aiplatform_v1.JobServiceAsyncClient(transport=JobServiceGrpcAsyncIOTransport(channel=channel))
        try:
            return (await client.get_batch_prediction_job(name=job.name)).state.name
        finally:
            await channel.close()

    assert asyncio.run(get_state()) in {"JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING"} | TERMINAL
