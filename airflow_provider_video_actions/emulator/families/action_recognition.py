"""The emulated action recognition model: instance lines in, sharded ``predictions_*`` and ``errors_*`` files out."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from google.cloud import aiplatform_v1, storage
from google.protobuf import json_format
from google.rpc import code_pb2

from airflow_provider_video_actions.emulator import model
from airflow_provider_video_actions.emulator.model import InstanceError
from airflow_provider_video_actions.emulator.runner import (
    BatchSpec,
    RunResult,
    ShardedWriter,
    check_mime_type,
    download,
    parse_seconds,
    split_gcs_uri,
    until_cancelled,
)

log = logging.getLogger(__name__)

NAME = "action_recognition"
#: The instance schema's mime types (``VideoActionRecognitionPredictionInstance``).
MIME_TYPES = frozenset({"video/mp4", "video/avi", "video/quicktime"})


def claims(job: aiplatform_v1.BatchPredictionJob) -> bool:
    """Every model no other family claims."""
    return True


def output_folder_model(model_display_name: str) -> str:
    """The model's display name, as in ``prediction-<model-display-name>-<time>`` (the API reference)."""
    return model_display_name


def default_settings() -> None:
    """No knobs."""
    return None


def parameters(job: aiplatform_v1.BatchPredictionJob) -> tuple[dict[str, Any], list[str]]:
    """``confidenceThreshold`` and ``maxPredictions`` from the job's model_parameters (with defaults), and problems."""
    pb = aiplatform_v1.BatchPredictionJob.pb(job)
    params = json_format.MessageToDict(pb.model_parameters) if pb.HasField("model_parameters") else {}
    if not isinstance(params, dict):
        return {}, ["model_parameters must be a JSON object"]
    threshold, limit = params.get("confidenceThreshold", 0.0), params.get("maxPredictions", 50)
    problems = []
    if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        problems.append("confidenceThreshold must be a number within 0..1")
    if not isinstance(limit, (int, float)) or limit != int(limit) or limit < 1:
        problems.append("maxPredictions must be a positive integer")
    return {"confidenceThreshold": threshold, "maxPredictions": limit}, problems


def _instance(line: str) -> dict:
    """Parse one instance line into a dict, or raise INVALID_ARGUMENT."""
    try:
        instance = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InstanceError(code_pb2.INVALID_ARGUMENT, f"Instance is not valid JSON: {exc}") from None
    if not isinstance(instance, dict):
        raise InstanceError(code_pb2.INVALID_ARGUMENT, "Instance is not a JSON object")
    return instance


def _check_instance(instance: dict) -> tuple[str, float, float | None]:
    """Validate the instance fields; return its content URI and segment bounds."""
    content = instance.get("content")
    if not isinstance(content, str):
        raise InstanceError(code_pb2.INVALID_ARGUMENT, "Instance has no 'content' string")
    split_gcs_uri(content)
    check_mime_type(instance.get("mimeType"), MIME_TYPES)
    start = parse_seconds(instance.get("timeSegmentStart", "0s"), "timeSegmentStart", allow_infinity=False)
    end = parse_seconds(instance.get("timeSegmentEnd", "Infinity"), "timeSegmentEnd", allow_infinity=True)
    assert start is not None
    return content, start, end


def predict_line(client: storage.Client, instance: dict, spec: BatchSpec) -> list[dict]:
    """Predictions for one parsed instance, or raise InstanceError."""
    content, start, end = _check_instance(instance)
    video = download(client, content)
    params = spec.parameters
    return model.predict(video, start, end, float(params["confidenceThreshold"]), int(params["maxPredictions"]))


def failed_line(instance: object, error: dict) -> dict:
    """An errors-file line as documented: the instance's own fields followed by ``error`` (google.rpc.Status).

    A line that is not a JSON object has no fields to spread; it is kept whole under ``instance``.
    """
    return {**instance, "error": error} if isinstance(instance, dict) else {"instance": instance, "error": error}


def run_lines(client: storage.Client, lines: list[str], spec: BatchSpec, cancelled: threading.Event) -> RunResult:
    """Predict every instance, writing predictions and errors files; stop early when cancelled."""
    result = RunResult()
    predictions = ShardedWriter(client, spec.output_directory, "predictions", spec.lines_per_file)
    errors = ShardedWriter(client, spec.output_directory, "errors", spec.lines_per_file)
    for line in until_cancelled(lines, cancelled, result):
        _run_line(client, line, spec, result, predictions, errors)
    predictions.flush()
    errors.flush()
    result.files = predictions.files + errors.files
    return result


def _run_line(
    client: storage.Client,
    line: str,
    spec: BatchSpec,
    result: RunResult,
    predictions: ShardedWriter,
    errors: ShardedWriter,
) -> None:
    """Predict one line and record its prediction or error."""
    instance: object = line
    try:
        instance = _instance(line)
        prediction = predict_line(client, instance, spec)
    except InstanceError as exc:
        log.debug("instance failed: %s", exc.message)
        errors.add(failed_line(instance, {"code": exc.code, "message": exc.message}))
        result.failed += 1
        return
    predictions.add({"instance": instance, "prediction": prediction})
    result.successful += 1
