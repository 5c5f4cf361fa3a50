"""Wait for a batch prediction job that was submitted elsewhere (another DAG, a notebook, gcloud).

Deferred (``deferrable=True``, or ``[operators] default_deferrable``), the wait runs in the triggerer with the
same trigger as the submit operator, except that a killed or timed-out sensor never cancels the job, which is
not its own. Returns the job summary of :class:`VideoActionBatchPredictionOperator`, without the part only the
submitting operator knows (a Gemini ask's labels, threshold and limit).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_video_actions.job import (
    TERMINAL_STATES,
    JobFailedError,
    VideoActionsValueError,
    failure_for,
    job_name_from,
    job_outcome,
    job_summary,
)
from airflow_provider_video_actions.links import JOB_NAME_XCOM_KEY, VideoActionBatchPredictionJobLink
from airflow_provider_video_actions.paths import PathSegmentFilterMixin
from airflow_provider_video_actions.validators import (
    MIN_POLL_INTERVAL,
    check_fraction,
    check_poll_interval,
    check_positive,
)

if TYPE_CHECKING:
    from airflow_provider_video_actions.hooks.batch_prediction import VideoActionBatchPredictionHook
    from airflow_provider_video_actions.triggers.wait import WaitSpec

TRIGGER_CLASSPATH = "airflow_provider_video_actions.triggers.wait.VideoActionBatchPredictionTrigger"


class VideoActionBatchPredictionSensor(PathSegmentFilterMixin, BaseSensorOperator):
    """Succeed when the job succeeds; fail when it fails, is cancelled or expires.

    :param job_name: full resource name ``projects/P/locations/L/batchPredictionJobs/ID``, or a job's XCom holding
        it: the submit operator's result, or the Google provider's ``CreateBatchPredictionJobOperator``'s.
    :param max_failed_ratio: largest share of failed instances that still counts as success.
    :param allow_all_failed: accept a finished job where no instance succeeded and some failed (default False:
        the task fails, naming a few failed videos).
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``);
        ``poke_interval`` is the poll interval and ``timeout`` the deadline in both modes.
    :param min_poll_interval: the floor of ``poke_interval`` (default 1 s; lower it only against the emulator).
    :param start_from_trigger: start straight in the triggerer, with no worker run at all
        (Airflow's ``start_from_trigger``; ``job_name`` is rendered in the triggerer).
    """

    template_fields: Sequence[str] = ("job_name", "impersonation_chain")
    operator_extra_links = (VideoActionBatchPredictionJobLink(),)

    def __init__(
        self,
        *,
        job_name: str | dict[str, Any],
        max_failed_ratio: float = 1.0,
        allow_all_failed: bool = False,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        start_from_trigger: bool = False,
        min_poll_interval: float = MIN_POLL_INTERVAL,
        **kwargs: Any,
    ) -> None:
        for param in ("poke_interval", "timeout"):  # checked here: Airflow's own checks name no parameter
            if param in kwargs:
                check_positive(kwargs[param], param)
        super().__init__(**kwargs)
        if isinstance(job_name, dict) or "{{" not in str(job_name):
            job_name = job_name_from(job_name)
        self.job_name = job_name
        check_poll_interval(self.poke_interval, "poke_interval", check_positive(min_poll_interval, "min_poll_interval"))
        self.max_failed_ratio = check_fraction(max_failed_ratio, "max_failed_ratio")
        self.allow_all_failed = allow_all_failed
        self.gcp_conn_id, self.impersonation_chain = gcp_conn_id, impersonation_chain
        self.deferrable = deferrable
        if start_from_trigger:
            if not isinstance(job_name, str):
                raise VideoActionsValueError(
                    f"job_name: start_from_trigger=True needs the name or a Jinja template of it (rendered in the "
                    f"triggerer, like '{{{{ params.job }}}}'), got {type(job_name).__name__}: the trigger's arguments "
                    "are fixed when the DAG is parsed, so a task's output (XComArg) cannot reach them. Pass a "
                    "template, or leave start_from_trigger off."
                )
            self._start_in_triggerer()

    def _start_in_triggerer(self) -> None:
        """Skip the worker: the scheduler defers straight to the trigger, which renders ``job_name`` itself.

        No worker runs to compute an absolute deadline, so the sensor's ``timeout`` becomes Airflow's
        trigger timeout instead; the console link is not recorded (no worker run stores it).
        """
        from airflow.triggers.base import StartTriggerArgs

        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=TRIGGER_CLASSPATH,
            trigger_kwargs=self._wait_spec(deadline=None).kwargs(),
            next_method="execute_complete",
            timeout=timedelta(seconds=self._timeout_seconds()),
        )
        self.start_from_trigger = True

    def _timeout_seconds(self) -> float:
        return self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)

    def _wait_spec(self, deadline: float | None) -> WaitSpec:
        """How the trigger waits: this sensor's connection and pace; it never cancels a job it did not start."""
        from airflow_provider_video_actions.triggers.wait import WaitSpec

        return WaitSpec(
            self.job_name,
            gcp_conn_id=self.gcp_conn_id,
            impersonation_chain=self.impersonation_chain,
            poll_interval=float(self.poke_interval),
            deadline=deadline,
            cancel_on_kill=False,
        )

    @cached_property
    def hook(self) -> VideoActionBatchPredictionHook:
        """The job service hook (imported here so DAG parsing stays light)."""
        from airflow_provider_video_actions.hooks.batch_prediction import VideoActionBatchPredictionHook

        return VideoActionBatchPredictionHook(
            gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain
        )

    def execute(self, context: Any) -> Any:
        """Check the name, record the link, then wait deferred or poke in the worker."""
        context["ti"].xcom_push(key=JOB_NAME_XCOM_KEY, value="")  # the link finds "" until the name is checked
        self.job_name = job_name_from(self.job_name)  # a VideoActionsValueError fails without a retry
        context["ti"].xcom_push(key=JOB_NAME_XCOM_KEY, value=self.job_name)
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_video_actions.triggers.wait import VideoActionBatchPredictionTrigger

        spec = self._wait_spec(deadline=time.time() + self._timeout_seconds())
        self.defer(trigger=VideoActionBatchPredictionTrigger(**spec.kwargs()), method_name="execute_complete")

    def poke(self, context: Any) -> PokeReturnValue:
        """Worker mode: one read of the job; a job that cannot be read (missing, no access) fails the task."""
        from google.api_core.exceptions import GoogleAPICallError, RetryError

        from airflow_provider_video_actions.hooks.batch_prediction import explain_read_error

        try:
            summary = job_summary(self.hook.get_job(self.job_name))
        except (GoogleAPICallError, RetryError) as exc:
            raise AirflowFailException(explain_read_error(exc, self.job_name)) from exc
        if summary["state"] not in TERMINAL_STATES:
            self.log.info("%s is %s", self.job_name, summary["state"])
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._outcome(summary))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """The trigger's event becomes the summary, or an error naming the job."""
        if event["status"] == "done":
            return self._outcome(event["job"])
        if event.get("bad_parameter"):  # job_name rendered in the triggerer (start_from_trigger): no retry helps
            raise AirflowFailException(event["message"])
        if event["status"] == "timeout":
            raise AirflowSensorTimeout(f"{event['message']} The job was left as it is: this sensor did not start it.")
        raise AirflowException(event["message"])

    def _outcome(self, summary: dict[str, Any]) -> dict[str, Any]:
        """The summary of a job that passes, else an error naming the job (and a few failed videos)."""
        from airflow_provider_video_actions.parse import source

        try:
            outcome = job_outcome(
                summary,
                self.max_failed_ratio,
                allow_all_failed=self.allow_all_failed,
                failed_sample=lambda: source.failed_sample(self.hook.storage_client, summary, self.log),
            )
            self.log.info(outcome)
        except JobFailedError as exc:
            raise failure_for(summary)(str(exc)) from exc
        return summary
