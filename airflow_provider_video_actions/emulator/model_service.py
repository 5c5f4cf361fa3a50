"""``google.cloud.aiplatform.v1.ModelService.GetModel`` for the action recognition models the emulator serves.

The SDK's ``aiplatform.Model(name)`` reads the model before ``batch_predict`` (its ``version_id`` goes into
the job's model name); any other model is NOT_FOUND, as in Vertex AI.
"""

from __future__ import annotations

import re

import grpc
from google.cloud import aiplatform_v1

from airflow_provider_video_actions.emulator.catalog import ModelCatalog, check_location
from airflow_provider_video_actions.emulator.errors import AbortError, unary_handlers

SERVICE_NAME = "google.cloud.aiplatform.v1.ModelService"
_SCHEMA = "https://storage.googleapis.com/google-cloud-aiplatform/schema/predict/{}/video_action_recognition_1.0.0.yaml"
_NAME = re.compile(r"^projects/[^/]+/locations/(?P<location>[^/]+)/models/(?P<id>[^/@]+)(?:@(?P<version>[^/]+))?$")


class ModelServiceServicer:
    """GetModel over one emulator's model catalog."""

    def __init__(self, models: ModelCatalog) -> None:
        """Serve the models of ``models`` (the job service's catalog, so added models appear here too)."""
        self.models = models

    def get_model(self, request: aiplatform_v1.GetModelRequest) -> aiplatform_v1.Model:
        """The Model resource of a served action recognition model, or NOT_FOUND (INVALID_ARGUMENT for a bad name)."""
        match = _NAME.match(request.name)
        if match is None:
            raise AbortError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"name must be projects/P/locations/L/models/ID (optionally @VERSION), got {request.name!r}",
            )
        check_location(match["location"])
        self.models.check(match["location"], request.name)
        name = request.name.split("@", 1)[0]
        version = match["version"] if (match["version"] or "").isdigit() else "1"
        return aiplatform_v1.Model(
            name=name,
            display_name=self.models.display_name(name),
            version_id=version,
            version_aliases=["default"],
            predict_schemata=aiplatform_v1.PredictSchemata(
                instance_schema_uri=_SCHEMA.format("instance"),
                parameters_schema_uri=_SCHEMA.format("params"),
                prediction_schema_uri=_SCHEMA.format("prediction"),
            ),
            # AutoML video models predict in batch only: JSONL in and out, no online deployment.
            supported_input_storage_formats=["jsonl"],
            supported_output_storage_formats=["jsonl"],
        )

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The handler to register on the emulator's gRPC server."""

        def get_model(request: object) -> object:
            wrapped = aiplatform_v1.GetModelRequest.wrap(request)
            return aiplatform_v1.Model.pb(self.get_model(wrapped))

        return unary_handlers(
            SERVICE_NAME, {"GetModel": (get_model, aiplatform_v1.GetModelRequest.pb(), aiplatform_v1.Model.pb())}
        )
