"""Parse a finished job's output into prediction records, for XCom or a file in GCS.

The operator streams the job's own ``predictions_<n>.jsonl`` and ``errors_<n>.jsonl`` files (directly
in its output directory) in chunks of whole lines (:mod:`airflow_provider_video_actions.predictions`),
filters the moments, and either returns them in its XCom (bounded by ``max_xcom_bytes``) or writes
them to a ``.jsonl``, ``.csv`` or ``.parquet`` destination, with this run's error records beside it
in ``<destination stem>.errors.jsonl``. It returns counts, label counts and a few error samples;
errors never pass silently.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from functools import cached_property
from typing import TYPE_CHECKING, Any

import msgspec
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseOperator

from airflow_provider_video_actions import shards
from airflow_provider_video_actions.families.dispatch import OutputDecoder, family_for, output_family
from airflow_provider_video_actions.gcs import DEFAULT_MAX_LINE_BYTES, LongLine
from airflow_provider_video_actions.job import FAILURE_STATES, VideoActionsValueError, split_gcs_uri
from airflow_provider_video_actions.paths import PathSegmentFilterMixin
from airflow_provider_video_actions.predictions import (
    MALFORMED,
    Columns,
    ErrorRecord,
    PredictionRecord,
    error_columns,
    gc_paused,
)
from airflow_provider_video_actions.tallies import ParseStats, PredictionFilter, shorten
from airflow_provider_video_actions.validators import check_fraction, check_positive
from airflow_provider_video_actions.writers import CONTENT_TYPES, WRITER_FORMATS, RecordWriter, compact_arrow_memory

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_video_actions.hooks.batch_prediction import VideoActionBatchPredictionHook

#: Default XCom budget: the metadata database is no place for bulk data.
DEFAULT_MAX_XCOM_BYTES = 1024 * 1024
#: Seconds between the progress lines of a long parse.
DEFAULT_PROGRESS_INTERVAL = 30.0


def counted(count: int, noun: str) -> str:
    """``1 error``, ``2,000 errors``: a count with its noun in the right number (the nouns logged here take an s)."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


class ParseProgress:
    """Logs how far a parse has got, at most once per ``interval`` seconds: bytes read, rows, rate, files left."""

    def __init__(self, log: Any, interval: float, total_bytes: int, files: int) -> None:
        self.log, self.interval, self.total_bytes, self.files = log, interval, total_bytes, files
        self.started = self._logged = time.monotonic()
        self.bytes_read, self.files_started, self._file = 0, 0, None

    def read(self, uri: str, size: int, rows: int) -> None:
        """Count a chunk of ``size`` bytes of ``uri``; log a line if ``interval`` has passed since the last one."""
        if uri != self._file:
            self._file, self.files_started = uri, self.files_started + 1
        self.bytes_read += size
        now = time.monotonic()
        if now - self._logged >= self.interval:
            self._logged = now
            self.log.info("%s", self.line(now, rows))

    def line(self, now: float, rows: int) -> str:
        """The progress line: ``Progress: 1,024 of 4,096 bytes read (25%), 12 rows, 0.3 MB/s; 3 of 4 files left``."""
        share = 100 * self.bytes_read // self.total_bytes if self.total_bytes else 100
        rate = self.bytes_read / max(now - self.started, 1e-6) / 1e6
        left = self.files - self.files_started + 1  # the file being read is not done yet
        return (
            f"Progress: {self.bytes_read:,} of {counted(self.total_bytes, 'byte')} read ({share}%), "
            f"{counted(rows, 'row')}, {rate:.1f} MB/s; {left:,} of {counted(self.files, 'file')} left"
        )


def check_location(uri: Any, param: str, *, want_object: bool, allow_other_schemes: bool = False) -> str:
    """A ``gs://`` or ``file://`` URI (another fsspec one, ``s3://``..., if allowed), or raise naming the parameter."""
    if isinstance(uri, str) and uri.startswith("file://"):
        from airflow_provider_video_actions.gcs import local_path

        try:
            local_path(uri)
        except VideoActionsValueError as exc:
            raise VideoActionsValueError(f"{param}: {exc}") from None
        return uri
    scheme = uri.partition("://")[0] if isinstance(uri, str) and "://" in uri else "gs"
    if scheme != "gs":
        if not allow_other_schemes:
            raise VideoActionsValueError(
                f"{param} must be a gs:// or file:// URI, got {shorten(str(uri), 200)!r}; set "
                "allow_other_schemes=True to read or write another fsspec filesystem (s3://, memory://...)."
            )
        from fsspec import get_filesystem_class

        try:
            get_filesystem_class(scheme)
        except (ImportError, ValueError) as exc:
            raise VideoActionsValueError(f"{param}: cannot read or write {uri!r}: {exc}") from None
        return uri
    split_gcs_uri(uri, param, want_object=want_object)
    return uri


def destination_format(destination: str) -> str:
    """The writer format from the destination's extension, or raise listing the supported ones."""
    fmt = os.path.splitext(destination)[1].lower()
    if fmt not in WRITER_FORMATS:
        raise VideoActionsValueError(
            f"destination {destination!r} must end in {', '.join(WRITER_FORMATS)}; leave it unset to return "
            "the predictions in XCom."
        )
    return fmt


class _XComBudget:
    """The byte budget of the whole return value: predictions, error records and the summary."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.used = max_bytes, 0

    def charge(self, size: int) -> None:
        """Count bytes, failing with the fix as soon as the budget is passed."""
        self.used += size
        if self.used > self.max_bytes:
            raise AirflowFailException(
                f"The parse result passes max_xcom_bytes={self.max_bytes}: XCom lives in the metadata "
                "database. Set destination='gs://bucket/path/predictions.parquet' (or .jsonl, .csv) to write "
                "them to GCS, narrow them with min_confidence, labels or top_k, or raise max_xcom_bytes."
            )


class _XComSink:
    """Collects records of one type as dicts for the return value, within a shared budget."""

    def __init__(self, budget: _XComBudget, record_type: type[msgspec.Struct]) -> None:
        self.budget, self.items, self._type = budget, [], record_type
        self._encode = msgspec.json.Encoder().encode

    def write(self, columns: Columns) -> None:
        """Charge each record to the budget and keep it as a dict."""
        for record in map(self._type, *columns):
            self.budget.charge(len(self._encode(record)) + 2)
            self.items.append(msgspec.structs.asdict(record))

    def write_table(self, table: Any) -> None:
        """Charge and keep records given as an Arrow table."""
        self.write(tuple(column.to_pylist() for column in table.columns))

    def close(self) -> None:
        """Nothing to finish: the records go out with the return value."""


class _ErrorsFile:
    """Error records as JSONL beside the destination, created only if there is an error."""

    def __init__(self, stack: ExitStack, client: Any, uri: str) -> None:
        self._stack, self._client, self.uri = stack, client, uri
        self._writer: RecordWriter | None = None

    def write(self, columns: Columns) -> None:
        """Write error records, creating the file on the first call."""
        if self._writer is None:
            from airflow_provider_video_actions import gcs

            handle = self._stack.enter_context(gcs.open_write(self._client, self.uri, CONTENT_TYPES[".jsonl"]))
            self._writer = RecordWriter(handle, ".jsonl", ErrorRecord)
            self._stack.callback(self._writer.stop)
        self._writer.write(columns)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class JobOutputMixin:
    """Where a finished job's output is, for the operators that read it: ``job`` (the submit task's result) or
    ``output_directory``, checked when the task runs, and the hook whose storage client reads it."""

    job: Any
    output_directory: Any
    allow_partial: bool
    allow_other_schemes: bool
    gcp_conn_id: str
    impersonation_chain: str | Sequence[str] | None

    @cached_property
    def hook(self) -> VideoActionBatchPredictionHook:
        """The GCS side of the video actions hook (imported here so DAG parsing stays light)."""
        from airflow_provider_video_actions.hooks.batch_prediction import VideoActionBatchPredictionHook

        return VideoActionBatchPredictionHook(
            gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain
        )

    def _source(self) -> str:
        """The rendered output directory; a job that ended in a failure state only with ``allow_partial``."""
        if self.job is not None:
            if not isinstance(self.job, dict) or not self.job.get("output_directory"):
                raise VideoActionsValueError(
                    "job must be the submit operator's result, a dict with 'output_directory'; "
                    f"got {type(self.job).__name__}: {str(self.job)[:200]!r}."
                )
            if self.job.get("state") in FAILURE_STATES and not self.allow_partial:
                raise VideoActionsValueError(
                    f"job {self.job.get('name')} ended in {self.job['state']}; set allow_partial=True to read the "
                    "rows it completed."
                )
            return self._location(self.job["output_directory"], "job['output_directory']", want_object=False)
        return self._location(self.output_directory, "output_directory", want_object=False)

    def _location(self, uri: Any, param: str, *, want_object: bool) -> str:
        return check_location(uri, param, want_object=want_object, allow_other_schemes=self.allow_other_schemes)

    def _client_for(self, *uris: str | None) -> Any:
        """The hook's storage client when any of the URIs is on GCS, else None (no credentials needed)."""
        return self.hook.storage_client if any(uri and uri.startswith("gs://") for uri in uris) else None

    def _output_files(self, client: Any, source: str) -> tuple[list[str], list[str], dict[str, int]]:
        """The job's predictions and errors files with their sizes; fails (without retries) on a folder of several
        jobs, and (with retries: the job may still be writing) on a folder without them."""
        from airflow_provider_video_actions import gcs

        predictions, errors, sizes = gcs.output_files(client, source)  # a VideoActionsValueError fails, no retry
        if not predictions and not errors:
            raise AirflowException(
                f"No predictions_<n>.jsonl or errors_<n>.jsonl files in {source}: is the job finished, and is "
                "this its output_directory (job.output_info.gcs_output_directory)?"
            )
        return predictions, errors, sizes


class ParseVideoActionPredictionsOperator(PathSegmentFilterMixin, JobOutputMixin, BaseOperator):
    """Read a video action recognition job's output into structured prediction records.

    :param job: the submit operator's return value (a dict with ``output_directory``), e.g. its XComArg.
    :param output_directory: the job's output directory, when ``job`` is not given.
    :param destination: ``gs://`` (or ``file://``, or another fsspec) URI ending in ``.jsonl``, ``.csv`` or
        ``.parquet``; unset returns the records in XCom.
    :param min_confidence: keep moments at or above this confidence (0..1).
    :param labels: keep only these action labels.
    :param top_k: keep at most this many moments per instance, the most confident.
    :param max_xcom_bytes: fail rather than push more than this to XCom.
    :param max_malformed_lines: fail when more output lines than this cannot be read (None: never). Lines the job
        reported as errors, and lines or moments whose values break the rules, are error records but not malformed.
    :param model_family: ``"action_recognition"`` or ``"gemini"``: whose output this is. None (default) takes it
        from ``job`` (the submit task's result), else from the file names (Gemini writes ``predictions.jsonl``,
        action recognition ``predictions_<n>.jsonl``).
    :param max_line_bytes: an output line longer than this (64 MiB; real lines are a few kB) is skipped
        unread and reported as an error record with its file, line and length, so memory stays bounded.
    :param allow_other_schemes: also read and write other fsspec URLs (``s3://``, ``memory://``...) for
        ``output_directory`` and ``destination``; by default only ``gs://`` and ``file://`` are accepted.
    :param action_labels: Gemini jobs only: the label set answers must keep to (names, or name -> description).
        Defaults to the one in ``job`` (the submit task's result), else to each line's echoed response schema.
        Gemini answers are also held to the job's ``confidence_threshold`` and ``max_predictions`` here.
    :param allow_partial: read the output of a job that ended CANCELLED, FAILED or EXPIRED (Google exports the
        rows a cancelled Gemini job completed); without it such a job's summary is refused. Pass the submit
        task's failure summary, ``XComArg(submit_task, key="failed_job")``, with ``trigger_rule="all_done"``.
    :param asset_alias: name of an ``AssetAlias`` added to the outlets; the written destination is emitted
        through it as an asset event (with the counts as its extra), so DAGs scheduled on the alias run.
    :param shard: parse only this shard of the job's output files, ``"index/count"`` (``"3/8"``) or
        ``{"index": 3, "count": 8}``, into its part of the dataset at ``destination`` (a folder gets
        ``part-00003-of-00008.parquet``; ``.../part.jsonl`` gets ``part-00003-of-00008.jsonl``). Meant for
        ``.partial(...).expand(shard=...)``; see :mod:`airflow_provider_video_actions.shards` and
        :class:`~airflow_provider_video_actions.operators.shards.CombineParseShardsOperator`.
    :param progress_interval: seconds between the progress lines a long parse logs (bytes read, rows, rate, files
        left), 30 by default.
    :param max_shards: refuse a ``shard`` whose count is above this (1024, Airflow's default ``[core]
        max_map_length``), so a typo such as ``"0/2000000"`` fails before any file is read.
    """

    template_fields: Sequence[str] = (
        "job",
        "output_directory",
        "destination",
        "labels",
        "impersonation_chain",
        "shard",
    )
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        job: dict[str, Any] | None = None,
        output_directory: str | None = None,
        destination: str | None = None,
        min_confidence: float = 0.0,
        labels: Sequence[str] | None = None,
        top_k: int | None = None,
        max_xcom_bytes: int = DEFAULT_MAX_XCOM_BYTES,
        max_malformed_lines: int | None = None,
        model_family: str | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        allow_other_schemes: bool = False,
        action_labels: Sequence[str] | dict[str, str] | None = None,
        asset_alias: str | None = None,
        allow_partial: bool = False,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        shard: str | dict[str, int] | None = None,
        max_shards: int = shards.MAX_SHARD_COUNT,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.shard, self.max_shards = shard, check_positive(max_shards, "max_shards", integer=True)
        self.progress_interval = check_positive(progress_interval, "progress_interval")
        if (job is None) == (output_directory is None):
            raise VideoActionsValueError(
                f"{type(self).__name__} {self.task_id}: give exactly one of job (the submit task's result) "
                "or output_directory."
            )
        self.job, self.output_directory, self.destination = job, output_directory, destination
        self.min_confidence = check_fraction(min_confidence, "min_confidence")
        self.labels, self.top_k = labels, None if top_k is None else check_positive(top_k, "top_k", integer=True)
        self.max_xcom_bytes = check_positive(max_xcom_bytes, "max_xcom_bytes", integer=True)
        if max_malformed_lines is not None and (not isinstance(max_malformed_lines, int) or max_malformed_lines < 0):
            raise VideoActionsValueError(
                f"max_malformed_lines must be None or an integer >= 0, got {max_malformed_lines!r}."
            )
        self.max_malformed_lines = max_malformed_lines
        if model_family is not None:
            family_for(None, model_family)
        self.model_family = model_family
        self.max_line_bytes = check_positive(max_line_bytes, "max_line_bytes", integer=True)
        self.allow_other_schemes = allow_other_schemes
        self.action_labels, self.allow_partial = action_labels, allow_partial
        self.gcp_conn_id, self.impersonation_chain = gcp_conn_id, impersonation_chain
        for param, uri in (("output_directory", output_directory), ("destination", destination)):
            # A literal's scheme fails at DAG parse time; templates, and gs:// buckets, are checked in execute.
            if isinstance(uri, str) and "{{" not in uri and not uri.startswith("gs://"):
                self._location(uri, param, want_object=param == "destination")
        if (part := shards.literal_part(destination, shard, self.max_shards)) is not None:
            destination_format(part)
        self.asset_alias = asset_alias
        self._add_alias_outlet()

    def _check_destination(self, source: str) -> str | None:
        """The destination's format (None for XCom); a destination inside the job's output directory is refused.

        There, the next try would read it back as output, or overwrite one of the job's own files.
        """
        if self.destination is None:
            return None
        fmt = destination_format(self._location(self.destination, "destination", want_object=True))
        from airflow_provider_video_actions import gcs

        if gcs.same_or_inside(self.destination, source):  # its errors file is beside it: inside too, or not
            raise VideoActionsValueError(
                f"destination {self.destination!r} is inside the job's output directory {source!r}, where the "
                "next try would read it back as output (or it would overwrite the job's own files): choose a "
                "destination outside that directory."
            )
        return fmt

    def _filter(self) -> PredictionFilter:
        labels = self.labels
        if labels is not None and (isinstance(labels, str) or not all(isinstance(label, str) for label in labels)):
            raise VideoActionsValueError(f"labels must be a list of label names, got {labels!r}.")
        return PredictionFilter(self.min_confidence, None if labels is None else frozenset(labels), self.top_k)

    def execute(self, context: Any) -> dict[str, Any]:
        """Stream the output files through the filter into XCom or the destination."""
        # Rendered parameters are checked first: a VideoActionsValueError fails the task without a retry.
        self.destination, shard = shards.plan(self.destination, self.shard, self.max_shards)  # this try's copy
        source, keep = self._source(), self._filter()
        fmt = self._check_destination(source)
        from airflow_provider_video_actions import gcs

        client = self._client_for(source, self.destination)
        predictions, errors, sizes = self._output_files(client, source)
        family = output_family(self.model_family, self.job, predictions)
        self.decoder = OutputDecoder.for_job(family, self.job, self.action_labels, self._open_instances)
        if shard is not None:
            digest = shards.listing_digest(sizes)
            predictions, errors = shards.shard_files(shard, predictions, errors, sizes)
        files = predictions + errors
        self.log.info(
            "Parsing %s and %s (model family %s) from %s",
            counted(len(predictions), "predictions file"),
            counted(len(errors), "errors file"),
            family.name,
            source,
        )
        stats, budget = ParseStats(), _XComBudget(self.max_xcom_bytes)
        progress = ParseProgress(self.log, self.progress_interval, sum(sizes[uri] for uri in files), len(files))
        with ExitStack() as stack:
            stack.enter_context(gc_paused())
            stack.enter_context(compact_arrow_memory())
            records, error_records = self._sinks(stack, fmt, client, budget)
            self._parse_files(client, files, keep, stats, (records, error_records), progress)
            records.close()
            error_records.close()
        result = stats.summary()
        budget.charge(len(msgspec.json.encode(result)))
        if fmt is None:
            result["predictions"], result["error_records"] = records.items, error_records.items
        else:
            result["uri"] = self.destination
            result["errors_uri"] = self._errors_uri() if stats.errors else None
            if not stats.errors:
                gcs.delete(client, self._errors_uri())  # an earlier run's errors are not this run's
        if shard is not None:
            result["shard"] = shards.shard_summary(shard, self.destination, digest)
        self.log.info(
            "Parsed %s from %s; %s",
            counted(stats.rows, "moment"),
            counted(result["videos"], "video"),
            counted(stats.errors, "error"),
        )
        if stats.errors:
            self.log.warning("Error samples: %s", stats.error_samples)
        self._emit_asset_event(context, result)
        return result

    def _open_instances(self, uri: str) -> Any:
        """Open the job's instances file (a family may join answers to instances through it)."""
        from airflow_provider_video_actions import gcs

        return gcs.open_read(self._client_for(uri), uri)

    def _long_line(self, uri: str, line: int, long_line: LongLine) -> ErrorRecord:
        """The error record of a line skipped unread for its length."""
        message = (
            f"output line of {long_line.length} bytes is longer than max_line_bytes={self.max_line_bytes}; "
            "skipped unread"
        )
        return ErrorRecord(None, None, None, None, message, uri, line, MALFORMED)

    def _sinks(self, stack: ExitStack, fmt: str | None, client: Any, budget: _XComBudget) -> tuple[Any, Any]:
        """Where records and error records go: XCom lists, or streaming writers (errors as JSONL)."""
        if fmt is None:
            return _XComSink(budget, PredictionRecord), _XComSink(budget, ErrorRecord)
        from airflow_provider_video_actions import gcs

        handle = stack.enter_context(gcs.open_write(client, self.destination, CONTENT_TYPES[fmt]))
        writer = RecordWriter(handle, fmt, PredictionRecord)
        stack.callback(writer.stop)  # before the handle closes, if the parse fails half way
        return writer, _ErrorsFile(stack, client, self._errors_uri())

    def _errors_uri(self) -> str:
        return os.path.splitext(self.destination)[0] + ".errors.jsonl"

    def _parse_files(
        self,
        client: Any,
        uris: list[str],
        keep: PredictionFilter,
        stats: ParseStats,
        sinks: tuple[Any, Any],
        progress: ParseProgress,
    ) -> None:
        """Every line of the output files: chunks through the fast path where it vouches for them, else exactly.

        One pipeline over all files (a reader thread, the fast path's threads), so it never drains between files.
        ``sinks`` are where records and error records go; ``progress`` logs how far it has got.
        """
        from airflow_provider_video_actions import gcs

        records, errors = sinks
        first_line, previous = 1, None
        for uri, chunk, fast in self.decoder.read_ahead(gcs.prefetched(self._chunks(client, uris)), keep):
            if uri != previous:  # the next file: lines count from 1
                first_line, previous = 1, uri
            if isinstance(chunk, LongLine):
                stats.add_lines(1)
                self._add_errors(uri, [self._long_line(uri, first_line, chunk)], stats, errors)
                first_line += 1
            elif fast is not None:
                stats.add_lines(fast.lines)
                kept = fast.records.num_rows
                stats.add_kept(fast.instances, fast.moments, fast.video_hashes, kept, fast.label_counts())
                records.write_table(fast.records)
                first_line += fast.lines
            else:
                first_line += self._parse_chunk(uri, first_line, chunk, keep, stats, records, errors)
            progress.read(uri, chunk.length if isinstance(chunk, LongLine) else len(chunk), stats.rows)

    def _chunks(self, client: Any, uris: list[str]) -> Iterator[tuple[str, bytes | LongLine]]:
        """Each file's chunks of whole lines (and long lines), tagged with the file, one file open at a time."""
        from airflow_provider_video_actions import gcs

        for uri, handle in self._opened(client, uris):
            for chunk in gcs.iter_chunks(handle, self.decoder.chunk_bytes, max_line_bytes=self.max_line_bytes):
                yield uri, chunk

    def _opened(self, client: Any, uris: list[str]) -> Iterator[tuple[str, Any]]:
        """Each file open for reading in turn; gs:// objects read ahead by concurrent ranged GETs."""
        from airflow_provider_video_actions import gcs, ranged_read

        if uris and all(uri.startswith("gs://") for uri in uris):
            yield from ranged_read.streams(client, uris)
            return
        for uri in uris:
            with gcs.open_read(client, uri) as handle:
                yield uri, handle

    def _parse_chunk(
        self,
        uri: str,
        first_line: int,
        chunk: bytes,
        keep: PredictionFilter,
        stats: ParseStats,
        records: Any,
        errors: Any,
    ) -> int:
        """Decode a chunk of one output file's lines exactly, sending kept records and every error to their sinks.

        Returns the chunk's line count.
        """
        decoded = self.decoder.decode(chunk, uri, first_line)
        stats.add_lines(decoded.lines - decoded.blank_lines)
        self._add_errors(uri, decoded.errors, stats, errors)
        columns = keep.columns(decoded)
        stats.add_records(columns, decoded)
        records.write(columns)
        return decoded.lines

    def _add_errors(self, uri: str, found: list[ErrorRecord], stats: ParseStats, errors: Any) -> None:
        """Count error records and send them to their sink, failing past ``max_malformed_lines``."""
        for error in found:
            stats.add_error(error)
            if self.max_malformed_lines is not None and stats.malformed_lines > self.max_malformed_lines:
                raise AirflowException(
                    f"More than max_malformed_lines={self.max_malformed_lines} output lines could not be read; "
                    f"the last at {uri} line {error.line}: {shorten(error.message)}"
                )
        if found:
            errors.write(error_columns(found))

    def _add_alias_outlet(self) -> None:
        """Declare ``asset_alias`` as an outlet; it needs a destination, since XCom is not an asset."""
        if self.asset_alias is None:
            return
        if self.destination is None:
            raise VideoActionsValueError(
                f"{type(self).__name__} {self.task_id}: asset_alias needs a destination file; XCom is not an asset."
            )
        from airflow.providers.common.compat.sdk import AssetAlias

        self.outlets = [*self.outlets, AssetAlias(self.asset_alias)]

    def _emit_asset_event(self, context: Any, result: dict[str, Any]) -> None:
        """Emit the written destination through ``asset_alias``, with the parse counts as the event's extra."""
        if self.asset_alias is None:
            return
        from airflow_provider_video_actions.lineage import emit_asset_event

        extra = {key: result[key] for key in ("rows", "videos", "errors", "label_counts")}
        emit_asset_event(context, self.asset_alias, self.destination, extra)
        self.log.info("Asset event: %s through alias %r %s", self.destination, self.asset_alias, extra)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """OpenLineage: the job's output directory in; the parsed destination out (nothing for XCom)."""
        from airflow_provider_video_actions.lineage import parse_lineage

        return parse_lineage(self._source(), self.destination)
