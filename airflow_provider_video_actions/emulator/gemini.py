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
order). A line that cannot be served (missing video, unsupported mime type, not a video, segment
outside it, no request) has no ``response`` and a ``status`` like ``'Not Found: {"error": {"code": 404,
"message": ..., "status": "NOT_FOUND"}}'``.

Knob for tests, by video object name: a name containing ``offlabel`` adds a moment labelled
``off-label`` (outside every label set); ``badschema`` answers a moment with a string ``start`` and no
``confidence``; ``truncated`` cuts the answer JSON in half and ends with ``finishReason: MAX_TOKENS``.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import Any

from google.cloud import storage

from airflow_provider_video_actions.emulator import model
from airflow_provider_video_actions.emulator.model import InstanceError
from airflow_provider_video_actions.emulator.runner import (
    MIME_TYPES,
    RunResult,
    _download,
    parse_seconds,
    split_gcs_uri,
)

OFF_LABEL = "off-label"
#: google.rpc code -> (HTTP status, reason phrase, status name) for a failed line's ``status`` string.
_HTTP = {
    model.INVALID_ARGUMENT: (400, "Bad Request", "INVALID_ARGUMENT"),
    5: (404, "Not Found", "NOT_FOUND"),
    model.OUT_OF_RANGE: (400, "Bad Request", "OUT_OF_RANGE"),
    13: (500, "Internal Server Error", "INTERNAL"),
}


def _status(exc: InstanceError) -> str:
    """A failed line's ``status``: an HTTP reason and the JSON error body, as Vertex AI writes it (UNVERIFIED)."""
    http, reason, name = _HTTP.get(exc.code, (500, "Internal Server Error", "INTERNAL"))
    return f"{reason}: {json.dumps({'error': {'code': http, 'message': exc.message, 'status': name}})}"


def _video_part(request: dict) -> tuple[str, float, float | None]:
    """The request's video URI and segment, or raise INVALID_ARGUMENT naming what is wrong."""
    parts = [p for c in request.get("contents") or [] for p in c.get("parts") or [] if "fileData" in p]
    if not parts:
        raise InstanceError(model.INVALID_ARGUMENT, "Request has no part with fileData")
    file_data, metadata = parts[0]["fileData"], parts[0].get("videoMetadata") or {}
    uri = file_data.get("fileUri")
    split_gcs_uri(uri if isinstance(uri, str) else "")
    if file_data.get("mimeType") not in MIME_TYPES:
        allowed = ", ".join(sorted(MIME_TYPES))
        raise InstanceError(
            model.INVALID_ARGUMENT, f"Unsupported mimeType {file_data.get('mimeType')!r}; expected one of {allowed}"
        )
    start = parse_seconds(metadata.get("startOffset", "0s"), "startOffset", allow_infinity=False)
    end = parse_seconds(metadata.get("endOffset", "Infinity"), "endOffset", allow_infinity=True)
    return uri, start or 0.0, end


def _schema(request: dict) -> tuple[list[str], int]:
    """The label enum and ``maxItems`` of the request's response schema."""
    schema = (request.get("generationConfig") or {}).get("responseSchema") or {}
    moments = (schema.get("properties") or {}).get("moments") or {}
    label = ((moments.get("items") or {}).get("properties") or {}).get("label") or {}
    if not label.get("enum"):
        raise InstanceError(model.INVALID_ARGUMENT, "responseSchema has no moments[].label enum")
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
    found = model.predict(_download(client, uri), start, end, 0.0, 10_000)
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
        raise InstanceError(model.INVALID_ARGUMENT, f"Line is not valid JSON: {exc}") from None
    request = parsed.get("request") if isinstance(parsed, dict) else None
    if not isinstance(request, dict):
        raise InstanceError(model.INVALID_ARGUMENT, "Line has no 'request' object")
    return request


def _output_line(client: storage.Client, line: str) -> tuple[dict[str, Any], bool]:
    """One output line for one input line, and whether it was served."""
    now = datetime.now(timezone.utc).isoformat()
    request = None
    try:
        request = _request(line)
        response = answer(client, request)
    except InstanceError as exc:
        return {"status": _status(exc), "processed_time": now, "request": request}, False
    return {"status": "", "processed_time": now, "request": request, "response": response}, True


def run_requests(
    client: storage.Client, lines: list[str], output_directory: str, cancelled: threading.Event
) -> RunResult:
    """Answer every request line into ``<output_directory>/predictions.jsonl``; stop early when cancelled."""
    result, output = RunResult(), []
    for index, line in enumerate(lines):
        if cancelled.is_set():
            result.incomplete = len(lines) - index
            break
        record, served = _output_line(client, line)
        output.append(json.dumps(record, separators=(",", ":")))
        result.successful += served
        result.failed += not served
    bucket, name = split_gcs_uri(f"{output_directory}/predictions.jsonl")
    if output:
        text = "\n".join(reversed(output)) + "\n"
        client.bucket(bucket).blob(name).upload_from_string(text, content_type="application/jsonl")
        result.files.append(f"gs://{bucket}/{name}")
    return result
