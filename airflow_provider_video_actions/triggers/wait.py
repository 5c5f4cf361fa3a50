"""Wait for a batch prediction job in the triggerer, without holding a worker slot.

The trigger reads the job every ``poll_interval`` seconds until it reaches a terminal state
(see :mod:`airflow_provider_video_actions.job` for what each state means), then yields one event
with the job summary. Transient API errors (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ABORTED,
RESOURCE_EXHAUSTED) are logged and retried with backoff until the deadline; any other error
yields an error event naming the job. When the deadline passes it yields a timeout event and
leaves cancelling to the operator. A user marking the task failed or success, or clearing it,
cancels the job (``on_kill`` on Airflow >= 3.3; before that, a cancelled ``run()`` whose task is
no longer deferred); a triggerer restart or redistribution does not.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_video_actions.hooks.batch_prediction import (
    TRANSIENT_ERRORS,
    VideoActionBatchPredictionAsyncHook,
    explain_api_error,
)
from airflow_provider_video_actions.job import TERMINAL_STATES, job_summary, parse_job_name

#: First retry delay after a transient error; doubles up to the poll interval.
RETRY_BASE_SECONDS = 1.0


class VideoActionBatchPredictionTrigger(BaseTrigger):
    """Yield one event when the job ends, fails to be read, or passes its deadline.

    Event payloads: ``{"status": "done", "job": summary}``, ``{"status": "timeout", "job_name",
    "message", "job": last summary}`` or ``{"status": "error", "job_name", "message"}``.
    """

    def __init__(
        self,
        job_name: str,
        *,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        poll_interval: float = 10.0,
        deadline: float | None = None,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.job_name = job_name
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.cancel_on_kill = cancel_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Primitives only: the job name, the connection and the wait's timing."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_name": self.job_name,
                "gcp_conn_id": self.gcp_conn_id,
                "impersonation_chain": self.impersonation_chain,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _hook(self) -> VideoActionBatchPredictionAsyncHook:
        return VideoActionBatchPredictionAsyncHook(
            gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job ends; yield exactly one event.

        Before Airflow 3.3 there is no ``on_kill``: a cancelled ``run()`` cancels the job only when
        the task is no longer deferred (a user acted on it), never on a triggerer restart.
        """
        try:
            yield TriggerEvent(await self.wait())
        except asyncio.CancelledError:
            legacy = not AIRFLOW_V_3_3_PLUS and self.task_instance is not None
            if legacy and self.cancel_on_kill and await self._task_no_longer_deferred():
                self.log.info("Task no longer deferred: cancelling %s", self.job_name)
                await self._hook().cancel_job(self.job_name)
            raise

    async def _task_no_longer_deferred(self) -> bool:
        """Whether the task left DEFERRED (marked failed/success or cleared) rather than the triggerer stopping."""
        from asgiref.sync import sync_to_async

        ti = self.task_instance
        if AIRFLOW_V_3_0_PLUS:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
                dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index
            )
            state = states.get(ti.run_id, {}).get(ti.task_id)
        else:
            await sync_to_async(ti.refresh_from_db)()
            state = ti.state
        return state is not None and state != "deferred"

    async def wait(self) -> dict[str, Any]:
        """The wait itself, returning the event payload (also used by worker-mode polling)."""
        hook, progress = self._hook(), _Progress(self.job_name, self.log)
        summary: dict[str, Any] | None = None
        failures = 0
        while True:
            try:
                summary = job_summary(await hook.get_job(self.job_name))
                failures = 0
            except TRANSIENT_ERRORS as exc:
                failures += 1
                delay = min(self.poll_interval, RETRY_BASE_SECONDS * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
                self.log.warning("Reading %s failed (%s), retry %d in %.1fs", self.job_name, exc, failures, delay)
            except Exception as exc:
                project, region, _ = parse_job_name(self.job_name)
                message = explain_api_error(exc, f"Reading {self.job_name}", project, region)
                return {"status": "error", "job_name": self.job_name, "message": message}
            else:
                progress.report(summary)
                if summary["state"] in TERMINAL_STATES:
                    return {"status": "done", "job": summary}
                delay = self.poll_interval
            if self.deadline is not None and time.time() + delay > self.deadline:
                await asyncio.sleep(max(0.0, self.deadline - time.time()))
                return {
                    "status": "timeout",
                    "job_name": self.job_name,
                    "message": f"Batch prediction job {self.job_name} did not finish before the task's timeout.",
                    "job": summary,
                }
            await asyncio.sleep(delay)

    async def on_kill(self) -> None:
        """Cancel the job when a user marks the deferred task failed/success or clears it (Airflow >= 3.3).

        The triggerer also calls this when a trigger merely moves to another triggerer, so the job is
        kept while the task is still deferred; if the task state cannot be read, the job is cancelled
        (an orphaned job costs money silently, a cancelled one fails its task loudly).
        """
        if not self.cancel_on_kill:
            return
        try:
            moved_only = self.task_instance is not None and not await self._task_no_longer_deferred()
        except Exception:
            self.log.warning("Could not read the task's state; cancelling %s", self.job_name, exc_info=True)
            moved_only = False
        if moved_only:
            self.log.info("Task still deferred (trigger moved): keeping %s", self.job_name)
            return
        self.log.info("Task killed by a user: cancelling %s", self.job_name)
        await self._hook().cancel_job(self.job_name)


class _Progress:
    """Logs state changes and completion counts once each, not on every poll."""

    def __init__(self, job_name: str, log: Any) -> None:
        self.job_name, self._log = job_name, log
        self.last: tuple[Any, ...] | None = None

    def report(self, summary: dict[str, Any]) -> None:
        """Log when the state or the completion counts changed since the last poll."""
        stats = summary["completion_stats"]
        current = (summary["state"], stats["successful_count"], stats["failed_count"])
        if current == self.last:
            return
        self.last = current
        done = stats["successful_count"] + stats["failed_count"]
        total = done + max(stats["incomplete_count"], 0)
        share = f" ({done / total:.0%})" if total else ""
        self._log.info(
            "%s is %s: %d instances succeeded, %d failed%s",
            self.job_name,
            summary["state"],
            stats["successful_count"],
            stats["failed_count"],
            share,
        )
