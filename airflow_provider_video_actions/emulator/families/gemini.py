"""The emulator's Gemini: answers request lines with the colour model, as JSON that follows the request's schema.

For each request line (``{"request": {"contents": [{"parts": [{"fileData": {"fileUri", "mimeType"},
"videoMetadata": {"startOffset", "endOffset"}}, {"text": ...}]}], "generationConfig": {"responseSchema":
...}}}``, camelCase) it decodes the video with :func:`model.predict` over the requested segment and
answers ``{"moments": [{"label", "start", "end", "confidence"}]}``: every run of an action whose label
is in the schema's ``label`` enum, ``start`` = ``end`` = the run's midpoint in seconds from the start
of the video (as the action recognition family reports it), ``confidence`` = the colour's strength,
at most the schema's ``maxItems`` (the most confident), in time order. Like a real model it does not
read the prompt, so it ignores the confidence threshold there: the provider's parser enforces it.

Output: one ``predictions.jsonl`` per job, each line ``{"status": "", "processed_time", "request",
"response": {"candidates": [{"content": {"role": "model", "parts": [{"text": answer}]},
"finishReason": "STOP"}], "usageMetadata"}}``, in reverse input order (real output order is not input
order). The echoed request and the response come in one of Google's two documented shapes
(:class:`GeminiSettings` ``echo``): ``"camel"`` (the default, as Google's batch page shows it: camelCase,
an explicit null for every unset field, durations as ``{"seconds", "nanos"}`` objects) or ``"snake"``
(snake_case protobuf JSON, as a Google notebook shows it). A line that cannot be served (missing video,
a mime type Gemini does not take, not a video, segment outside it, no request) has ``"response": {}``
and a ``status`` like ``'Not Found: {"error": {"code": 404, "message": ..., "status": "NOT_FOUND"}}'``.

Jobs: a custom service account or an encryption key is refused at create (Gemini batch supports
neither); an input over ``max_requests_per_job`` lines or ``max_input_bytes`` fails the job
(Google's limits by default; lower them in tests). A model is Gemini when it names
``publishers/google/models/gemini-...``, or (the emulator's stand-in for a tuned Gemini model) its
model ID starts with ``gemini``.

Knob for tests, by video object name: a name containing ``offlabel`` adds a moment labelled
``off-label`` (outside every label set); ``badschema`` answers a moment with a string ``start`` and no
``confidence``; ``truncated`` cuts the answer JSON in half and ends with ``finishReason: MAX_TOKENS``.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from google.cloud import aiplatform_v1, storage
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.rpc import code_pb2

from airflow_provider_video_actions.emulator import model
from airflow_provider_video_actions.emulator.model import InstanceError
from airflow_provider_video_actions.emulator.runner import (
    BatchSpec,
    RunResult,
    check_mime_type,
    download,
    parse_seconds,
    split_gcs_uri,
    until_cancelled,
)

NAME = "gemini"
OFF_LABEL = "off-label"
#: Google's documented video mime types for Gemini (no video/avi).
MIME_TYPES = frozenset(
    {
        "video/x-flv",
        "video/quicktime",
        "video/mpeg",
        "video/mpegs",
        "video/mpg",
        "video/mp4",
        "video/webm",
        "video/wmv",
        "video/3gpp",
    }
)
#: google.rpc code -> (HTTP status, reason phrase) for a failed line's ``status`` string.
_HTTP = {
    code_pb2.INVALID_ARGUMENT: (400, "Bad Request"),
    code_pb2.NOT_FOUND: (404, "Not Found"),
    code_pb2.OUT_OF_RANGE: (400, "Bad Request"),
    code_pb2.INTERNAL: (500, "Internal Server Error"),
}


@dataclass
class GeminiSettings:
    """The emulated Gemini's knobs: the echo shape, and the batch limits (Google's values by default)."""

    echo: Literal["camel", "snake"] = "camel"
    max_requests_per_job: int = 200_000
    max_input_bytes: int = 1_000_000_000


def claims(job: aiplatform_v1.BatchPredictionJob) -> bool:
    """A Gemini publisher model, or a model whose ID starts with ``gemini`` (a tuned Gemini stand-in)."""
    model_id = job.model.rstrip("/").rsplit("/", 1)[-1]
    return job.model.startswith(("publishers/google/models/gemini-", "projects/")) and model_id.startswith("gemini")


def output_folder_model(model_display_name: str) -> str:
    """Gemini output directories are ``prediction-model-<time>``, whatever the model."""
    return "model"


def default_settings() -> GeminiSettings:
    """Google's behaviour."""
    return GeminiSettings()


def parameters(job: aiplatform_v1.BatchPredictionJob) -> tuple[dict[str, Any], list[str]]:
    """Gemini takes no model parameters; the problems Google refuses a Gemini batch job for."""
    problems = []
    if job.service_account:
        problems.append("Gemini batch prediction does not support a custom service_account")
    if job.encryption_spec.kms_key_name:
        problems.append("Gemini batch prediction does not support customer-managed encryption (encryption_spec)")
    return {}, problems


def _status(exc: InstanceError) -> str:
    """A failed line's ``status``: an HTTP reason and the JSON error body, as Vertex AI writes it (UNVERIFIED)."""
    http, reason = _HTTP.get(exc.code, (500, "Internal Server Error"))
    name = code_pb2.Code.Name(exc.code) if exc.code in code_pb2.Code.values() else "INTERNAL"
    return f"{reason}: {json.dumps({'error': {'code': http, 'message': exc.message, 'status': name}})}"


def _video_part(request: dict) -> tuple[str, float, float | None]:
    """The request's video URI and segment, or raise INVALID_ARGUMENT naming what is wrong."""
    parts = [p for c in request.get("contents") or [] for p in c.get("parts") or [] if "fileData" in p]
    if not parts:
        raise InstanceError(code_pb2.INVALID_ARGUMENT, "Request has no part with fileData")
    file_data, metadata = parts[0]["fileData"], parts[0].get("videoMetadata") or {}
    uri = file_data.get("fileUri")
    split_gcs_uri(uri if isinstance(uri, str) else "")
    check_mime_type(file_data.get("mimeType"), MIME_TYPES)
    start = parse_seconds(metadata.get("startOffset", "0s"), "startOffset", allow_infinity=False)
    end = parse_seconds(metadata.get("endOffset", "Infinity"), "endOffset", allow_infinity=True)
    return uri, start or 0.0, end


def _schema(request: dict) -> tuple[list[str], int]:
    """The label enum and ``maxItems`` of the request's response schema."""
    schema = (request.get("generationConfig") or {}).get("responseSchema") or {}
    moments = (schema.get("properties") or {}).get("moments") or {}
    label = ((moments.get("items") or {}).get("properties") or {}).get("label") or {}
    if not label.get("enum"):
        raise InstanceError(code_pb2.INVALID_ARGUMENT, "responseSchema has no moments[].label enum")
    return list(label["enum"]), int(moments.get("maxItems", 50))


def _answer(uri: str, moments: list[dict]) -> tuple[str, str]:
    """The answer text and finish reason, spoilt as the video's name asks (see the module's knobs)."""
    name = uri.rsplit("/", 1)[-1]
    if "offlabel" in name:
        moments = [*moments, {"label": OFF_LABEL, "start": 0.0, "end": 0.0, "confidence": 0.9}]
    if "badschema" in name:
        moments = [{"label": m["label"], "start": str(m["start"])} for m in moments] or [{"start": "0"}]
    text = json.dumps({"moments": moments})
    if "truncated" in name:
        return text[: len(text) // 2], "MAX_TOKENS"
    return text, "STOP"


def answer(client: storage.Client, request: dict) -> dict:
    """The ``response`` to one request, or raise InstanceError for a line that cannot be served."""
    uri, start, end = _video_part(request)
    labels, max_items = _schema(request)
    found = model.predict(download(client, uri), start, end, 0.0, 10_000)
    moments = [
        {"label": p["displayName"], "start": seconds, "end": seconds, "confidence": p["confidence"]}
        for p in found
        if p["displayName"] in labels
        for seconds in [float(p["timeSegmentStart"].removesuffix("s"))]
    ]
    moments = sorted(sorted(moments, key=lambda m: -m["confidence"])[:max_items], key=lambda m: m["start"])
    text, finish = _answer(uri, moments)
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish}],
        "usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": len(text) // 4},
    }


def _request(line: str) -> dict:
    """The ``request`` object of an input line, or raise INVALID_ARGUMENT."""
    try:
        parsed = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InstanceError(code_pb2.INVALID_ARGUMENT, f"Line is not valid JSON: {exc}") from None
    request = parsed.get("request") if isinstance(parsed, dict) else None
    if not isinstance(request, dict):
        raise InstanceError(code_pb2.INVALID_ARGUMENT, "Line has no 'request' object")
    return request


# ---------------------------------------------------------------------------------------------
# Google's two echo shapes.
# ---------------------------------------------------------------------------------------------


def _echo(value: dict | None, message_type: type, shape: str) -> dict | None:
    """A request or response re-serialised the way Google's output shows it (``shape``: camel or snake)."""
    if value is None:
        return None
    message = message_type.pb()()
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=True)
    except json_format.ParseError:
        return value  # as given: the line failed anyway
    if shape == "snake":
        return json_format.MessageToDict(message, preserving_proto_field_name=True)
    return _with_nulls(message)


def _with_nulls(message: Message) -> dict:
    """camelCase JSON with an explicit null for every unset field, and durations as ``{"seconds", "nanos"}``."""
    return {field.json_name: _field_value(message, field) for field in message.DESCRIPTOR.fields}


def _field_value(message: Message, field: FieldDescriptor) -> Any:
    """One field's value for :func:`_with_nulls`."""
    value = getattr(message, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return {k: _single(v, value_field) for k, v in value.items()}
    if field.is_repeated:
        return [_single(v, field) for v in value]
    if field.has_presence and not message.HasField(field.name):
        return None
    return _single(value, field)


def _single(value: Any, field: FieldDescriptor) -> Any:
    """One (non-repeated) value: a message, an enum by name, or a scalar."""
    if field.message_type is not None:
        name = field.message_type.full_name
        if name == "google.protobuf.Duration":
            return {"seconds": value.seconds, "nanos": value.nanos}
        if name.startswith("google.protobuf."):
            return json_format.MessageToDict(value)
        return _with_nulls(value)
    if field.enum_type is not None:
        return field.enum_type.values_by_number[value].name
    return base64.b64encode(value).decode() if isinstance(value, bytes) else value


# ---------------------------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------------------------


def _output_line(client: storage.Client, line: str, shape: str) -> tuple[dict[str, Any], bool]:
    """One output line for one input line, and whether it was served."""
    now = datetime.now(timezone.utc).isoformat()
    request = None
    try:
        request = _request(line)
        response = answer(client, request)
    except InstanceError as exc:
        echoed = _echo(request, aiplatform_v1.GenerateContentRequest, shape)
        return {"status": _status(exc), "processed_time": now, "request": echoed, "response": {}}, False
    echoed = _echo(request, aiplatform_v1.GenerateContentRequest, shape)
    answered = _echo(response, aiplatform_v1.GenerateContentResponse, shape)
    return {"status": "", "processed_time": now, "request": echoed, "response": answered}, True


def _over_limits(lines: list[str], settings: GeminiSettings) -> tuple[int, str] | None:
    """The job's error when its input passes a batch limit, else None."""
    size = sum(len(line.encode()) + 1 for line in lines)
    if len(lines) > settings.max_requests_per_job:
        return code_pb2.INVALID_ARGUMENT, (
            f"The input has {len(lines)} requests; a Gemini batch job takes at most {settings.max_requests_per_job}"
        )
    if size > settings.max_input_bytes:
        return code_pb2.INVALID_ARGUMENT, (
            f"The input file is {size} bytes; a Gemini batch job takes at most {settings.max_input_bytes}"
        )
    return None


def run_lines(client: storage.Client, lines: list[str], spec: BatchSpec, cancelled: threading.Event) -> RunResult:
    """Answer every request line into ``<output_directory>/predictions.jsonl``; stop early when cancelled."""
    settings = spec.settings or GeminiSettings()
    if error := _over_limits(lines, settings):
        return RunResult(error=error)
    result, output = RunResult(), []
    for line in until_cancelled(lines, cancelled, result):
        record, served = _output_line(client, line, settings.echo)
        output.append(json.dumps(record, separators=(",", ":")))
        result.successful += served
        result.failed += not served
    bucket, name = split_gcs_uri(f"{spec.output_directory}/predictions.jsonl")
    if output:
        text = "\n".join(reversed(output)) + "\n"
        client.bucket(bucket).blob(name).upload_from_string(text, content_type="application/jsonl")
        result.files.append(f"gs://{bucket}/{name}")
    return result
