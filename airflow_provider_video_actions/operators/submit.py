"""Submit a video action recognition batch prediction job and wait for it.

The operator turns its input (a list of videos, a GCS prefix of videos, or ready JSONL files)
into an instances file, creates one job per task instance, and waits for it: deferred in the
triggerer by default, or polling in the worker. A retry of the same task instance re-attaches
to a live or succeeded job it created before (found by a deterministic label) instead of paying
for a second one. It returns the job summary (:func:`airflow_provider_video_actions.job.job_summary`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    BaseOperator,
    ResumableJobMixin,
    conf,
)

from airflow_provider_video_actions.families.base import FamilyRequest, ModelFamily
from airflow_provider_video_actions.families.dispatch import check_region_of_any_family, family_for
from airflow_provider_video_actions.job import (
    FAILURE_STATES,
    PROVIDER_LABEL,
    PROVIDER_LABEL_VALUE,
    SUCCESS_STATES,
    TASK_LABEL,
    WAITING_STATES,
    JobFailedError,
    JobSpec,
    MachineResources,
    VideoActionsValueError,
    check_labels,
    default_display_name,
    job_outcome,
    job_summary,
    split_gcs_uri,
    task_label_value,
)
from airflow_provider_video_actions.links import JOB_NAME_XCOM_KEY, VideoActionBatchPredictionJobLink

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from google.cloud.aiplatform_v1 import BatchPredictionJob

    from airflow_provider_video_actions.hooks.batch_prediction import VideoActionBatchPredictionHook
    from airflow_provider_video_actions.triggers.wait import VideoActionBatchPredictionTrigger


def _is_template(value: Any) -> bool:
    """True for values that are only known after rendering (Jinja strings, XComArgs)."""
    return (isinstance(value, str) and "{{" in value) or hasattr(value, "resolve")


def check_fraction(value: Any, param: str) -> float:
    """A number in [0, 1], or raise naming the parameter."""
    if isinstance(value, str):  # a rendered template
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise VideoActionsValueError(f"{param} must be a number between 0 and 1, got {value!r}.")
    return float(value)


def _optional_positive(value: Any, param: str) -> int | None:
    """None (the service's own limit) or a positive integer."""
    return None if value is None else check_positive(value, param, integer=True)


def check_positive(value: Any, param: str, *, integer: bool = False) -> Any:
    """A positive number (or integer), or raise naming the parameter."""
    if isinstance(value, timedelta) and not integer:
        value = value.total_seconds()
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        kind = "a positive integer" if integer else "a positive number of seconds"
        raise VideoActionsValueError(f"{param} must be {kind}, got {value!r}.")
    return value


#: XCom key of a failed job's summary (its ``output_directory`` holds the rows it completed).
FAILED_JOB_XCOM_KEY = "failed_job"


class VideoActionBatchPredictionOperator(ResumableJobMixin, BaseOperator):
    """Run a Vertex AI video action recognition batch prediction job and return its summary.

    :param project_id: Google Cloud project of the job.
    :param region: Vertex AI region of the model, e.g. ``us-central1``.
    :param model: model ID, or full resource name ``projects/P/locations/L/models/ID[@version]``; or a
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
    :param poll_interval: seconds between reads of the job while waiting.
    :param timeout: seconds (or timedelta) to wait before cancelling the job and failing.
    :param max_failed_ratio: largest share of failed instances that still counts as success.
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
        model: str,
        gcs_destination_prefix: str,
        videos: Sequence[str | dict[str, Any]] | None = None,
        videos_prefix: str | None = None,
        gcs_source: str | Sequence[str] | None = None,
        confidence_threshold: float = 0.0,
        max_predictions: int = 50,
        job_display_name: str | None = None,
        labels: dict[str, str] | None = None,
        poll_interval: float = 10.0,
        timeout: float | timedelta | None = None,
        max_failed_ratio: float = 1.0,
        cancel_on_kill: bool = True,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=True),
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
        self.project_id, self.region, self.model = project_id, region, model
        self.gcs_destination_prefix = gcs_destination_prefix
        self.videos, self.videos_prefix, self.gcs_source = videos, videos_prefix, gcs_source
        self.confidence_threshold = check_fraction(confidence_threshold, "confidence_threshold")
        self.max_predictions = check_positive(max_predictions, "max_predictions", integer=True)
        self.job_display_name, self.labels = job_display_name, labels
        self.poll_interval = float(check_positive(poll_interval, "poll_interval"))
        self.wait_timeout = None if timeout is None else float(check_positive(timeout, "timeout"))
        self.max_failed_ratio = check_fraction(max_failed_ratio, "max_failed_ratio")
        self.cancel_on_kill = cancel_on_kill
        self.gcp_conn_id, self.impersonation_chain = gcp_conn_id, impersonation_chain
        self.deferrable = deferrable
        self.machine_resources = MachineResources(
            machine_type, accelerator_type, accelerator_count, starting_replica_count, max_replica_count
        )
        self.service_account, self.encryption_key = service_account, encryption_key
        self.action_labels, self.prompt, self.model_family = action_labels, prompt, model_family
        self.fps, self.media_resolution = fps, media_resolution
        self.max_requests_per_job = _optional_positive(max_requests_per_job, "max_requests_per_job")
        self.max_input_bytes = _optional_positive(max_input_bytes, "max_input_bytes")
        self._job_name: str | None = None
        self._result: dict[str, Any] | None = None
        given = [name for name in ("videos", "videos_prefix", "gcs_source") if getattr(self, name) is not None]
        if len(given) != 1:
            raise VideoActionsValueError(
                f"{type(self).__name__} {self.task_id}: give exactly one of videos, videos_prefix or gcs_source; "
                f"got {', '.join(given) or 'none'}."
            )
        self._check_rendered(literal_only=True)

    # -- validation -----------------------------------------------------------------------

    def _check_rendered(self, *, literal_only: bool) -> None:
        """Validate the templated parameters; at construction only those that are not templates."""

        def check(value: Any) -> bool:
            return value is not None and not (literal_only and _is_template(value))

        if check(self.project_id) and (not isinstance(self.project_id, str) or not self.project_id):
            raise VideoActionsValueError(f"project_id must be a non-empty string, got {self.project_id!r}.")
        known = check(self.model) and not (literal_only and _is_template(self.model_family))
        family = self._family() if known else None
        if check(self.region) and family is not None:
            family.check_region(self.region)
        elif check(self.region):
            check_region_of_any_family(self.region)
        if family is not None and check(self.region) and check(self.project_id):
            family.resource_name(self.model, self.project_id, self.region)
        if family is not None:
            family.check_request(self._family_request())
        if check(self.gcs_destination_prefix):
            split_gcs_uri(self.gcs_destination_prefix, "gcs_destination_prefix", want_object=False)
        if check(self.videos) and family is not None and not any(_is_template(v) for v in self.videos):
            family.instances(self.videos)
        if check(self.videos_prefix):
            split_gcs_uri(self.videos_prefix, "videos_prefix", want_object=False)
        if check(self.gcs_source):
            for uri in self._gcs_sources():
                if not (literal_only and _is_template(uri)):
                    split_gcs_uri(uri, "gcs_source")
        if check(self.labels):
            check_labels(self.labels)

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
        try:
            self._check_rendered(literal_only=False)
            return self.execute_resumable(context)
        except VideoActionsValueError as exc:
            raise AirflowFailException(str(exc)) from exc

    # -- ResumableJobMixin: on Airflow >= 3.3 a retry reads the stored job name (one GET) ----------

    def submit_job(self, context: Any) -> str:
        """Re-attach to this task instance's live or succeeded job (found by label), or create one."""
        ti = context["ti"]
        task_label = task_label_value(ti.dag_id, ti.task_id, ti.run_id, ti.map_index)
        from airflow_provider_video_actions.hooks.batch_prediction import transient_retry

        spec = self._spec(ti, task_label)
        # A create whose answer was lost may still have made the job: each attempt lists first.
        retry = transient_retry(f"Submitting {spec.display_name}", self.log)
        job = self._api("Submitting the batch prediction job", lambda: retry(self._find_or_create)(spec, task_label))
        return job.name

    def get_job_status(self, external_id: Any, context: Any) -> str:
        """The job's state name, e.g. ``JOB_STATE_RUNNING``."""
        return self._api(f"Reading {external_id}", lambda: self.hook.get_job(external_id)).state.name

    def is_job_active(self, status: str) -> bool:
        """Queued, running, paused or updating: worth waiting on rather than resubmitting."""
        return status in WAITING_STATES

    def is_job_succeeded(self, status: str) -> bool:
        """Finished with results (partial success is judged against ``max_failed_ratio`` afterwards)."""
        return status in SUCCESS_STATES

    def poll_until_complete(self, external_id: Any, context: Any) -> None:
        """Wait for the job: deferred in the triggerer, or polling here with the same trigger code."""
        self._job_name = external_id
        context["ti"].xcom_push(key=JOB_NAME_XCOM_KEY, value=external_id)
        trigger = self._trigger(external_id)
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete")
        self._result = self.execute_complete(context, asyncio.run(trigger.wait()))

    def get_job_result(self, external_id: Any, context: Any) -> dict[str, Any]:
        """The summary from the wait, or, for a job that succeeded on an earlier try, from one read."""
        if self._result is None:
            context["ti"].xcom_push(key=JOB_NAME_XCOM_KEY, value=external_id)
            job = self._api(f"Reading {external_id}", lambda: self.hook.get_job(external_id))
            self._result = self.execute_complete(context, {"status": "done", "job": job_summary(job)})
        return self._result

    # -- submission ------------------------------------------------------------------------

    def _api(self, what: str, call: Any) -> Any:
        """Run an API call, turning a permanent (or retried-out) Google API error into a clear failure."""
        from google.api_core.exceptions import GoogleAPICallError, RetryError

        from airflow_provider_video_actions.hooks.batch_prediction import explain_api_error

        try:
            return call()
        except (GoogleAPICallError, RetryError) as exc:
            raise AirflowException(explain_api_error(exc, what, self.project_id, self.region)) from exc

    def _find_or_create(self, spec: JobSpec, task_label: str) -> BatchPredictionJob:
        """The newest live or succeeded job with this task's label, else a new job."""
        label_filter = f'labels.{TASK_LABEL}="{task_label}"'
        jobs = [
            j
            for j in self.hook.list_jobs(spec.project_id, spec.region, label_filter)
            if j.state.name not in FAILURE_STATES
        ]
        if jobs:
            job = max(jobs, key=lambda j: j.create_time)
            self.log.info("Re-attaching to %s (%s), created by an earlier try of this task", job.name, job.state.name)
            return job
        if self.gcs_source is None:
            self._write_instances(spec.instances_uris[0])
        job = self.hook.create_job(spec)
        self.log.info("Created %s reading %s", job.name, ", ".join(spec.instances_uris))
        return job

    def _spec(self, ti: Any, task_label: str) -> JobSpec:
        """Build the typed job spec from the rendered parameters."""
        display_name = self.job_display_name or default_display_name(ti.dag_id, ti.task_id, ti.run_id, ti.map_index)
        return JobSpec(
            project_id=self.project_id,
            region=self.region,
            model=self._family().resource_name(self.model, self.project_id, self.region),
            display_name=display_name[:128],
            instances_uris=self._instances_uris(task_label),
            destination_prefix=self.gcs_destination_prefix.rstrip("/"),
            model_parameters=self._family().model_parameters(self._family_request()),
            labels={**check_labels(self.labels), PROVIDER_LABEL: PROVIDER_LABEL_VALUE, TASK_LABEL: task_label},
            resources=self.machine_resources,
            service_account=self.service_account,
            encryption_key=self.encryption_key,
        )

    def _instances_uris(self, task_label: str) -> tuple[str, ...]:
        """The instances files: ``gcs_source`` as given, or this task instance's own file (written on create)."""
        if self.gcs_source is not None:
            return self._gcs_sources()
        return (f"{self.gcs_destination_prefix.rstrip('/')}/instances/{task_label}.jsonl",)

    def _gcs_sources(self) -> tuple[str, ...]:
        """``gcs_source`` as a tuple of URIs (one URI or a list may be given)."""
        return (self.gcs_source,) if isinstance(self.gcs_source, str) else tuple(self.gcs_source)

    def _write_instances(self, uri: str) -> None:
        """Write the instances file from ``videos`` or the videos listed under ``videos_prefix``.

        The family's service limits are checked first: over them, no file and no job is made.
        """
        from airflow_provider_video_actions import gcs

        family, request = self._family(), self._family_request()
        if self.videos is not None:
            instances = family.instances(self.videos)
        else:
            uris = gcs.list_videos(self.hook.storage_client, self.videos_prefix, family.mime_types)
            if not uris:
                raise VideoActionsValueError(
                    f"videos_prefix {self.videos_prefix} holds no video files {family.name} models take "
                    f"({', '.join(family.mime_types)}); check the bucket and prefix."
                )
            instances = family.instances(uris)
        text = "".join(line + "\n" for line in family.request_lines(instances, request))
        family.check_input(len(instances), len(text.encode()), request)
        gcs.write_text(self.hook.storage_client, uri, text)
        self.log.info("Wrote %d instances to %s", len(instances), uri)

    def _trigger(self, job_name: str) -> VideoActionBatchPredictionTrigger:
        from airflow_provider_video_actions.triggers.wait import VideoActionBatchPredictionTrigger

        return VideoActionBatchPredictionTrigger(
            job_name,
            gcp_conn_id=self.gcp_conn_id,
            impersonation_chain=self.impersonation_chain,
            poll_interval=self.poll_interval,
            deadline=None if self.wait_timeout is None else time.time() + self.wait_timeout,
            cancel_on_kill=self.cancel_on_kill,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Turn the wait's event into the task outcome: the summary, or an error naming the job."""
        if event["status"] == "done":
            try:
                self.log.info(job_outcome(event["job"], self.max_failed_ratio))
            except JobFailedError as exc:
                # The parse operator's allow_partial reads the rows such a job completed, from this summary.
                context["ti"].xcom_push(key=FAILED_JOB_XCOM_KEY, value=event["job"])
                raise AirflowException(str(exc)) from exc
            return {**event["job"], **self._family().summary_part(self._family_request())}
        if event["status"] == "timeout":
            if self.cancel_on_kill:
                self.hook.cancel_job(event["job_name"])
                raise AirflowException(f"{event['message']} It was cancelled.")
            raise AirflowException(f"{event['message']} It was left running (cancel_on_kill=False).")
        raise AirflowException(event["message"])

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
