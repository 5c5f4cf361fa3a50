"""The source stage: which files of a job's output directory are its output (as Vertex AI names them), and their
chunks of whole lines, read one file after another; and a few failed instances from their heads, for a failure
message."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_video_actions import gcs
from airflow_provider_video_actions.errors import VideoActionsValueError
from airflow_provider_video_actions.parse import ranged_read
from airflow_provider_video_actions.parse.chunks import LongLine, iter_chunks

if TYPE_CHECKING:
    from google.cloud import storage

#: The names Vertex AI gives a job's output files (Gemini jobs write one ``predictions.jsonl``).
OUTPUT_FILE_NAME = re.compile(r"(?P<kind>predictions|errors)_\d+\.jsonl|(?P<gemini>predictions)\.jsonl")
#: The one predictions file of a Gemini job.
GEMINI_OUTPUT_FILE = "predictions.jsonl"
#: At most this many bytes of a finished job's output are read to name a few failed instances.
FAILED_SAMPLE_BYTES = 16 * 1024
#: The folder Vertex AI creates for each job under the destination prefix.
JOB_FOLDER_PREFIX = "prediction-"


def output_files(client: storage.Client, output_directory: str) -> tuple[list[str], list[str], dict[str, int]]:
    """The job's own ``predictions_<n>.jsonl`` (or Gemini's ``predictions.jsonl``) and ``errors_<n>.jsonl``, and
    their sizes in bytes (URI -> size, for sharded parses), from one listing.

    Only files directly in the directory and named as Vertex AI names them: an editor backup, a
    ``predictions.parquet`` or a subfolder (Gemini's ``incremental_predictions/`` repeats lines) is
    not the job's output. A directory holding jobs' ``prediction-*`` folders is the destination
    prefix, not one job's directory: it is refused, listing them.
    """
    directory = output_directory.rstrip("/")
    names, folders = gcs.list_folder(client, directory)
    if jobs := [name for name in folders if name.startswith(JOB_FOLDER_PREFIX)]:
        shown = ", ".join(jobs[:10]) + (f" and {len(jobs) - 10} more" if len(jobs) > 10 else "")
        raise VideoActionsValueError(
            f"{output_directory} holds the output folders of {len(jobs)} jobs ({shown}), not one job's output: "
            f"give one job's directory, e.g. {directory}/{jobs[0]} (its output_info.gcs_output_directory), "
            "or the submit task's result as job."
        )
    matches = [(name, OUTPUT_FILE_NAME.fullmatch(name)) for name in names]
    predictions = [f"{directory}/{name}" for name, match in matches if match and match["kind"] != "errors"]
    errors = [f"{directory}/{name}" for name, match in matches if match and match["kind"] == "errors"]
    sizes = {f"{directory}/{name}": names[name] for name, match in matches if match}
    return predictions, errors, sizes


def failed_instances(client: storage.Client, output_directory: str, limit: int = 5) -> list[str]:
    """Up to ``limit`` failed instances of a finished job, as ``video: message``, from the head of its own output
    files (``errors_*.jsonl``; Gemini's failed lines carry a ``status`` in ``predictions.jsonl``)."""
    predictions, errors, sizes = output_files(client, output_directory)
    found: list[str] = []
    for uri in errors or predictions:
        if sizes.get(uri):
            head = gcs.read_head(client, uri, FAILED_SAMPLE_BYTES)
            lines = head.split(b"\n")
            found += filter(None, map(_failed_instance, lines if len(head) < FAILED_SAMPLE_BYTES else lines[:-1]))
        if len(found) >= limit:
            break
    return found[:limit]


def failed_sample(client: storage.Client, summary: Mapping[str, Any], log: Any) -> list[str]:
    """:func:`failed_instances` of a job summary's output directory; best effort (it only adds to a failure message):
    a directory that cannot be read gives none, logged."""
    from google.api_core.exceptions import GoogleAPICallError

    directory = summary.get("output_directory")
    if not isinstance(directory, str) or not directory:
        return []
    try:
        return failed_instances(client, directory)
    except (GoogleAPICallError, OSError, ValueError) as exc:
        log.warning("Could not read failed instances from %s: %s", directory, exc)
        return []


def _failed_instance(line: bytes) -> str | None:
    """``video: message`` for an output line that records a failure, else None (any shape of line is survived)."""
    import json

    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    error = record.get("error")
    message = error.get("message") if isinstance(error, dict) else record.get("status")
    if not message:
        return None
    return f"{_video_of(record)}: {str(message)[:200]}"


def _video_of(record: dict[str, Any]) -> str:
    """The video a failed output line names: ``instance.content`` (or flattened), or Gemini's ``fileData.fileUri``."""
    instance = record.get("instance", record)
    if isinstance(instance, dict) and isinstance(instance.get("content"), str):
        return instance["content"][:300]
    request = record.get("request")
    for part in _items(_items([request], "contents"), "parts"):
        data = part.get("fileData") or part.get("file_data")
        uri = (data.get("fileUri") or data.get("file_uri")) if isinstance(data, dict) else None
        if isinstance(uri, str):
            return uri[:300]
    return "(unnamed instance)"


def _items(objects: list[Any], key: str) -> list[dict[str, Any]]:
    """The dicts listed under ``key`` of each dict in ``objects`` (anything else skipped)."""
    lists = [obj.get(key) for obj in objects if isinstance(obj, dict)]
    return [item for items in lists if isinstance(items, list) for item in items if isinstance(item, dict)]


def file_chunks(
    client: storage.Client | None,
    uris: list[str],
    chunk_bytes: int,
    max_line_bytes: int,
    read_ahead: ranged_read.ReadAhead = ranged_read.DEFAULT,
) -> Iterator[tuple[str, bytes | LongLine]]:
    """Each file's chunks of whole lines (and long lines), tagged with the file, one file open at a time."""
    for uri, handle in _opened(client, uris, read_ahead):
        for chunk in iter_chunks(handle, chunk_bytes, max_line_bytes=max_line_bytes):
            yield uri, chunk


def _opened(
    client: storage.Client | None, uris: list[str], read_ahead: ranged_read.ReadAhead
) -> Iterator[tuple[str, Any]]:
    """Each file open for reading in turn; gs:// objects read ahead by concurrent ranged GETs (:mod:`.ranged_read`)."""
    if uris and all(uri.startswith("gs://") for uri in uris):
        yield from ranged_read.streams(client, uris, read_ahead)
        return
    for uri in uris:
        with gcs.open_read(client, uri) as handle:
            yield uri, handle
