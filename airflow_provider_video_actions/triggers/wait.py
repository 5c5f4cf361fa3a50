"""Wait for a batch prediction job in the triggerer, without holding a worker slot.

The trigger follows its job through the snapshots of a poll shared by every wait on the same
connection, project, region and interval (:mod:`.job_poll`: one list call per interval, not one
read per job) until the job reaches a terminal state (see :mod:`airflow_provider_video_actions.job`
for what each state means), then yields one event with the job summary. A job the list does not
return (not labelled by this provider, or older than the list's window) is read directly.
Transient API errors (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ABORTED, RESOURCE_EXHAUSTED) are
logged and retried at the next poll until the deadline; any other error yields an error event
naming the job. When the deadline passes it yields a timeout event and
leaves cancelling to the operator. A user marking the task failed or success, or clearing it,
cancels the job (``on_kill`` on Airflow >= 3.3; before that, a cancelled ``run()`` whose task is
no longer deferred); a triggerer restart or redistribution does not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import aclosing
from typing import Any

import airflow.triggers.base
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from airflow.triggers.base import TriggerEvent

from airflow_provider_video_actions.hooks.batch_prediction import (
    TRANSIENT_ERRORS,
    VideoActionBatchPredictionAsyncHook,
    explain_api_error,
)
from airflow_provider_video_actions.job import TERMINAL_STATES, job_summary, parse_job_name
from airflow_provider_video_actions.triggers.job_poll import PollKey, Snapshot, job_snapshots, shared_hook, subscribe

#: Shared-stream triggers derive from BaseEventTrigger (Airflow >= 3.0); plain BaseTrigger before.
_TriggerBase: Any = getattr(airflow.triggers.base, "BaseEventTrigger", airflow.triggers.base.BaseTrigger)


class VideoActionBatchPredictionTrigger(_TriggerBase):
    """Yield one event when the job ends, fails to be read, or passes its deadline.

    Event payloads: ``{"status": "done", "job": summary}``, ``{"status": "timeout", "job_name",
    "message", "job": last summary}`` or ``{"status": "error", "job_name", "message"}``.
    """

    supports_triggerer_queue = True
    #: Rendered by the triggerer when a sensor starts straight in it (``start_from_trigger``).
    template_fields = ("job_name", "impersonation_chain")

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
        return shared_hook(self.gcp_conn_id, self.impersonation_chain)

    def _poll_key(self) -> PollKey:
        return PollKey.for_job(self.job_name, self.gcp_conn_id, self.impersonation_chain, self.poll_interval)

    # -- Airflow >= 3.3: the triggerer runs one poll per key and fans it out ---------------------

    def shared_stream_key(self) -> Hashable | None:
        """Waits with the same connection, project, region and interval share one poll (Airflow >= 3.3)."""
        return self._poll_key() if AIRFLOW_V_3_3_PLUS else None

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """The group's poll loop, from the kwargs of its first trigger (all of which are in the key)."""
        key = PollKey.for_job(
            kwargs["job_name"], kwargs["gcp_conn_id"], kwargs["impersonation_chain"], kwargs["poll_interval"]
        )
        async for snapshot in job_snapshots(key):
            yield snapshot

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """This job's one event from the shared snapshots: done, timeout or error."""
        yield TriggerEvent(await self._watch(shared_stream))

    # -- everywhere else: the same snapshots from a process-wide poll ---------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait on the process-wide poll for this key; yield exactly one event.

        Before Airflow 3.3 there is no ``on_kill``: a cancelled ``run()`` cancels the job only when
        the task is no longer deferred (a user acted on it), never on a triggerer restart.
        """
        try:
            yield TriggerEvent(await self.wait())
        except asyncio.CancelledError:
            legacy = not AIRFLOW_V_3_3_PLUS and self.task_instance is not None
            if legacy and self.cancel_on_kill and await self._left_deferred_on_cancel():
                self.log.info("Task no longer deferred: cancelling %s", self.job_name)
                await self._hook().cancel_job(self.job_name)
            raise

    async def wait(self) -> dict[str, Any]:
        """The event payload, from the process-wide poll (also how worker-mode polling waits)."""
        async with aclosing(subscribe(self._poll_key())) as snapshots:
            return await self._watch(snapshots)

    async def _left_deferred_on_cancel(self) -> bool:
        """Whether a cancelled ``run()`` means a user acted (Airflow < 3.3); an unreadable state means a restart."""
        try:
            return await self._task_state() != "deferred"
        except Exception:
            self.log.warning("Could not read the task's state; keeping %s", self.job_name, exc_info=True)
            return False

    async def _task_state(self) -> str | None:
        """The task instance's state now: ``deferred`` while it waits; None once cleared or deleted."""
        from asgiref.sync import sync_to_async

        ti = self.task_instance
        if not AIRFLOW_V_3_0_PLUS:
            await sync_to_async(ti.refresh_from_db)()
            return ti.state
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
            dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index
        )
        # The execution API keys a mapped task instance as "<task_id>_<map_index>".
        key = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
        return states.get(ti.run_id, {}).get(key)

    async def _watch(self, snapshots: AsyncIterator[Snapshot]) -> dict[str, Any]:
        """Follow the job through snapshots (reading it directly when a snapshot lacks it) until it ends."""
        progress, summary = _Progress(self.job_name, self.log), None
        while True:
            remaining = None if self.deadline is None else self.deadline - time.time()
            try:
                snapshot = await asyncio.wait_for(anext(snapshots), timeout=remaining)
            except asyncio.TimeoutError:
                return {
                    "status": "timeout",
                    "job_name": self.job_name,
                    "message": f"Batch prediction job {self.job_name} did not finish before the task's timeout.",
                    "job": summary,
                }
            try:
                summary = snapshot.get(self.job_name) or await self._read()
            except Exception as exc:
                project, region, _ = parse_job_name(self.job_name)
                message = explain_api_error(exc, f"Reading {self.job_name}", project, region)
                return {"status": "error", "job_name": self.job_name, "message": message}
            if summary is not None:
                progress.report(summary)
                if summary["state"] in TERMINAL_STATES:
                    return {"status": "done", "job": summary}

    async def _read(self) -> dict[str, Any] | None:
        """One direct read, for a job the list did not return; None after a transient error (next time)."""
        try:
            return job_summary(await self._hook().get_job(self.job_name))
        except TRANSIENT_ERRORS as exc:
            self.log.warning("Reading %s failed (%s); trying again at the next poll", self.job_name, exc)
            return None

    async def on_kill(self) -> None:
        """Cancel the job when a user marks the deferred task failed/success or clears it (Airflow >= 3.3).

        The triggerer also calls this when a trigger merely moves to another triggerer, so the job is
        kept while the task is still deferred; if the task state cannot be read, the job is cancelled
        (an orphaned job costs money silently, a cancelled one fails its task loudly).
        """
        if not self.cancel_on_kill:
            return
        try:
            moved_only = self.task_instance is not None and await self._task_state() == "deferred"
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
        share = f", {done} of {total} done ({done / total:.0%})" if total else ""
        self._log.info(
            "%s is %s: %d instances succeeded, %d failed%s",
            self.job_name,
            summary["state"],
            stats["successful_count"],
            stats["failed_count"],
            share,
        )
