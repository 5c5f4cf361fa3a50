"""Fixtures for the emulator's own tests: a running emulator, real clients, and job helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
from google.cloud import aiplatform_v1, storage

from airflow_provider_video_actions.emulator import Emulator, JobTimeline, PlantedAction, make_video

BUCKET = "videos"
PARENT = "projects/test-project/locations/us-central1"
MODEL = f"{PARENT}/models/4242"
TERMINAL = {
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_EXPIRED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
}


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh emulator with a ``videos`` bucket and a fast timeline (about 0.2 s per job)."""
    timeline = JobTimeline(queued_seconds=0.05, pending_seconds=0.05, running_seconds=0.1, cancelling_seconds=0.05)
    with Emulator(buckets=[BUCKET], timeline=timeline, models=[MODEL]) as running:
        yield running


@pytest.fixture
def job_client(emulator: Emulator) -> aiplatform_v1.JobServiceClient:
    """The real aiplatform_v1 JobServiceClient over a plain-text channel to the emulator."""
    return emulator.job_client()


@pytest.fixture
def gcs(emulator: Emulator) -> storage.Client:
    """The real google-cloud-storage client against the emulated GCS."""
    return emulator.storage_client()


@pytest.fixture
def upload(gcs: storage.Client) -> Callable[[str, bytes | str], str]:
    """Upload bytes or text to ``gs://videos/<name>`` and return the URI."""

    def _upload(name: str, data: bytes | str) -> str:
        """Upload and return the gs:// URI."""
        gcs.bucket(BUCKET).blob(name).upload_from_string(data)
        return f"gs://{BUCKET}/{name}"

    return _upload


@pytest.fixture
def upload_video(upload: Callable[[str, bytes | str], str]) -> Callable[..., str]:
    """Encode a video with the planted actions, upload it, and return its URI."""

    def _upload_video(name: str, actions: Sequence[PlantedAction], duration: float = 4.0) -> str:
        """Encode, upload and return the gs:// URI."""
        return upload(name, make_video(actions, duration=duration))

    return _upload_video


@pytest.fixture
def submit(
    job_client: aiplatform_v1.JobServiceClient, upload: Callable[[str, bytes | str], str]
) -> Callable[..., aiplatform_v1.BatchPredictionJob]:
    """Write instance lines (dicts or raw strings) to an instances file and create a job over it."""
    counter = iter(range(1, 10_000))

    def _submit(
        instances: Sequence[dict | str] = (),
        display_name: str = "job",
        labels: dict[str, str] | None = None,
        parameters: dict | None = None,
        instances_uri: str | None = None,
    ) -> aiplatform_v1.BatchPredictionJob:
        """Create the job and return the service's response."""
        if instances_uri is None:
            lines = [line if isinstance(line, str) else json.dumps(line) for line in instances]
            instances_uri = upload(f"inputs/{next(counter)}.jsonl", "".join(f"{line}\n" for line in lines))
        job = aiplatform_v1.BatchPredictionJob(
            display_name=display_name,
            model=MODEL,
            labels=labels or {},
            input_config={"instances_format": "jsonl", "gcs_source": {"uris": [instances_uri]}},
            output_config={
                "predictions_format": "jsonl",
                "gcs_destination": {"output_uri_prefix": f"gs://{BUCKET}/out"},
            },
        )
        if parameters is not None:
            job.model_parameters = parameters
        return job_client.create_batch_prediction_job(parent=PARENT, batch_prediction_job=job)

    return _submit


def poll(
    job_client: aiplatform_v1.JobServiceClient, name: str, states: set[str], timeout: float = 20.0
) -> aiplatform_v1.BatchPredictionJob:
    """Get the job until its state is one of ``states``; fail after a generous deadline."""
    deadline = time.monotonic() + timeout
    while True:
        job = job_client.get_batch_prediction_job(name=name)
        if job.state.name in states:
            return job
        assert time.monotonic() < deadline, f"{name} stuck in {job.state.name}, wanted {states}"
        time.sleep(0.02)


@pytest.fixture
def wait_for(job_client: aiplatform_v1.JobServiceClient) -> Callable[..., aiplatform_v1.BatchPredictionJob]:
    """Poll a job until it reaches one of the given states (default: any terminal state)."""

    def _wait_for(name: str, *states: str, timeout: float = 20.0) -> aiplatform_v1.BatchPredictionJob:
        """Poll until one of the states."""
        return poll(job_client, name, set(states) or TERMINAL, timeout)

    return _wait_for


@pytest.fixture
def read_outputs(gcs: storage.Client) -> Callable[[str], dict[str, list[dict]]]:
    """Parse every output file of a job directory: file name -> list of JSON lines."""

    def _read_outputs(directory: str) -> dict[str, list[dict]]:
        """Map each output file name to its parsed lines."""
        bucket, _, prefix = directory.removeprefix("gs://").partition("/")
        return {
            blob.name.rsplit("/", 1)[-1]: [json.loads(line) for line in blob.download_as_text().splitlines()]
            for blob in gcs.list_blobs(bucket, prefix=prefix + "/")
        }

    return _read_outputs
