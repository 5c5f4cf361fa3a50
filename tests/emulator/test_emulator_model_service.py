"""ModelService.GetModel on the emulator, through the real ModelServiceClient and the SDK's Model.batch_predict."""

from __future__ import annotations

import grpc
import pytest
from google.api_core import exceptions, grpc_helpers
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform, aiplatform_v1
from google.cloud.aiplatform_v1.services.model_service.transports import ModelServiceGrpcTransport

from airflow_provider_video_actions.emulator import Emulator
from tests.emulator.conftest import BUCKET, MODEL, PARENT


@pytest.fixture
def model_client(emulator: Emulator) -> aiplatform_v1.ModelServiceClient:
    """The real aiplatform_v1 ModelServiceClient over a plain-text channel to the emulator."""
    transport = ModelServiceGrpcTransport(channel=grpc.insecure_channel(emulator.vertex_host))
    return aiplatform_v1.ModelServiceClient(transport=transport)


def test_get_model_reports_a_batch_only_jsonl_model(model_client: aiplatform_v1.ModelServiceClient) -> None:
    """A served model: its name, display name, version and JSONL-only storage formats (batch prediction only)."""
    model = model_client.get_model(name=MODEL)
    assert (model.name, model.display_name, model.version_id) == (MODEL, "video-action-recognition-4242", "1")
    assert list(model.supported_input_storage_formats) == ["jsonl"]
    assert list(model.supported_output_storage_formats) == ["jsonl"]
    assert not model.supported_deployment_resources_types
    assert model.predict_schemata.instance_schema_uri.endswith("/instance/video_action_recognition_1.0.0.yaml")
    assert model_client.get_model(name=f"{MODEL}@3").version_id == "3"


def test_get_model_knows_only_served_models(emulator: Emulator, model_client: aiplatform_v1.ModelServiceClient) -> None:
    """Another model is NOT_FOUND until it is added; a malformed name or region is INVALID_ARGUMENT."""
    with pytest.raises(exceptions.NotFound, match="555"):
        model_client.get_model(name=f"{PARENT}/models/555")
    emulator.add_model("555")
    assert model_client.get_model(name=f"{PARENT}/models/555").display_name == "video-action-recognition-555"
    with pytest.raises(exceptions.InvalidArgument, match="name must be"):
        model_client.get_model(name="models/555")
    with pytest.raises(exceptions.InvalidArgument, match="not a Vertex AI region"):
        model_client.get_model(name="projects/p/locations/mars-central1/models/555")


def test_sdk_model_batch_predict_runs_on_the_emulator(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, upload: object
) -> None:
    """Google's model-builder flow: ``aiplatform.Model(name).batch_predict(...)`` reads the model, creates the job
    for its versioned name and waits for it; only the gRPC channel is made plain text."""
    monkeypatch.setattr(grpc_helpers, "create_channel", lambda target, **_: grpc.insecure_channel(target))
    monkeypatch.setattr(aiplatform.initializer, "global_config", aiplatform.initializer._Config())
    aiplatform.initializer.global_config.init(  # aiplatform.init is bound to the config replaced above
        project="test-project",
        location="us-central1",
        api_endpoint=emulator.vertex_host,
        credentials=AnonymousCredentials(),
    )
    instances = upload("sdk/instances.jsonl", "")

    job = aiplatform.Model(MODEL).batch_predict(
        job_display_name="sdk-model-batch-predict",
        gcs_source=instances,
        gcs_destination_prefix=f"gs://{BUCKET}/sdk-out",
        sync=True,
    )

    assert job.state == aiplatform_v1.JobState.JOB_STATE_SUCCEEDED
    assert emulator.job(job.resource_name).model == f"{MODEL}@1"
    assert emulator.calls["CreateBatchPredictionJob"] == 1
