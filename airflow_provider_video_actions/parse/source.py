"""The source stage: which files of a job's output directory are its output (as Vertex AI names them), and their
chunks of whole lines, read one file after another."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from airflow_provider_video_actions import gcs
from airflow_provider_video_actions.errors import VideoActionsValueError
from airflow_provider_video_actions.parse.chunks import LongLine, iter_chunks

if TYPE_CHECKING:
    from google.cloud import storage

#: The names Vertex AI gives a job's output files (Gemini jobs write one ``predictions.jsonl``).
OUTPUT_FILE_NAME = re.compile(r"(?P<kind>predictions|errors)_\d+\.jsonl|(?P<gemini>predictions)\.jsonl")
#: The one predictions file of a Gemini job.
GEMINI_OUTPUT_FILE = "predictions.jsonl"
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


def file_chunks(
    client: storage.Client | None, uris: list[str], chunk_bytes: int, max_line_bytes: int
) -> Iterator[tuple[str, bytes | LongLine]]:
    """Each file's chunks of whole lines (and long lines), tagged with the file, one file open at a time."""
    for uri in uris:
        with gcs.open_read(client, uri) as handle:
            for chunk in iter_chunks(handle, chunk_bytes, max_line_bytes=max_line_bytes):
                yield uri, chunk
