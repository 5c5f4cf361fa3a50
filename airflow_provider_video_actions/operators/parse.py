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
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, BaseOperator

from airflow_provider_video_actions import shards
from airflow_provider_video_actions.families.dispatch import family_for, output_family
from airflow_provider_video_actions.families.gemini.family import GEMINI
from airflow_provider_video_actions.families.gemini.request import check_action_labels
from airflow_provider_video_actions.job import (
    FAILURE_STATES,
    WAITING_STATES,
    VideoActionsValueError,
    job_from_xcom,
    split_gcs_uri,
)
from airflow_provider_video_actions.parse.chunks import DEFAULT_MAX_LINE_BYTES
from airflow_provider_video_actions.parse.count import shorten
from airflow_provider_video_actions.parse.decode import OutputDecoder
from airflow_provider_video_actions.parse.keep import PredictionFilter
from airflow_provider_video_actions.parse.ranged_read import CONCURRENCY, ReadAhead
from airflow_provider_video_actions.parse.run import DEFAULT_PROGRESS_INTERVAL, Parse, ParseProgress, counted
from airflow_provider_video_actions.parse.sinks import Sinks
from airflow_provider_video_actions.parse.source import output_files
from airflow_provider_video_actions.paths import PathSegmentFilterMixin
from airflow_provider_video_actions.ui.digest import MomentDigest, digest_uri, publish
from airflow_provider_video_actions.validators import check_fraction, check_positive, is_template
from airflow_provider_video_actions.writers import WRITER_FORMATS

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_video_actions.hooks.storage import VideoActionStorageHook

#: Default XCom budget: the metadata database is no place for bulk data.
DEFAULT_MAX_XCOM_BYTES = 1024 * 1024


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
    def hook(self) -> VideoActionStorageHook:
        """The GCS hook: no Vertex AI client is imported to read files (imported here so DAG parsing stays light)."""
        from airflow_provider_video_actions.hooks.storage import VideoActionStorageHook

        return VideoActionStorageHook(gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain)

    def _source(self) -> str:
        """The rendered output directory; a job that ended in a failure state only with ``allow_partial``."""
        if self.job is not None:
            self.job = job_from_xcom(self.job, "job")
            if not self.job.get("output_directory"):
                raise VideoActionsValueError(
                    "job must be the submit operator's result, a dict with 'output_directory', or the Google "
                    "provider's CreateBatchPredictionJobOperator result with its GCS output directory; "
                    f"got {type(self.job).__name__}: {str(self.job)[:200]!r}."
                )
            if self.job.get("state") in WAITING_STATES:
                raise VideoActionsValueError(
                    f"job {self.job.get('name')} is {self.job['state']}, not finished: its output is not whole yet. "
                    "Wait for it first (VideoActionBatchPredictionSensor with job_name=the job's XCom)."
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

        predictions, errors, sizes = output_files(client, source)  # a VideoActionsValueError fails, no retry
        if not predictions and not errors:
            raise AirflowException(
                f"No predictions_<n>.jsonl or errors_<n>.jsonl files in {source}: is the job finished, and is "
                "this its output_directory (job.output_info.gcs_output_directory)?"
            )
        return predictions, errors, sizes


def _label_filter(labels: Any) -> frozenset[str] | None:
    """``labels`` as the set of labels to keep (None: all), or raise: an empty list, a dict or a label with
    surrounding spaces would silently keep nothing, or the wrong thing."""
    if labels is None:
        return None
    if isinstance(labels, (str, Mapping)) or not isinstance(labels, (list, tuple, set, frozenset)):
        raise VideoActionsValueError(f"labels must be a list of label names, got {labels!r:.100}.")
    if not labels:
        raise VideoActionsValueError("labels is empty, which would keep no prediction: give labels, or None for all.")
    if bad := [label for label in labels if not isinstance(label, str) or not label or label != label.strip()]:
        raise VideoActionsValueError(
            f"labels must be label names without surrounding spaces, got {bad[0]!r:.100} in {labels!r:.100}."
        )
    return frozenset(labels)


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
    :param gcs_read_concurrency: ranged GETs of 4 MiB a ``gs://`` parse keeps in flight ahead of the parse (2, at
        most 32); it holds about ``(gcs_read_concurrency + 2) * 4 MiB``. Raise it where each request waits long for its
        first byte (a worker far from its bucket); see docs/parse.md for what 1 to 4 measured.
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
        gcs_read_concurrency: int = CONCURRENCY,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.read_ahead = ReadAhead(gcs_read_concurrency)
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
        if not is_template(labels):
            _label_filter(labels)
        self.max_xcom_bytes = check_positive(max_xcom_bytes, "max_xcom_bytes", integer=True)
        if max_malformed_lines is not None and (
            isinstance(max_malformed_lines, bool) or not isinstance(max_malformed_lines, int) or max_malformed_lines < 0
        ):
            raise VideoActionsValueError(
                f"max_malformed_lines must be None or an integer >= 0, got {max_malformed_lines!r}."
            )
        self.max_malformed_lines = max_malformed_lines
        if model_family is not None:
            family_for(None, model_family)
        self.model_family = model_family
        self.max_line_bytes = check_positive(max_line_bytes, "max_line_bytes", integer=True)
        self.allow_other_schemes = allow_other_schemes
        if action_labels is not None:
            check_action_labels(action_labels)
        self.action_labels, self.allow_partial = action_labels, allow_partial
        self.gcp_conn_id, self.impersonation_chain = gcp_conn_id, impersonation_chain
        for param, uri in (("output_directory", output_directory), ("destination", destination)):
            # A literal's scheme fails at DAG parse time; templates, and gs:// buckets, are checked in execute.
            if isinstance(uri, str) and "{{" not in uri and not uri.startswith("gs://"):
                self._location(uri, param, want_object=param == "destination")
        if (part := shards.literal_part(destination, shard, self.max_shards)) is not None:
            destination_format(part)
        if asset_alias is not None and (not isinstance(asset_alias, str) or not asset_alias.strip()):
            raise VideoActionsValueError(f"asset_alias must be an AssetAlias name, not empty; got {asset_alias!r:.90}.")
        self.asset_alias = asset_alias
        self._add_alias_outlet()

    def _check_destination(self, destination: str | None, source: str) -> str | None:
        """The destination's format (None for XCom); a destination inside the job's output directory is refused.

        There, the next try would read it back as output, or overwrite one of the job's own files.
        """
        if destination is None:
            return None
        fmt = destination_format(self._location(destination, "destination", want_object=True))
        from airflow_provider_video_actions import gcs

        if gcs.same_or_inside(destination, source):  # its errors file is beside it: inside too, or not
            raise VideoActionsValueError(
                f"destination {destination!r} is inside the job's output directory {source!r}, where the "
                "next try would read it back as output (or it would overwrite the job's own files): choose a "
                "destination outside that directory."
            )
        return fmt

    def _filter(self) -> PredictionFilter:
        return PredictionFilter(self.min_confidence, _label_filter(self.labels), self.top_k)

    def execute(self, context: Any) -> dict[str, Any]:
        """Stream the output files through the filter into XCom or the destination."""
        # Rendered parameters are checked first: a VideoActionsValueError fails the task without a retry.
        destination, shard = shards.plan(self.destination, self.shard, self.max_shards)
        source, keep = self._source(), self._filter()
        fmt = self._check_destination(destination, source)
        client = self._client_for(source, destination)
        predictions, errors, sizes = self._output_files(client, source)
        family = output_family(self.model_family, self.job, predictions)
        if self.action_labels is not None and family is not GEMINI:
            raise VideoActionsValueError(
                f"action_labels holds Gemini answers to a label set, but this is {family.name} output, whose "
                "labels the model fixed at training: remove action_labels (labels= keeps some labels)."
            )
        decoder = OutputDecoder.for_job(family, self.job, self.action_labels, self._open_instances)
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
        moments = MomentDigest()  # what the UI's Moments tab reads: fed by the sinks as they are written
        parse = Parse(
            client,
            decoder,
            keep,
            Sinks(client, destination, fmt, self.max_xcom_bytes, tap=moments.tap),
            ParseProgress(self.log, self.progress_interval, sum(sizes[uri] for uri in files), len(files)),
            max_line_bytes=self.max_line_bytes,
            max_malformed_lines=self.max_malformed_lines,
            read_ahead=self.read_ahead,
        )
        result = parse.run(files)
        if shard is not None:
            result["shard"] = shards.shard_summary(shard, destination, digest)
        self._publish_digest(
            context, moments, client, None if fmt is None else digest_uri(destination), result["videos"]
        )
        self.log.info(
            "Parsed %s from %s; %s",
            counted(result["rows"], "moment"),
            counted(result["videos"], "video"),
            counted(result["errors"], "error"),
        )
        if result["errors"]:
            self.log.warning("Error samples: %s", result["error_samples"])
        self._emit_asset_event(context, destination, result)
        return result

    def _publish_digest(self, context: Any, moments: MomentDigest, client: Any, uri: str | None, videos: int) -> None:
        """The per-video digest the UI's Moments tab reads: beside the destination, or in XCom with the records."""
        conn = {"gcp_conn_id": self.gcp_conn_id, "impersonation_chain": self.impersonation_chain}
        where = publish(context, moments.digest(videos), uri=uri, client=client, **conn)
        self.log.info("Moment digest for the Moments tab: %s", where)

    def _open_instances(self, uri: str) -> Any:
        """Open the job's instances file (a family may join answers to instances through it)."""
        from airflow_provider_video_actions import gcs

        return gcs.open_read(self._client_for(uri), uri)

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

    def _emit_asset_event(self, context: Any, destination: str | None, result: dict[str, Any]) -> None:
        """Emit the written destination through ``asset_alias``, with the parse counts as the event's extra."""
        if self.asset_alias is None:
            return
        from airflow_provider_video_actions.lineage import emit_asset_event

        extra = {key: result[key] for key in ("rows", "videos", "errors", "label_counts")}
        emit_asset_event(context, self.asset_alias, destination, extra)
        self.log.info("Asset event: %s through alias %r %s", destination, self.asset_alias, extra)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """OpenLineage: the job's output directory in; the parsed destination out (nothing for XCom)."""
        from airflow_provider_video_actions.lineage import parse_lineage

        return parse_lineage(self._source(), shards.plan(self.destination, self.shard, self.max_shards)[0])
