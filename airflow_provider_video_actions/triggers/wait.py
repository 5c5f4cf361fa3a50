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
import concurrent.futures
import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Hashable, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import airflow.triggers.base
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from airflow.triggers.base import TriggerEvent

from airflow_provider_video_actions.job import (
    TERMINAL_STATES,
    VideoActionsValueError,
    job_name_from,
    job_summary,
    parse_job_name,
)
from airflow_provider_video_actions.triggers.job_poll import PollKey, Snapshot, hooks_module, job_snapshots, subscribe

#: Shared-stream triggers derive from BaseEventTrigger (Airflow >= 3.0); plain BaseTrigger before.
_TriggerBase: Any = getattr(airflow.triggers.base, "BaseEventTrigger", airflow.triggers.base.BaseTrigger)
#: Failed list polls in a row after which a wait reads its own job at every poll.
LIST_FAILURES_BEFORE_DIRECT_READS = 2
#: How long ``on_kill`` may spend finding out whether a user acted before it cancels the job anyway
#: (the triggerer gives ``on_kill`` 30 s in all by default: the cancel call needs the rest).
ON_KILL_DECISION_SECONDS = 2.0
#: How long a killed worker-mode wait is given to close its poll subscription before the task ends anyway.
WORKER_WAIT_CANCEL_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class WaitSpec:
    """One wait on one job: the trigger's keyword arguments, in one typed place.

    The submit operator, the sensor (in the worker and when it starts in the triggerer) and the
    trigger's own ``serialize`` all build or read this; every field is a primitive, so it survives the
    trip through the metadata database.
    """

    job_name: str
    gcp_conn_id: str = "google_cloud_default"
    impersonation_chain: str | Sequence[str] | None = None
    #: Seconds between list calls once the wait has settled (it starts at 1 s and backs off).
    poll_interval: float = 10.0
    #: Unix time after which the wait yields a timeout event; None only when Airflow's own trigger
    #: timeout bounds the wait (a sensor started in the triggerer).
    deadline: float | None = None
    cancel_on_kill: bool = True
    #: The job was made by an earlier try of the task and re-attached to: its done event carries ``adopted``
    #: and the deadline back, so that the submit operator can replace it once if it ends CANCELLED.
    adopted: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.poll_interval, (int, float)) and math.isfinite(self.poll_interval)) or (
            self.poll_interval <= 0
        ):
            raise VideoActionsValueError(f"poll_interval must be a finite positive number, got {self.poll_interval!r}.")
        if self.deadline is not None and not math.isfinite(self.deadline):
            raise VideoActionsValueError(f"deadline must be a finite Unix time or None, got {self.deadline!r}.")

    def kwargs(self) -> dict[str, Any]:
        """The trigger's keyword arguments (JSON primitives)."""
        return dataclasses.asdict(self)

    def poll_key(self) -> PollKey:
        """The shared poll this wait reads: everything the list call depends on."""
        return PollKey.for_job(self.job_name, self.gcp_conn_id, self.impersonation_chain, self.poll_interval)


class VideoActionBatchPredictionTrigger(_TriggerBase):
    """Yield one event when the job ends, fails to be read, or passes its deadline.

    Takes the fields of :class:`WaitSpec` as keyword arguments. Event payloads: ``{"status": "done",
    "job": summary}`` (plus ``"adopted": True, "deadline"`` for a re-attached job), ``{"status": "timeout",
    "job_name", "message", "job": last summary}`` or ``{"status": "error", "job_name", "message"}``.
    """

    supports_triggerer_queue = True
    #: Rendered by the triggerer when a sensor starts straight in it (``start_from_trigger``).
    template_fields = ("job_name", "impersonation_chain")

    def __init__(self, job_name: str, **options: Any) -> None:
        super().__init__()
        self.spec = WaitSpec(job_name, **options)

    # Template rendering sets these two attributes; they live in the spec. A job's XCom rendered as a native
    # object (``render_template_as_native_obj``) gives its name; anything else is checked by :meth:`run`.
    job_name = property(
        lambda self: self.spec.job_name,
        lambda self, v: self._replace(job_name=job_name_from(v) if isinstance(v, Mapping) else v),
    )
    impersonation_chain = property(
        lambda self: self.spec.impersonation_chain, lambda self, v: self._replace(impersonation_chain=v)
    )

    def _replace(self, **changes: Any) -> None:
        self.spec = dataclasses.replace(self.spec, **changes)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Primitives only: the wait spec."""
        return f"{type(self).__module__}.{type(self).__qualname__}", self.spec.kwargs()

    async def _hook(self) -> Any:
        from airflow_provider_video_actions.triggers.job_poll import shared_hook

        return await shared_hook(self.spec.gcp_conn_id, self.spec.impersonation_chain)

    # -- Airflow >= 3.3: the triggerer runs one poll per key and fans it out ---------------------

    def shared_stream_key(self) -> Hashable | None:
        """Waits with the same connection, project, region and interval share one poll (Airflow >= 3.3)."""
        return self.spec.poll_key() if AIRFLOW_V_3_3_PLUS and not self._bad_job_name() else None

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """The group's poll loop, from the kwargs of its first trigger (all of which are in the key)."""
        async for snapshot in job_snapshots(WaitSpec(**kwargs).poll_key()):
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
        if message := self._bad_job_name():
            yield TriggerEvent(
                {"status": "error", "job_name": self.job_name, "message": message, "bad_parameter": True}
            )
            return
        try:
            yield TriggerEvent(await self.wait())
        except asyncio.CancelledError:
            legacy = not AIRFLOW_V_3_3_PLUS and self.task_instance is not None
            if legacy and self.spec.cancel_on_kill:
                # Unreadable state while the triggerer stops: most likely a restart, so keep the job.
                await self._shielded(self._cancel_if_user_acted(cancel_when_unknown=False))
            raise

    def _bad_job_name(self) -> str | None:
        """What is wrong with ``job_name`` as the triggerer rendered it (a sensor's ``start_from_trigger``), if any."""
        try:
            parse_job_name(self.job_name)
        except VideoActionsValueError as exc:
            return str(exc)
        return None

    async def wait(self) -> dict[str, Any]:
        """The event payload, from the process-wide poll (also how worker-mode polling waits)."""
        async with aclosing(subscribe(self.spec.poll_key())) as snapshots:
            return await self._watch(snapshots)

    def wait_in_worker(self) -> dict[str, Any]:
        """Worker mode: :meth:`wait` on an event loop in a thread of its own, this thread blocked on the result.

        Kill signals are handled on the main thread. With the loop there, Airflow 2's SIGTERM handler
        could raise inside a running asyncio task (the shared poll's), where asyncio keeps the exception
        and the wait never ends. Blocked here instead, the caller gets it, and the wait is cancelled.
        """
        outcome: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        running: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = (
            concurrent.futures.Future()
        )

        async def main() -> dict[str, Any]:
            running.set_result((asyncio.get_running_loop(), asyncio.current_task()))  # type: ignore[arg-type]
            return await self.wait()

        def serve() -> None:
            try:
                outcome.set_result(asyncio.run(main()))
            except BaseException as exc:  # handed to the waiting caller, whatever it is
                outcome.set_exception(exc)

        thread = threading.Thread(target=serve, name=f"wait for {self.job_name}", daemon=True)
        thread.start()
        try:
            return outcome.result()
        finally:
            if not outcome.done():
                # The loop may not have started yet, or may have closed since: either way nothing to cancel.
                with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                    loop, task = running.result(WORKER_WAIT_CANCEL_SECONDS)
                    loop.call_soon_threadsafe(task.cancel)
                thread.join(WORKER_WAIT_CANCEL_SECONDS)

    async def _task_state(self) -> str | None:
        """The task instance's state now (``deferred`` while it waits; None once cleared), within 2 s."""
        from asgiref.sync import sync_to_async

        ti = self.task_instance
        if not AIRFLOW_V_3_0_PLUS:
            await asyncio.wait_for(
                sync_to_async(ti.refresh_from_db, thread_sensitive=False)(), ON_KILL_DECISION_SECONDS
            )
            return ti.state
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        read = sync_to_async(RuntimeTaskInstance.get_task_states, thread_sensitive=False)
        states = await asyncio.wait_for(
            read(dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index),
            ON_KILL_DECISION_SECONDS,
        )
        # The execution API keys a mapped task instance as "<task_id>_<map_index>".
        key = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
        return states.get(ti.run_id, {}).get(key)

    async def _watch(self, snapshots: AsyncIterator[Snapshot | None]) -> dict[str, Any]:
        """Follow the job through snapshots until it ends; read it directly when the list lacks it or is down."""
        progress, summary, list_failures = _Progress(self.job_name, self.log), None, 0
        deadline = self.spec.deadline
        while True:
            remaining = None if deadline is None else deadline - time.time()
            try:
                snapshot = await asyncio.wait_for(anext(snapshots), timeout=remaining)
            except asyncio.TimeoutError:
                return await self._timeout(summary)
            list_failures = list_failures + 1 if snapshot is None else 0
            if snapshot is None and list_failures < LIST_FAILURES_BEFORE_DIRECT_READS:
                continue
            try:
                summary = (snapshot or {}).get(self.job_name) or await self._read(progress) or summary
            except Exception as exc:
                return self._error(exc)
            if summary is not None:
                progress.report(summary)
                if summary["state"] in TERMINAL_STATES:
                    return self._done(summary)

    def _done(self, summary: dict[str, Any]) -> dict[str, Any]:
        """The done event; a re-attached job's also says so, with the deadline (see :attr:`WaitSpec.adopted`)."""
        if self.spec.adopted:
            return {"status": "done", "job": summary, "adopted": True, "deadline": self.spec.deadline}
        return {"status": "done", "job": summary}

    async def _timeout(self, summary: dict[str, Any] | None) -> dict[str, Any]:
        """The timeout event, unless one last read finds the job finished (a success at the deadline is kept)."""
        try:
            summary = await self._read(None) or summary
        except Exception:
            self.log.warning("Could not read %s at its deadline", self.job_name, exc_info=True)
        if summary is not None and summary["state"] in TERMINAL_STATES:
            return {"status": "done", "job": summary}
        return {
            "status": "timeout",
            "job_name": self.job_name,
            "message": f"Batch prediction job {self.job_name} did not finish before the task's timeout.",
            "job": summary,
        }

    def _error(self, exc: Exception) -> dict[str, Any]:
        """The error event for a permanent read error, naming the job and the likely fix."""
        from airflow_provider_video_actions.hooks.batch_prediction import explain_read_error

        return {"status": "error", "job_name": self.job_name, "message": explain_read_error(exc, self.job_name)}

    async def _read(self, progress: _Progress | None) -> dict[str, Any] | None:
        """One direct read; None after a transient error (tried again at the next poll, warned once per streak)."""
        hooks = await hooks_module()
        try:
            return job_summary(await (await self._hook()).get_job(self.job_name))
        except hooks.TRANSIENT_ERRORS as exc:
            if not hooks.is_transient(exc):  # an endpoint that does not resolve: permanent
                raise
            if progress is not None:
                progress.read_failed(exc)
            return None

    async def on_kill(self) -> None:
        """Cancel the job when a user marks the deferred task failed/success or clears it (Airflow >= 3.3).

        The triggerer also calls this when a trigger merely moves to another triggerer, so the job is
        kept while the task is still deferred; if the task state cannot be read within 2 s, the job is
        cancelled (an orphaned job costs money silently, a cancelled one fails its task loudly).
        """
        if self.spec.cancel_on_kill:
            await self._shielded(self._cancel_if_user_acted(cancel_when_unknown=True))

    async def _shielded(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` to its end even if this trigger is cancelled again meanwhile.

        The triggerer re-sends a trigger's cancel at each sync with its supervisor (about every second)
        until the trigger ends, which would cancel a state read or a cancel call half-way. The task is
        kept on the trigger: the event loop holds tasks only weakly, and a shielded one must not be
        collected before it is done.
        """
        self._kill_work = asyncio.ensure_future(work)
        await asyncio.shield(self._kill_work)

    async def _cancel_if_user_acted(self, *, cancel_when_unknown: bool) -> None:
        """Cancel the job unless its task is still deferred (a triggerer restart, or the trigger moved)."""
        try:
            acted = self.task_instance is None or await self._task_state() != "deferred"
        except Exception as exc:
            self.log.warning("Could not read the task's state (%r) for %s", exc, self.job_name)
            acted = cancel_when_unknown
        if not acted:
            self.log.info("Task still deferred (trigger moved or triggerer restarting): keeping %s", self.job_name)
            return
        self.log.info("Task killed by a user: cancelling %s", self.job_name)
        try:
            await (await self._hook()).cancel_job(self.job_name)
        except Exception:  # shielded: nobody else would see it
            self.log.exception("Cancelling %s failed: the job may still be running; cancel it by hand", self.job_name)


class _Progress:
    """Logs state changes and completion counts once each, not on every poll."""

    def __init__(self, job_name: str, log: Any) -> None:
        self.job_name, self._log = job_name, log
        self.last: tuple[Any, ...] | None = None
        self.last_read_error = ""

    def read_failed(self, exc: Exception) -> None:
        """Warn about a failed direct read once per distinct error, not at every poll."""
        if str(exc) != self.last_read_error:
            self.last_read_error = str(exc)
            self._log.warning("Reading %s failed (%s); trying again at each poll", self.job_name, exc)

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
