"""What every emulated family's run shares: GCS reads and writes, durations, counts, sharded JSONL files.

The families themselves (what a line asks, what is answered) live in ``emulator/families/``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from google.api_core.exceptions import GoogleAPICallError, NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.rpc import code_pb2

from airflow_provider_video_actions.emulator.model import InstanceError

log = logging.getLogger(__name__)


def storage_client(endpoint: str) -> storage.Client:
    """A GCS client bound to the emulated server, without touching os.environ or real credentials."""
    return storage.Client(
        project="emulator", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )


@dataclass(frozen=True)
class BatchSpec:
    """What a run needs from the job: inputs, output directory, the family's parameters and settings."""

    instances_uris: list[str]
    output_directory: str
    lines_per_file: int = 1000
    #: The job's model parameters, as its family reads them (e.g. ``confidenceThreshold``).
    parameters: dict = field(default_factory=dict)
    #: The family's emulator settings for this run (e.g. Gemini's echo shape and limits).
    settings: Any = None


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
        raise InstanceError(code_pb2.INVALID_ARGUMENT, f"Not a gs://bucket/object URI: {uri!r}")
    return bucket, name


def parse_seconds(value: object, field_name: str, allow_infinity: bool) -> float | None:
    """Parse a Duration-like ``"1.5s"`` (or a number); ``"Infinity"``/``"inf"`` give None (open end)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value.strip().removesuffix("s"))
        except ValueError:
            raise InstanceError(code_pb2.INVALID_ARGUMENT, f"{field_name} is not a duration: {value!r}") from None
    else:
        raise InstanceError(code_pb2.INVALID_ARGUMENT, f"{field_name} is not a duration: {value!r}")
    if math.isinf(seconds) and seconds > 0 and allow_infinity:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        raise InstanceError(code_pb2.INVALID_ARGUMENT, f"{field_name} must be a finite, non-negative duration")
    return seconds


def check_mime_type(mime_type: object, allowed: frozenset[str]) -> None:
    """Refuse a mime type the model family does not take, as Vertex AI does (INVALID_ARGUMENT)."""
    if mime_type not in allowed:
        expected = ", ".join(sorted(allowed))
        message = f"Unsupported mimeType {mime_type!r}; expected one of {expected}"
        raise InstanceError(code_pb2.INVALID_ARGUMENT, message)


def until_cancelled(lines: list[str], cancelled: threading.Event, result: RunResult) -> Iterator[str]:
    """The lines in order until the job is cancelled; the ones left are counted as ``result.incomplete``."""
    for index, line in enumerate(lines):
        if cancelled.is_set():
            result.incomplete = len(lines) - index
            return
        yield line


def download(client: storage.Client, uri: str) -> bytes:
    """Download a video object; a missing object is a NOT_FOUND instance error naming the URI."""
    bucket, name = split_gcs_uri(uri)
    try:
        return client.bucket(bucket).blob(name).download_as_bytes()
    except NotFound:
        raise InstanceError(code_pb2.NOT_FOUND, f"Video {uri} not found") from None
    except GoogleAPICallError as exc:
        raise InstanceError(code_pb2.INTERNAL, f"Video {uri} could not be read: {exc}") from None


def read_instances(client: storage.Client, uri: str) -> list[str]:
    """Non-blank lines of one instances file; raise InstanceError (NOT_FOUND or INVALID_ARGUMENT) naming the file."""
    try:
        bucket, name = split_gcs_uri(uri)
        text = client.bucket(bucket).blob(name).download_as_bytes().decode("utf-8")
    except NotFound:
        raise InstanceError(code_pb2.NOT_FOUND, f"Instances file {uri} not found") from None
    except UnicodeDecodeError:
        raise InstanceError(code_pb2.INVALID_ARGUMENT, f"Instances file {uri} is not UTF-8 text") from None
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


def all_lines(client: storage.Client, uris: list[str]) -> Iterator[str]:
    """Every instance line of every instances file, in order."""
    for uri in uris:
        yield from read_instances(client, uri)


#: A family's run over the job's input lines: (client, lines, spec, cancelled) -> RunResult.
RunLines = Callable[[storage.Client, list[str], BatchSpec, threading.Event], RunResult]


def run_batch(client: storage.Client, spec: BatchSpec, run_lines: RunLines, cancelled: threading.Event) -> RunResult:
    """Read every input line, then let the job's family answer them; an unreadable input file fails the job."""
    try:
        lines = list(all_lines(client, spec.instances_uris))
    except InstanceError as exc:
        return RunResult(error=(exc.code, exc.message))
    return run_lines(client, lines, spec, cancelled)
