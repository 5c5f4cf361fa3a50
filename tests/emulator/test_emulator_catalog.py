"""The emulator serves only models it knows and regions Vertex AI serves, refusing others as the service does."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform_v1

from airflow_provider_video_actions.emulator import Emulator
from airflow_provider_video_actions.emulator.catalog import DEMO_MODELS, ModelCatalog
from airflow_provider_video_actions.emulator.control import ControlServer, EmulatorControl

from .conftest import BUCKET, PARENT


def create(
    client: aiplatform_v1.JobServiceClient, model: str, parent: str = PARENT
) -> aiplatform_v1.BatchPredictionJob:
    """Create a job for ``model`` under ``parent`` over an empty instances file."""
    job = aiplatform_v1.BatchPredictionJob(
        display_name="catalog",
        model=model,
        input_config={"instances_format": "jsonl", "gcs_source": {"uris": [f"gs://{BUCKET}/empty.jsonl"]}},
        output_config={"predictions_format": "jsonl", "gcs_destination": {"output_uri_prefix": f"gs://{BUCKET}/out"}},
    )
    return client.create_batch_prediction_job(parent=parent, batch_prediction_job=job)


def test_an_unknown_model_is_not_found_and_named(emulator: Emulator, job_client) -> None:
    with pytest.raises(exceptions.NotFound) as refused:
        create(job_client, f"{PARENT}/models/999")

    assert f"Model `{PARENT}/models/999` was not found" in refused.value.message
    assert "--model" in refused.value.message
    assert emulator.created == []


def test_an_unknown_gemini_model_is_not_found_in_vertex_ai_words(job_client) -> None:
    with pytest.raises(exceptions.NotFound, match="Publisher Model `publishers/google/models/gemini-0-nope`"):
        create(job_client, "publishers/google/models/gemini-0-nope")


def test_the_demo_model_and_gemini_are_known_by_default(job_client) -> None:
    assert create(
        job_client,
        f"projects/any/locations/europe-west4/models/{DEMO_MODELS[0]}",
        "projects/any/locations/europe-west4",
    ).name
    assert create(job_client, "publishers/google/models/gemini-2.5-flash").name
    assert create(job_client, "publishers/google/models/gemini-2.5-flash", "projects/p/locations/global").name


def test_models_added_by_call_and_by_control_api_are_served(emulator: Emulator, job_client) -> None:
    for model in ("555", "projects/p/locations/us-central1/models/556", "gemini-9-test"):
        with pytest.raises(exceptions.NotFound):
            create(job_client, model if "/" in model else f"{PARENT}/models/{model}")
    assert emulator.add_model(555) == "555"  # as the control CLI sends model=555
    control = ControlServer(emulator).start()
    try:
        EmulatorControl.of(control).add_model("projects/p/locations/us-central1/models/556")
        assert EmulatorControl.of(control).add_model("gemini-9-test") == "publishers/google/models/gemini-9-test"
        assert "projects/p/locations/us-central1/models/556" in EmulatorControl.of(control).state()["models"]
    finally:
        control.stop()

    assert create(job_client, f"{PARENT}/models/555@2").name
    assert create(job_client, "projects/p/locations/us-central1/models/556", "projects/p/locations/us-central1").name
    assert create(job_client, "publishers/google/models/gemini-9-test").name
    with pytest.raises(exceptions.NotFound):  # a full name is that model in that region only
        create(job_client, "projects/p/locations/us-east1/models/556", "projects/p/locations/us-east1")


@pytest.mark.parametrize("model", ["", "a/b", "projects/p/models/1", None, True, -1, ["1"]])
def test_a_malformed_model_is_refused_when_added(model) -> None:
    with pytest.raises(ValueError, match="model"):
        ModelCatalog().add(model)


@pytest.mark.parametrize("location", ["mars-north1", "us-central", "US-CENTRAL1"])
def test_an_unknown_region_is_refused_on_create_and_list(job_client, location) -> None:
    parent = f"projects/test-project/locations/{location}"
    with pytest.raises(exceptions.InvalidArgument, match=f"Location `{location}` is not a Vertex AI region"):
        create(job_client, f"{parent}/models/{DEMO_MODELS[0]}", parent)
    with pytest.raises(exceptions.InvalidArgument, match=f"Location `{location}`"):
        list(job_client.list_batch_prediction_jobs(parent=parent))


def test_global_serves_gemini_only(job_client) -> None:
    with pytest.raises(exceptions.InvalidArgument, match="`global` serves Gemini publisher models only"):
        create(job_client, f"projects/p/locations/global/models/{DEMO_MODELS[0]}", "projects/p/locations/global")
