"""Submit a video action recognition batch prediction job and wait for it.

The operator turns its input (a list of videos, a GCS prefix of videos, or ready JSONL files)
into an instances file, creates one job per task instance, and waits for it: deferred in the
triggerer (``deferrable=True``, or ``[operators] default_deferrable``), or polling in the worker.
A retry of the same task instance re-attaches to a live or succeeded job it created before instead
of paying for a second one, but only when that job provably is this task instance's and was asked
for the same work (task label, request fingerprint, and the job resource's model, inputs and output
prefix). ``timeout`` bounds the whole task, submission retries included. It returns the job summary
(:func:`airflow_provider_video_actions.job.job_summary`) on every path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    BaseOperator,
    conf,
)

from airflow_provider_video_actions.compat import ResumableJobMixin
from airflow_provider_video_actions.families.base import FamilyRequest, ModelFamily, model_text
from airflow_provider_video_actions.families.dispatch import check_region_of_any_family, family_for
from airflow_provider_video_actions.families.gemini.family import GLOBAL_REGION
from airflow_provider_video_actions.job import (
    ACTIVE_STATES,
    PROVIDER_LABEL,
    PROVIDER_LABEL_VALUE,
    REQUEST_LABEL,
    SUCCESS_STATES,
    TASK_LABEL,
    TERMINAL_STATES,
    JobFailedError,
    JobSpec,
    MachineResources,
    VideoActionsValueError,
    check_labels,
    check_no_control_characters,
    check_project,
    default_display_name,
    failure_for,
    job_outcome,
    job_summary,
    split_gcs_uri,
    state_name,
    task_label_value,
)
from airflow_provider_video_actions.links import JOB_NAME_XCOM_KEY, VideoActionBatchPredictionJobLink
from airflow_provider_video_actions.paths import PathSegmentFilterMixin
from airflow_provider_video_actions.regions import check_listed_region
from airflow_provider_video_actions.validators import (
    DEFAULT_TIMEOUT,
    MIN_POLL_INTERVAL,
    check_count,
    check_fraction,
    check_int32,
    check_name_text,
    check_poll_interval,
    check_positive,
    check_timeout,
    is_template,
)
from airflow_provider_video_actions.window import (
    DATA_INTERVAL,
    CreationWindow,
    NoDataIntervalError,
    check_window_value,
    creation_window,
)

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from google.cloud.aiplatform_v1 import BatchPredictionJob

    from airflow_provider_video_actions.hooks.batch_prediction import VideoActionBatchPredictionHook
    from airflow_provider_video_actions.triggers.wait import WaitSpec

#: XCom key of a failed job's summary (its ``output_directory`` holds the rows it completed).
FAILED_JOB_XCOM_KEY = "failed_job"

#: Characters that make a pattern of a glob, refused in ``videos_prefix`` (a prefix is literal).
GLOB_CHARACTERS = "*?["

#: What ``get_job_status`` answers for a stored job that is not this task's (asked for other work):
#: neither active nor succeeded, so the resumable flow submits a new job.
NOT_THIS_TASKS_JOB = "NOT_THIS_TASKS_JOB"


def _machine_resources(
    machine_type: Any, accelerator_type: Any, accelerator_count: Any, starting: Any, maximum: Any
) -> MachineResources:
    """Dedicated resources, checked: names are text, counts whole int32 numbers, accelerators need a machine type."""
    check_name_text(machine_type, "machine_type")
    check_name_text(accelerator_type, "accelerator_type")  # a known type is checked at run (it imports the protos)
    count = check_int32(check_count(accelerator_count, "accelerator_count"), "accelerator_count")
    starting = check_int32(_optional_positive(starting, "starting_replica_count"), "starting_replica_count")
    maximum = check_int32(_optional_positive(maximum, "max_replica_count"), "max_replica_count")
    if (accelerator_type or count) and not machine_type:
        raise VideoActionsValueError("accelerator_type and accelerator_count need a machine_type.")
    if starting and maximum and maximum < starting:
        raise VideoActionsValueError(f"max_replica_count={maximum} is below starting_replica_count={starting}.")
    return MachineResources(machine_type, accelerator_type, count, starting, maximum)


def _optional_positive(value: Any, param: str) -> int | None:
    """None (the service's own limit) or a positive integer."""
    return None if value is None else check_positive(value, param, integer=True)


def _check_accelerator(accelerator_type: str | None) -> None:
    """The accelerator must be one Vertex AI knows (``NVIDIA_TESLA_T4``...): checked against the pinned protos."""
    if accelerator_type is None:
        return
    from google.cloud.aiplatform_v1 import AcceleratorType

    known = [name for name in AcceleratorType.__members__ if name != "ACCELERATOR_TYPE_UNSPECIFIED"]
    if accelerator_type not in known:
        raise VideoActionsValueError(f"accelerator_type {accelerator_type!r} is not one of {', '.join(known)}.")


def _check_videos_prefix(prefix: Any) -> None:
    """A literal gs:// prefix: glob characters would be matched literally by GCS's prefix listing, so every run would
    select nothing; they are refused instead."""
    split_gcs_uri(prefix, "videos_prefix", want_object=False)
    if glob := sorted(set(prefix) & set(GLOB_CHARACTERS)):
        raise VideoActionsValueError(
            f"videos_prefix {prefix!r} holds {' '.join(glob)}: a prefix is matched literally (GCS lists the names that "
            "begin with it), so no video would be selected. Give the folder the videos are in (gs://bucket/folder/), "
            "or list them with videos=."
        )


def _refuse_missing_sources(missing: list[str]) -> None:
    """Refuse ``gcs_source`` files that do not exist."""
    raise VideoActionsValueError(f"gcs_source {', '.join(missing)} does not exist; check the URI.")


def _check_display_name(name: Any) -> None:
    """A display name is text without control characters (Vertex AI keeps at most 128 characters)."""
    if not isinstance(name, str):
        raise VideoActionsValueError(f"job_display_name must be text, got {type(name).__name__}: {name!r}.")
    check_no_control_characters(name, "job_display_name")


class VideoActionBatchPredictionOperator(PathSegmentFilterMixin, ResumableJobMixin, BaseOperator):
    """Run a Vertex AI video action recognition batch prediction job and return its summary.

    :param project_id: Google Cloud project of the job.
    :param region: Vertex AI region of the model, e.g. ``us-central1``.
    :param model: model ID (a string, or a positive int as native rendering makes of one), or full resource name
        ``projects/P/locations/L/models/ID[@version]``; or a
        Gemini model, ``gemini-<version>``, ``publishers/google/models/gemini-<version>`` or
        ``projects/P/locations/L/publishers/google/models/gemini-<version>``.
    :param model_family: ``"action_recognition"`` or ``"gemini"``; None (default) tells the family by the
        model name. Give ``"gemini"`` for a tuned Gemini model (``projects/P/locations/L/models/ID``).
    :param gcs_destination_prefix: ``gs://`` prefix under which the job writes its output directory
        (the instances file is written under ``<prefix>/instances/``).
    :param videos: gs:// URIs, or dicts with ``content`` and optional ``mime_type``,
        ``time_segment_start`` and ``time_segment_end`` (seconds; no end means to the end).
    :param videos_prefix: a ``gs://`` prefix listed for the family's video files (action recognition:
        ``.mp4``, ``.avi``, ``.mov``; Gemini: ``.mp4``, ``.mov``, ``.webm``, ``.mpeg``, ``.mpg``, ``.wmv``,
        ``.flv``, ``.3gp``...).
    :param videos_created_in: with ``videos_prefix``, only the videos GCS created (``timeCreated``) in
        this half-open window ``[start, end)``: ``"data_interval"`` (the run's data interval; a run
        without one, triggered without a logical date, skips saying so, with no job) or a
        ``(start, end)`` pair of aware datetimes or ISO 8601 strings, each templated. An empty window
        skips the task (and its parse downstream) instead of failing.
    :param gcs_source: a ready instances JSONL URI, or a list of them. Give exactly one of the three.
    :param confidence_threshold: the model drops moments below this confidence (0..1). Gemini has no
        model parameters: the prompt asks for it and the parse operator enforces it.
    :param max_predictions: action recognition models return at most this many moments per frame (the
        model parameter counts per frame, not per instance); Gemini: at most this many moments per
        instance, asked in the prompt and the response schema and enforced by the parse operator.
    :param action_labels: Gemini models only, and required for them: the labels it may answer, as a list
        of names or a dict of name -> one-line description (sent in the prompt and as the schema's enum).
    :param prompt: Gemini models only: extra instructions appended to the provider's prompt.
    :param fps: Gemini models only: frames per second sampled from the video, above 0 and at most 24
        (Google's default is 1; video tokens grow in proportion).
    :param media_resolution: Gemini models only: ``"low"``, ``"medium"`` or ``"high"`` (tokens per frame).
    :param max_requests_per_job: Gemini models only: refuse more request lines than this before creating the
        job (default and most: Google's 200,000).
    :param max_input_bytes: Gemini models only: refuse a request file larger than this before creating the
        job (default and most: Google's 1 GB).
    :param job_display_name: defaults to ``<dag>.<task>.<run>``.
    :param labels: extra job labels (Google label rules).
    :param poll_interval: seconds between list calls while waiting (at least ``min_poll_interval``).
    :param min_poll_interval: the floor of ``poll_interval`` (default 1 s; lower it only against the emulator).
    :param timeout: seconds (or timedelta) the whole task may take, submission retries and the wait included,
        before the job is cancelled and the task fails (default 72 h; must be finite).
    :param max_failed_ratio: largest share of failed instances that still counts as success.
    :param allow_all_failed: accept a finished job where no instance succeeded and some failed (default False:
        such a job fails the task, naming a few failed videos, since it is almost always a wrong input path).
    :param check_videos_exist: before any job is created, check that every video in ``videos`` exists (one listing
        per folder holding many of them, else one GET per video) and refuse the task naming the missing ones (default
        True). False sends them as given: Vertex AI then reports each missing one as a failed instance.
    :param allow_unlisted_region: accept a region missing from Vertex AI's published list (for regions Google
        opened after this release); by default such a region is refused before anything is called.
    :param cancel_on_kill: cancel the job when the task is killed or times out (default True).
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param machine_type: machine type for models that need dedicated resources (custom models),
        with ``accelerator_type``, ``accelerator_count``, ``starting_replica_count`` and
        ``max_replica_count``.
    :param service_account: service account the job runs as (not for Gemini: Google refuses it).
    :param encryption_key: Cloud KMS key name for the job's outputs (not for Gemini: Google refuses it).
    """

    template_fields: Sequence[str] = (
        "project_id",
        "region",
        "model",
        "gcs_destination_prefix",
        "videos",
        "videos_prefix",
        "videos_created_in",
        "gcs_source",
        "job_display_name",
        "labels",
        "impersonation_chain",
        "prompt",
        "model_family",
    )
    template_fields_renderers = {"videos": "json", "labels": "json"}
    #: Key of the job name in the task state store (Airflow >= 3.3); renaming it breaks in-flight retries.
    external_id_key = "batch_prediction_job"
    operator_extra_links = (VideoActionBatchPredictionJobLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        project_id: str,
        region: str,
        model: str | int,
        gcs_destination_prefix: str,
        videos: Sequence[str | dict[str, Any]] | None = None,
        videos_prefix: str | None = None,
        videos_created_in: str | Sequence[Any] | None = None,
        gcs_source: str | Sequence[str] | None = None,
        confidence_threshold: float = 0.0,
        max_predictions: int = 50,
        job_display_name: str | None = None,
        labels: dict[str, str] | None = None,
        poll_interval: float = 10.0,
        min_poll_interval: float = MIN_POLL_INTERVAL,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        max_failed_ratio: float = 1.0,
        allow_all_failed: bool = False,
        allow_unlisted_region: bool = False,
        check_videos_exist: bool = True,
        cancel_on_kill: bool = True,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        machine_type: str | None = None,
        accelerator_type: str | None = None,
        accelerator_count: int = 0,
        starting_replica_count: int | None = None,
        max_replica_count: int | None = None,
        service_account: str | None = None,
        encryption_key: str | None = None,
        action_labels: Sequence[str] | dict[str, str] | None = None,
        prompt: str | None = None,
        model_family: str | None = None,
        fps: float | None = None,
        media_resolution: str | None = None,
        max_requests_per_job: int | None = None,
        max_input_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.project_id, self.region, self.model = project_id, region, model_text(model)
        self.gcs_destination_prefix = gcs_destination_prefix
        self.videos, self.videos_prefix, self.gcs_source = videos, videos_prefix, gcs_source
        self.videos_created_in = videos_created_in
        self._window: CreationWindow | None = None
        self.confidence_threshold = check_fraction(confidence_threshold, "confidence_threshold")
        self.max_predictions = check_positive(max_predictions, "max_predictions", integer=True)
        self.job_display_name, self.labels = job_display_name, labels
        self.min_poll_interval = float(check_positive(min_poll_interval, "min_poll_interval"))
        self.poll_interval = check_poll_interval(poll_interval, "poll_interval", self.min_poll_interval)
        self.wait_timeout = check_timeout(timeout)
        self.max_failed_ratio = check_fraction(max_failed_ratio, "max_failed_ratio")
        self.allow_all_failed, self.allow_unlisted_region = allow_all_failed, allow_unlisted_region
        self.check_videos_exist = check_videos_exist
        self.cancel_on_kill = cancel_on_kill
        self.gcp_conn_id, self.impersonation_chain = gcp_conn_id, impersonation_chain
        self.deferrable = deferrable
        self.machine_resources = _machine_resources(
            machine_type, accelerator_type, accelerator_count, starting_replica_count, max_replica_count
        )
        self.service_account = check_name_text(service_account, "service_account")
        self.encryption_key = check_name_text(encryption_key, "encryption_key")
        self.action_labels, self.prompt, self.model_family = action_labels, prompt, model_family
        self.fps, self.media_resolution = fps, media_resolution
        self.max_requests_per_job = _optional_positive(max_requests_per_job, "max_requests_per_job")
        self.max_input_bytes = _optional_positive(max_input_bytes, "max_input_bytes")
        self._job_name: str | None = None
        #: The job this try created (not re-attached to), and the re-attached job it replaced after a cancel.
        self._created_job: str | None = None
        self._replaced_job: str | None = None
        self._result: dict[str, Any] | None = None
        self._job_spec: JobSpec | None = None
        #: The instances file this try writes (its bytes and line count), built once: its digest, size and upload.
        self._instances_file_data: tuple[bytes, int] | None = None
        self._deadline = 0.0
        given = [name for name in ("videos", "videos_prefix", "gcs_source") if getattr(self, name) is not None]
        if len(given) != 1:
            raise VideoActionsValueError(
                f"{type(self).__name__} {self.task_id}: give exactly one of videos, videos_prefix or gcs_source; "
                f"got {', '.join(given) or 'none'}."
            )
        if videos_created_in is not None and videos_prefix is None:
            raise VideoActionsValueError(
                f"{type(self).__name__} {self.task_id}: videos_created_in selects among the videos under "
                "videos_prefix; give videos_prefix, or drop videos_created_in."
            )
        self._check_rendered(literal_only=True)

    # -- validation -----------------------------------------------------------------------

    def _check_rendered(self, *, literal_only: bool) -> None:
        """Validate the templated parameters; at construction only those that are not templates."""

        def ready(value: Any) -> bool:  # a required parameter: None is refused by its check
            return not (literal_only and is_template(value))

        def check(value: Any) -> bool:  # an optional one: None is its default
            return value is not None and ready(value)

        if ready(self.project_id):
            self.project_id = check_project(self.project_id)
        if self.model is None:
            raise VideoActionsValueError("model is required: a model ID, resource name or Gemini model name.")
        known = ready(self.model) and not (literal_only and is_template(self.model_family))
        family = self._family() if known else None
        if ready(self.region) and family is not None:
            family.check_region(self.region)
        elif ready(self.region):
            check_region_of_any_family(self.region)
        if ready(self.region):
            check_listed_region(self.region, allow_unlisted=self.allow_unlisted_region, also=frozenset({GLOBAL_REGION}))
        if family is not None and ready(self.region) and ready(self.project_id):
            family.resource_name(self.model, self.project_id, self.region)
        if check(self.prompt) and not isinstance(self.prompt, str):
            raise VideoActionsValueError(f"prompt must be text added to the Gemini prompt, got {self.prompt!r:.100}.")
        if family is not None:
            family.check_request(self._family_request())
        if ready(self.gcs_destination_prefix):
            split_gcs_uri(self.gcs_destination_prefix, "gcs_destination_prefix", want_object=False)
            # The instances file goes under the prefix: its whole name must fit GCS's limits too.
            split_gcs_uri(
                self._instances_file("0" * 32, "0" * 64), "gcs_destination_prefix (with /instances/<hash>.jsonl)"
            )
        if literal_only and family is not None and check(self.videos) and not any(map(is_template, self.videos)):
            family.instances(self.videos)  # rendered videos are checked once, as their request lines are built
        if check(self.videos_prefix):
            _check_videos_prefix(self.videos_prefix)
        if check(self.job_display_name):
            _check_display_name(self.job_display_name)
        if check(self.videos_created_in):
            self._check_window(literal_only)
        if check(self.gcs_source):
            self._check_gcs_source(literal_only)
        if check(self.labels):
            check_labels(self.labels)
        if not literal_only:
            _check_accelerator(self.machine_resources.accelerator_type)

    def _check_window(self, literal_only: bool) -> None:
        """``videos_created_in``'s shape, and its bounds once they are literals (the data interval is read later)."""
        check_window_value(self.videos_created_in)
        if self.videos_created_in != DATA_INTERVAL and not (
            literal_only and any(is_template(bound) for bound in self.videos_created_in)
        ):
            creation_window(self.videos_created_in)

    def _check_gcs_source(self, literal_only: bool) -> None:
        """A non-empty list of gs:// instances files (templates are checked once rendered)."""
        if not isinstance(self.gcs_source, (str, list, tuple)) and not (literal_only and is_template(self.gcs_source)):
            raise VideoActionsValueError(
                f"gcs_source must be an instances JSONL URI or a list of them, got {self.gcs_source!r:.100}."
            )
        if not self._gcs_sources():
            raise VideoActionsValueError("gcs_source is empty: give an instances JSONL URI or a list of them.")
        for uri in self._gcs_sources():
            if not (literal_only and is_template(uri)):
                split_gcs_uri(uri, "gcs_source")

    def _family(self) -> ModelFamily:
        """The model's family: ``model_family`` if given, else told by the model name."""
        return family_for(self.model, self.model_family)

    def _family_request(self) -> FamilyRequest:
        """What this task asks of the model, for the family to check, send and record."""
        return FamilyRequest(
            confidence_threshold=self.confidence_threshold,
            max_predictions=self.max_predictions,
            action_labels=self.action_labels,
            prompt=self.prompt,
            fps=self.fps,
            media_resolution=self.media_resolution,
            machine_type=self.machine_resources.machine_type,
            service_account=self.service_account,
            encryption_key=self.encryption_key,
            max_requests_per_job=self.max_requests_per_job,
            max_input_bytes=self.max_input_bytes,
        )

    # -- execution ------------------------------------------------------------------------

    @cached_property
    def hook(self) -> VideoActionBatchPredictionHook:
        """The job service and GCS hook (imported here so DAG parsing stays light)."""
        from airflow_provider_video_actions.hooks.batch_prediction import VideoActionBatchPredictionHook

        return VideoActionBatchPredictionHook(
            gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain
        )

    def execute(self, context: Any) -> dict[str, Any]:
        """Check the rendered parameters, then submit (or re-attach to) this task instance's job and wait."""
        self._deadline = time.time() + self.wait_timeout
        # The console link reads this key at the end of every run; before a job exists it must find "" rather than
        # nothing, which Airflow 3 logs as an "XCom not found" error on every failed try.
        context["ti"].xcom_push(key=JOB_NAME_XCOM_KEY, value="")
        return self._submit_and_wait(context)

    def _submit_and_wait(self, context: Any) -> dict[str, Any]:
        """The body of ``execute`` within the deadline already set (a replacement job keeps the task's deadline).

        A bad rendered parameter raises a :class:`VideoActionsValueError`: it fails the task without a retry.
        """
        self.model = model_text(self.model)
        self._check_rendered(literal_only=False)
        self._check_buckets()
        if self.videos_created_in is not None:
            self._window = self._creation_window(context)
        if self.videos is not None or self.videos_created_in is not None:
            self._instances_data()  # checks the videos (or lists the window: an empty one skips) before any lookup
        if self.videos is not None and self.check_videos_exist:
            self._check_videos_exist()
        if self.gcs_source is not None:
            self._check_gcs_source_limits()
        return self.execute_resumable(context)

    def _check_buckets(self) -> None:
        """The destination's bucket, and ``videos_prefix``'s, exist: refused now, not as a job error or a retried
        ``NotFound``. Credentials that may not read bucket metadata skip the check."""
        from airflow_provider_video_actions import gcs

        for param in ("gcs_destination_prefix", "videos_prefix"):
            if (uri := getattr(self, param)) is not None:
                bucket = split_gcs_uri(uri, param, want_object=False)[0]
                if gcs.bucket_exists(self.hook.storage_client, bucket) is False:
                    raise VideoActionsValueError(
                        f"{param} {uri}: bucket {bucket!r} does not exist (or is in another project). Create it, "
                        "or fix the bucket name."
                    )

    def _check_videos_exist(self) -> None:
        """Every listed video exists, checked before any job is created (a folder listing or a few GETs each)."""
        from google.api_core.exceptions import Forbidden

        from airflow_provider_video_actions import gcs

        uris = {instance.content for instance in self._family().instances(self.videos)}
        try:
            missing = gcs.missing_objects(self.hook.storage_client, uris)
        except Forbidden as exc:
            self.log.warning("Cannot check that the videos exist with these credentials (%s); not checked", exc)
            return
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise VideoActionsValueError(
                f"videos: {len(missing)} of {len(uris)} videos do not exist: {shown}. Fix their paths or remove them."
            )

    def _check_gcs_source_limits(self) -> None:
        """The given instances files against the family's per-job limits, before any job exists: sizes from object
        metadata, lines counted streaming and only up to the limit."""
        from airflow_provider_video_actions import gcs

        family, request = self._family(), self._family_request()
        if (limits := family.input_limits(request)) is None:
            return
        sizes = [gcs.object_size(self.hook.storage_client, uri) for uri in self._gcs_sources()]
        if missing := [uri for uri, size in zip(self._gcs_sources(), sizes, strict=True) if size is None]:
            _refuse_missing_sources(missing)
        try:
            family.check_input(0, max(sizes), request)  # the sizes first: a file over the limit is not read
            lines = 0
            for uri in self._gcs_sources():
                lines += gcs.count_lines(self.hook.storage_client, uri, limits[0] - lines)
                if lines > limits[0]:
                    break
            family.check_input(lines, max(sizes), request)
        except VideoActionsValueError as exc:
            raise VideoActionsValueError(f"gcs_source {', '.join(self._gcs_sources())}: {exc}") from None

    def _creation_window(self, context: Any) -> CreationWindow:
        """The rendered window; a run without a data interval (a manual run) skips: any guess would overlap."""
        try:
            return creation_window(self.videos_created_in, context)
        except NoDataIntervalError as exc:
            self.log.warning("%s", exc)
            raise AirflowSkipException(str(exc)) from exc

    def _remaining(self) -> float:
        """Seconds left before the task's ``timeout`` (at least 1, so a last call can still be made)."""
        return max(1.0, self._deadline - time.time())

    # -- ResumableJobMixin: on Airflow >= 3.3 a retry reads the stored job name (one GET) ----------

    def submit_job(self, context: Any) -> str:
        """Re-attach to this task instance's live or succeeded job for the same request, or create one."""
        from airflow_provider_video_actions.hooks.batch_prediction import transient_retry

        spec = self._spec(context)
        # A create whose answer was lost may still have made the job: each attempt lists first.
        retry = transient_retry(f"Submitting {spec.display_name}", self.log, self._remaining())
        job = self._api("Submitting the batch prediction job", lambda: retry(self._find_or_create)(spec))
        return job.name

    def get_job_status(self, external_id: Any, context: Any) -> str:
        """The stored job's state name, or :data:`NOT_THIS_TASKS_JOB` when it was asked for other work."""
        job = self._api(f"Reading {external_id}", lambda: self.hook.get_job(external_id, self._remaining()))
        if why := self._spec(context).mismatch(job):
            self.log.info("Not re-attaching to %s, stored by an earlier try: %s", external_id, why)
            return NOT_THIS_TASKS_JOB
        return state_name(job)

    def is_job_active(self, status: str) -> bool:
        """Queued, running, paused or updating: worth waiting on rather than resubmitting (CANCELLING is not)."""
        return status in ACTIVE_STATES

    def is_job_succeeded(self, status: str) -> bool:
        """Finished with results (partial success is judged against ``max_failed_ratio`` afterwards)."""
        return status in SUCCESS_STATES

    def poll_until_complete(self, external_id: Any, context: Any) -> dict[str, Any]:
        """Wait for the job (deferred in the triggerer, or polling here) and return its summary.

        Returning it matters: the mixin returns this method's value when it re-attaches to a stored job.
        """
        self._job_name = external_id
        context["ti"].xcom_push(key=JOB_NAME_XCOM_KEY, value=external_id)
        from airflow_provider_video_actions.triggers.wait import VideoActionBatchPredictionTrigger

        trigger = VideoActionBatchPredictionTrigger(**self._wait_spec(external_id).kwargs())
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete")
        self._result = self.execute_complete(context, trigger.wait_in_worker())
        return self._result

    def get_job_result(self, external_id: Any, context: Any) -> dict[str, Any]:
        """The summary from the wait, or, for a job that succeeded on an earlier try, from one read."""
        if self._result is None:
            context["ti"].xcom_push(key=JOB_NAME_XCOM_KEY, value=external_id)
            job = self._api(f"Reading {external_id}", lambda: self.hook.get_job(external_id, self._remaining()))
            self._result = self.execute_complete(context, {"status": "done", "job": job_summary(job)})
        return self._result

    # -- submission ------------------------------------------------------------------------

    def _api(self, what: str, call: Any) -> Any:
        """Run an API call, turning a permanent (or retried-out) Google API error into a clear failure.

        A refused request (INVALID_ARGUMENT, NOT_FOUND: an unknown model or region) and an endpoint whose name
        does not resolve (a misspelled region) fail without a retry: the same parameters would fail again.
        """
        from google.api_core.exceptions import GoogleAPICallError, InvalidArgument, NotFound, RetryError

        from airflow_provider_video_actions.hooks.batch_prediction import explain_api_error, is_unresolvable_host

        try:
            return call()
        except RetryError as exc:
            raise AirflowException(
                f"{what} kept failing with transient errors until the task's timeout ({self.wait_timeout:g} s) "
                f"in project {self.project_id}, region {self.region}: {exc.cause or exc}. A job whose create "
                "answer was lost is not orphaned: a retry lists this task's jobs before creating one."
            ) from exc
        except GoogleAPICallError as exc:
            permanent = isinstance(exc, (InvalidArgument, NotFound)) or is_unresolvable_host(exc)
            failure = AirflowFailException if permanent else AirflowException
            raise failure(explain_api_error(exc, what, self.project_id, self.region)) from exc

    def _find_or_create(self, spec: JobSpec) -> BatchPredictionJob:
        """This task instance's live or succeeded job for the same request, else a new job."""
        if job := self.hook.find_job(spec, self._remaining()):
            self.log.info("Re-attaching to %s (%s), created by an earlier try of this task", job.name, state_name(job))
            return job
        if self.gcs_source is None:
            self._write_instances(spec.instances_uris[0])
        job = self.hook.create_job_once(spec, self._remaining())
        self._created_job = job.name
        return job

    def _spec(self, context: Any) -> JobSpec:
        """The typed job spec from the rendered parameters, built once per try (it may list and read GCS)."""
        if self._job_spec is None:
            ti = context["ti"]
            task_label = task_label_value(ti.dag_id, ti.task_id, ti.run_id, ti.map_index)
            digest = self._input_digest()
            display_name = self.job_display_name or default_display_name(ti.dag_id, ti.task_id, ti.run_id, ti.map_index)
            spec = JobSpec(
                project_id=self.project_id,
                region=self.region,
                model=self._family().resource_name(self.model, self.project_id, self.region),
                display_name=display_name[:128],
                instances_uris=self._gcs_sources()
                if self.gcs_source is not None
                else (self._instances_file(task_label, digest),),
                destination_prefix=self.gcs_destination_prefix.rstrip("/"),
                model_parameters=self._family().model_parameters(self._family_request()),
                labels={**check_labels(self.labels), PROVIDER_LABEL: PROVIDER_LABEL_VALUE, TASK_LABEL: task_label},
                resources=self.machine_resources,
                service_account=self.service_account,
                encryption_key=self.encryption_key,
                input_digest=digest,
            )
            self._job_spec = dataclasses.replace(spec, labels={**spec.labels, REQUEST_LABEL: spec.fingerprint()})
        return self._job_spec

    def _input_digest(self) -> str:
        """What the job will read: the instance lines this task writes, or the given files' versions."""
        if self.gcs_source is None:
            data = self._instances_data()[0]
        else:
            from airflow_provider_video_actions import gcs

            versions = {uri: gcs.object_version(self.hook.storage_client, uri) for uri in self._gcs_sources()}
            if missing := [uri for uri, version in versions.items() if version is None]:
                _refuse_missing_sources(missing)
            data = repr(sorted(versions.items())).encode()
        return hashlib.sha256(data).hexdigest()

    def _instances_file(self, task_label: str, digest: str) -> str:
        """This task instance's instances file for these lines, under the destination prefix.

        Named by the lines' digest too: a re-run asking for other videos writes a new file, never
        rewriting the file an earlier job of this task instance may still be reading.
        """
        return f"{self.gcs_destination_prefix.rstrip('/')}/instances/{task_label}-{digest[:16]}.jsonl"

    def _gcs_sources(self) -> tuple[str, ...]:
        """``gcs_source`` as a tuple of URIs (one URI or a list may be given)."""
        return (self.gcs_source,) if isinstance(self.gcs_source, str) else tuple(self.gcs_source)

    def _instances_data(self) -> tuple[bytes, int]:
        """The instances file's bytes and line count: one request line per video from ``videos`` or under
        ``videos_prefix`` (listed once per try).

        The family's service limits are checked here: over them, no file and no job is made.
        """
        if self._instances_file_data is None:
            from airflow_provider_video_actions import gcs

            family, request = self._family(), self._family_request()
            if self.videos is not None:
                instances = family.instances(self.videos)
            else:
                uris = gcs.list_videos(self.hook.storage_client, self.videos_prefix, family.mime_types, self._window)
                if not uris:
                    self._no_videos(family)
                self.log.info("Selected %d videos under %s%s", len(uris), self.videos_prefix, self._window_text())
                instances = family.instances(uris)
            lines = list(family.request_lines(instances, request))
            data = "".join(line + "\n" for line in lines).encode()
            family.check_input(len(lines), len(data), request)
            self._instances_file_data = data, len(lines)
        return self._instances_file_data

    def _window_text(self) -> str:
        """`` created in [start, end)`` when the videos are selected by creation time, else nothing."""
        return "" if self._window is None else f" created in {self._window}"

    def _no_videos(self, family: ModelFamily) -> None:
        """Nothing to predict: a window with no new videos skips the task; a whole prefix with none fails."""
        if self._window is not None:
            message = f"No new videos under {self.videos_prefix}{self._window_text()}: nothing to predict, skipping."
            self.log.info(message)
            raise AirflowSkipException(message)
        raise VideoActionsValueError(
            f"videos_prefix {self.videos_prefix} holds no video files {family.name} models take "
            f"({', '.join(family.mime_types)}); check the bucket and prefix."
        )

    def _write_instances(self, uri: str) -> None:
        """Write this task's instances file (the same lines the request fingerprint was computed from)."""
        from airflow_provider_video_actions import gcs

        data, count = self._instances_data()
        gcs.write_text(self.hook.storage_client, uri, data)
        self.log.info("Wrote %d instances to %s", count, uri)

    def _wait_spec(self, job_name: str) -> WaitSpec:
        """How the trigger waits: this task's connection, pace and deadline."""
        from airflow_provider_video_actions.triggers.wait import WaitSpec

        return WaitSpec(
            job_name,
            gcp_conn_id=self.gcp_conn_id,
            impersonation_chain=self.impersonation_chain,
            poll_interval=self.poll_interval,
            deadline=self._deadline,
            cancel_on_kill=self.cancel_on_kill,
            adopted=self._replaced_job is None and job_name != self._created_job,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Turn the wait's event into the task outcome: the summary, or an error naming the job."""
        if event.get("adopted") and event["job"]["state"] == "JOB_STATE_CANCELLED":
            return self._replace_cancelled(context, event["job"]["name"], event["deadline"])
        if event["status"] == "timeout":
            event = self._on_timeout(event)
        if event["status"] == "done":
            summary = {**event["job"], **self._family().summary_part(self._family_request())}
            try:
                self.log.info(
                    job_outcome(
                        summary,
                        self.max_failed_ratio,
                        allow_all_failed=self.allow_all_failed,
                        failed_sample=lambda: self._failed_sample(summary),
                    )
                )
            except JobFailedError as exc:
                # The parse operator's allow_partial reads the rows such a job completed, from this summary
                # (with the family's part: a Gemini parse needs its threshold and labels).
                context["ti"].xcom_push(key=FAILED_JOB_XCOM_KEY, value=summary)
                raise failure_for(summary)(str(exc)) from exc
            return summary
        raise AirflowException(event["message"])

    def _replace_cancelled(self, context: Any, job_name: str, deadline: float) -> dict[str, Any]:
        """Submit one new job in place of a re-attached job that ended CANCELLED without this try asking, and wait.

        The cancel most likely came from the earlier try's kill (a clear) landing after this try re-attached:
        Vertex AI cannot mark a job as being cancelled (it has no job update call) and a trigger cannot write the
        task state, so the cancel cannot be seen coming. The new job's wait is not replaced again.
        """
        if deadline <= time.time():
            raise AirflowException(
                f"Batch prediction job {job_name}, re-attached from an earlier try of this task, ended "
                "JOB_STATE_CANCELLED and the task's timeout has passed: no new job was submitted."
            )
        self.log.warning(
            "%s, re-attached from an earlier try of this task, ended JOB_STATE_CANCELLED without this try asking "
            "(most likely that try's kill, e.g. a clear, cancelling it after this try re-attached): submitting one "
            "new job in its place. To stop the task instead, mark it failed: that cancels the job it waits on.",
            job_name,
        )
        self._replaced_job, self._deadline = job_name, deadline
        return self._submit_and_wait(context)

    def _failed_sample(self, summary: dict[str, Any]) -> list[str]:
        """A few failed videos of a finished job, read from its own output (best effort: it only adds to a message)."""
        from airflow_provider_video_actions.parse import source

        return source.failed_sample(self.hook.storage_client, summary, self.log)

    def _on_timeout(self, event: dict[str, Any]) -> dict[str, Any]:
        """Cancel a job that outlived the timeout; one that finished meanwhile is a normal ``done`` event."""
        if not self.cancel_on_kill:
            return {**event, "message": f"{event['message']} It was left running (cancel_on_kill=False)."}
        from google.api_core.exceptions import FailedPrecondition

        try:
            self.hook.cancel_job(event["job_name"])
        except FailedPrecondition:  # it reached a terminal state between the last poll, or is being cancelled
            job = job_summary(self.hook.get_job(event["job_name"]))
            if job["state"] in TERMINAL_STATES:
                self.log.info("%s finished just as the timeout passed: keeping its result", job["name"])
                return {"status": "done", "job": job}
            return {**event, "message": f"{event['message']} It is already {job['state']}."}
        return {**event, "message": f"{event['message']} It was cancelled."}

    def on_kill(self) -> None:
        """Worker mode: cancel the job when the task is killed, unless ``cancel_on_kill=False``."""
        if self._job_name and self.cancel_on_kill:
            self.log.info("Task killed: cancelling %s", self._job_name)
            self.hook.cancel_job(self._job_name)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """OpenLineage: videos, prefix or instances files and the model in; the prediction directory out."""
        from airflow_provider_video_actions.lineage import submit_lineage

        summary = task_instance.xcom_pull(task_ids=self.task_id, map_indexes=task_instance.map_index) or {}
        if self.videos is not None:
            sources = [v if isinstance(v, str) else v["content"] for v in self.videos]
        elif self.videos_prefix is not None:
            sources = [self.videos_prefix]
        else:
            sources = list(self._gcs_sources())
        return submit_lineage(summary, sources)
