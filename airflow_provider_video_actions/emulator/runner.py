"""Runs one emulated batch prediction: reads instances from GCS, predicts, writes sharded JSONL results."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from google.api_core.exceptions import GoogleAPICallError, NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from airflow_provider_video_actions.emulator import model
from airflow_provider_video_actions.emulator.model import InstanceError

log = logging.getLogger(__name__)

NOT_FOUND = 5
INTERNAL = 13
MIME_TYPES = frozenset({"video/mp4", "video/avi", "video/quicktime"})


def storage_client(endpoint: str) -> storage.Client:
    """A GCS client bound to the emulated server, without touching os.environ or real credentials."""
    return storage.Client(
        project="emulator", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )


@dataclass(frozen=True)
class BatchSpec:
    """What a run needs from the job: inputs, output directory and model parameters."""

    instances_uris: list[str]
    output_directory: str
    confidence_threshold: float = 0.0
    max_predictions: int = 50
    lines_per_file: int = 1000
    #: A Gemini job: request lines in, one ``predictions.jsonl`` of response lines out (``emulator/gemini.py``).
    gemini: bool = False


@dataclass
class RunResult:
    """Counts and, when the whole job failed, its google.rpc error (code, message)."""

    successful: int = 0
    failed: int = 0
    incomplete: int = 0
    error: tuple[int, str] | None = None
    files: list[str] = field(default_factory=list)


def split_gcs_uri(uri: str) -> tuple[str, str]:
    """Split ``gs://bucket/path`` into bucket and object name, or raise INVALID_ARGUMENT."""
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    if not uri.startswith("gs://") or not bucket or not name:
        raise InstanceError(model.INVALID_ARGUMENT, f"Not a gs://bucket/object URI: {uri!r}")
    return bucket, name


def parse_seconds(value: object, field_name: str, allow_infinity: bool) -> float | None:
    """Parse a Duration-like ``"1.5s"`` (or a number); ``"Infinity"``/``"inf"`` give None (open end)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value.strip().removesuffix("s"))
        except ValueError:
            raise InstanceError(model.INVALID_ARGUMENT, f"{field_name} is not a duration: {value!r}") from None
    else:
        raise InstanceError(model.INVALID_ARGUMENT, f"{field_name} is not a duration: {value!r}")
    if math.isinf(seconds) and seconds > 0 and allow_infinity:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        raise InstanceError(model.INVALID_ARGUMENT, f"{field_name} must be a finite, non-negative duration")
    return seconds


def _instance(line: str) -> dict:
    """Parse one instance line into a dict, or raise INVALID_ARGUMENT."""
    try:
        instance = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InstanceError(model.INVALID_ARGUMENT, f"Instance is not valid JSON: {exc}") from None
    if not isinstance(instance, dict):
        raise InstanceError(model.INVALID_ARGUMENT, "Instance is not a JSON object")
    return instance


def _check_instance(instance: dict) -> tuple[str, float, float | None]:
    """Validate the instance fields; return its content URI and segment bounds."""
    content = instance.get("content")
    if not isinstance(content, str):
        raise InstanceError(model.INVALID_ARGUMENT, "Instance has no 'content' string")
    split_gcs_uri(content)
    mime_type = instance.get("mimeType")
    if mime_type not in MIME_TYPES:
        allowed = ", ".join(sorted(MIME_TYPES))
        raise InstanceError(model.INVALID_ARGUMENT, f"Unsupported mimeType {mime_type!r}; expected one of {allowed}")
    start = parse_seconds(instance.get("timeSegmentStart", "0s"), "timeSegmentStart", allow_infinity=False)
    end = parse_seconds(instance.get("timeSegmentEnd", "Infinity"), "timeSegmentEnd", allow_infinity=True)
    assert start is not None
    return content, start, end


def _download(client: storage.Client, uri: str) -> bytes:
    """Download a video object; a missing object is a NOT_FOUND instance error naming the URI."""
    bucket, name = split_gcs_uri(uri)
    try:
        return client.bucket(bucket).blob(name).download_as_bytes()
    except NotFound:
        raise InstanceError(NOT_FOUND, f"Video {uri} not found") from None
    except GoogleAPICallError as exc:
        raise InstanceError(INTERNAL, f"Video {uri} could not be read: {exc}") from None


def predict_line(client: storage.Client, instance: dict, spec: BatchSpec) -> list[dict]:
    """Predictions for one parsed instance, or raise InstanceError."""
    content, start, end = _check_instance(instance)
    video = _download(client, content)
    return model.predict(video, start, end, spec.confidence_threshold, spec.max_predictions)


def read_instances(client: storage.Client, uri: str) -> list[str]:
    """Non-blank lines of one instances file; raise InstanceError (5 or 3) naming the file."""
    try:
        bucket, name = split_gcs_uri(uri)
        text = client.bucket(bucket).blob(name).download_as_bytes().decode("utf-8")
    except NotFound:
        raise InstanceError(NOT_FOUND, f"Instances file {uri} not found") from None
    except UnicodeDecodeError:
        raise InstanceError(model.INVALID_ARGUMENT, f"Instances file {uri} is not UTF-8 text") from None
    except InstanceError as exc:
        raise InstanceError(exc.code, f"Instances file {uri}: {exc.message}") from None
    return [line for line in text.splitlines() if line.strip()]


class ShardedWriter:
    """Writes JSONL records to ``{prefix}_00001.jsonl``, ``_00002``... with at most N lines per file."""

    def __init__(self, client: storage.Client, directory: str, prefix: str, lines_per_file: int) -> None:
        """Remember where to write; nothing is written until there are records."""
        self._bucket, _, self._base = directory.removeprefix("gs://").partition("/")
        self._directory, self._client, self._prefix = directory, client, prefix
        self._limit = max(lines_per_file, 1)
        self._lines: list[str] = []
        self.files: list[str] = []

    def add(self, record: dict) -> None:
        """Buffer one record, writing a file when the buffer is full."""
        self._lines.append(json.dumps(record, separators=(",", ":")))
        if len(self._lines) >= self._limit:
            self.flush()

    def flush(self) -> None:
        """Write the buffered records as the next numbered file."""
        if not self._lines:
            return
        name = f"{self._prefix}_{len(self.files) + 1:05d}.jsonl"
        blob = self._client.bucket(self._bucket).blob(f"{self._base}/{name}")
        blob.upload_from_string("\n".join(self._lines) + "\n", content_type="application/jsonl")
        self.files.append(f"{self._directory}/{name}")
        self._lines = []


def _all_lines(client: storage.Client, uris: list[str]) -> Iterator[str]:
    """Every instance line of every instances file, in order."""
    for uri in uris:
        yield from read_instances(client, uri)


def run_batch(client: storage.Client, spec: BatchSpec, cancelled: threading.Event) -> RunResult:
    """Predict every instance, writing predictions and errors files; stop early when cancelled."""
    try:
        lines = list(_all_lines(client, spec.instances_uris))
    except InstanceError as exc:
        return RunResult(error=(exc.code, exc.message))
    if spec.gemini:
        from airflow_provider_video_actions.emulator.gemini import run_requests

        return run_requests(client, lines, spec.output_directory, cancelled)
    result = RunResult()
    predictions = ShardedWriter(client, spec.output_directory, "predictions", spec.lines_per_file)
    errors = ShardedWriter(client, spec.output_directory, "errors", spec.lines_per_file)
    for index, line in enumerate(lines):
        if cancelled.is_set():
            result.incomplete = len(lines) - index
            break
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
        errors.add({"instance": instance, "error": {"code": exc.code, "message": exc.message}})
        result.failed += 1
        return
    predictions.add({"instance": instance, "prediction": prediction})
    result.successful += 1
