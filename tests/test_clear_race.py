"""Clearing a deferred task: try 2 never ends on the job try 1's kill is cancelling (issue 18, item 11).

Clearing kills try 1, whose trigger's ``on_kill`` cancels the job; Vertex AI applies a cancel asynchronously.
Both orders are driven here with the real operator, trigger and emulator over gRPC: the cancel lands before
try 2 looks, or try 2 re-attaches first and the cancel lands under it (the emulator holds the accepted cancel,
``hold_cancels``, until the test releases it). The Airflow task runner cannot be paused between a kill and a
re-run in ``dag.test()``, so each try's context is a small stand-in: the task instance the operator reads, and
a dict-backed task state store (Airflow >= 3.3) or none (Airflow < 3.3, or a store that lost the job).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from airflow_provider_video_actions.job import ACTIVE_STATES
from airflow_provider_video_actions.links import JOB_NAME_XCOM_KEY
from tests import test_trigger
from tests.conftest import BUCKET, run_when
from tests.test_trigger import DeferredTask

DAG_ID, TASK_ID = "clear_race", "predict"
task_state_reads = test_trigger.task_state_reads  # the fixture answering the trigger's task-state read


@dataclass
class TryOfTask:
    """The task instance of one try as the operator reads it from its context."""

    try_number: int
    run_id: str
    dag_id: str = DAG_ID
    task_id: str = TASK_ID
    map_index: int = -1
    stats_tags: dict[str, str] = field(default_factory=dict)
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


class TaskStateStore(dict):
    """The task state store of one task instance (shared by its tries), as ``get``/``set``."""

    def set(self, key: str, value: Any, **_: Any) -> None:
        self[key] = value


@dataclass
class Cleared:
    """Try 1 of a task instance (its run id names the test), deferred on its job; the store its tries share."""

    trigger: Any
    store: TaskStateStore | None
    run_id: str

    @property
    def display_name(self) -> str:
        """The display name of the task instance's jobs (the run id: one per test)."""
        return self.run_id

    def context(self, try_number: int) -> dict[str, Any]:
        """One try's context: its task instance and, when there is one, the task state store."""
        store = {} if self.store is None else {"task_state_store": self.store}
        return {"ti": TryOfTask(try_number, self.run_id), **store}

    def operator(self, deferrable: bool = True) -> Any:
        """A fresh submit operator, as Airflow builds one for each try and for each resume after a deferral."""
        from airflow_provider_video_actions import VideoActionBatchPredictionOperator

        return VideoActionBatchPredictionOperator(
            task_id=TASK_ID,
            project_id="test-project",
            region="us-central1",
            model="42",
            gcs_source=f"gs://{BUCKET}/instances/wave.jsonl",
            gcs_destination_prefix=f"gs://{BUCKET}/out",
            job_display_name=self.display_name,
            poll_interval=0.1,
            min_poll_interval=0.1,
            deferrable=deferrable,
        )

    def kill_try_1(self, task_state_reads) -> None:
        """The triggerer's ``on_kill`` after a clear: the task is no longer deferred (here: queued), so it cancels."""
        ti = DeferredTask("queued", dag_id=DAG_ID, task_id=TASK_ID, run_id=self.run_id)
        self.trigger.task_instance = task_state_reads(ti)
        asyncio.run(self.trigger.on_kill())

    def run_to_the_end(self, ctx: dict[str, Any], deferred: TaskDeferred) -> dict[str, Any]:
        """Wait on each deferral's trigger and resume a fresh operator with its event, as triggerer and worker do."""
        for _ in range(5):
            event = asyncio.run(deferred.trigger.wait())
            try:
                return getattr(self.operator(), deferred.method_name)(ctx, event, **(deferred.kwargs or {}))
            except TaskDeferred as again:
                deferred = again
        raise AssertionError("the task deferred more than five times")


def deferral(call: Callable[[], Any]) -> TaskDeferred:
    """The deferral ``call`` raises (it must defer)."""
    with pytest.raises(TaskDeferred) as deferred:
        call()
    return deferred.value


def jobs_named(emulator, display_name: str) -> list[Any]:
    """The emulator's jobs of this display name, oldest first."""
    return [emulator.job(name) for name in emulator.created if emulator.job(name).display_name == display_name]


@pytest.fixture
def try_1(emulator, instances_uri, request) -> Cleared:
    """Try 1 deferred on its job, which the emulator holds PAUSED (live)."""
    store = TaskStateStore() if request.param else None
    cleared = Cleared(None, store, f"manual__{request.node.name}")
    emulator.force_outcome("JOB_STATE_PAUSED", display_name=cleared.display_name)
    cleared.trigger = deferral(lambda: cleared.operator().execute(cleared.context(1))).trigger
    [job] = jobs_named(emulator, cleared.display_name)
    assert cleared.trigger.job_name == job.name
    return cleared


#: With a task state store (Airflow >= 3.3), and without one (Airflow < 3.3: re-attached through the task label).
STORES = pytest.mark.parametrize("try_1", [True, False], ids=["task-state-store", "no-store"], indirect=True)


@STORES
def test_cancel_landing_before_try_2_looks_gets_a_new_job(emulator, try_1, task_state_reads, capfd):
    try_1.kill_try_1(task_state_reads)
    emulator.force_outcome(None, try_1.display_name)
    ctx = try_1.context(2)
    summary = try_1.run_to_the_end(ctx, deferral(lambda: try_1.operator().execute(ctx)))
    old, new = jobs_named(emulator, try_1.display_name)
    assert old.state.name in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")
    assert (summary["name"], summary["state"]) == (new.name, "JOB_STATE_SUCCEEDED")
    assert ctx["ti"].xcoms[JOB_NAME_XCOM_KEY] == new.name
    assert f"Not re-attaching to {old.name}, an earlier try's job for this request" in capfd.readouterr().out


def reattached_before_the_cancel_lands(emulator, try_1: Cleared, task_state_reads) -> tuple[dict, TaskDeferred]:
    """Try 1's kill sends the cancel, Vertex AI accepts it but has not applied it when try 2 re-attaches; then it
    lands under try 2. Try 2's context, and its deferral on the (now cancelling) job."""
    emulator.hold_cancels(try_1.display_name)
    try_1.kill_try_1(task_state_reads)
    ctx = try_1.context(2)
    deferred = deferral(lambda: try_1.operator().execute(ctx))
    [old] = jobs_named(emulator, try_1.display_name)
    assert deferred.trigger.job_name == old.name and old.state.name in ACTIVE_STATES  # try 2 re-attached
    emulator.release_cancels(try_1.display_name)
    emulator.force_outcome(None, try_1.display_name)
    return ctx, deferred


@STORES
def test_try_2_reattaching_before_the_cancel_lands_replaces_the_job_once(
    emulator,
    try_1,
    task_state_reads,
    capfd,
):
    """Seen on a real Airflow under load: try 2 adopted the RUNNING job, the cancel landed, the run failed."""
    ctx, deferred = reattached_before_the_cancel_lands(emulator, try_1, task_state_reads)
    summary = try_1.run_to_the_end(ctx, deferred)
    old, new = jobs_named(emulator, try_1.display_name)
    assert old.state.name == "JOB_STATE_CANCELLED"
    assert (summary["name"], summary["state"]) == (new.name, "JOB_STATE_SUCCEEDED")
    assert ctx["ti"].xcoms[JOB_NAME_XCOM_KEY] == new.name
    assert (
        f"{old.name}, re-attached from an earlier try of this task, ended JOB_STATE_CANCELLED" in capfd.readouterr().out
    )
    if try_1.store:  # Airflow >= 3.3: a later retry reconnects to the new job, not the cancelled one
        assert try_1.store["batch_prediction_job"] == new.name


@pytest.mark.parametrize("try_1", [False], ids=["no-store"], indirect=True)
def test_a_replacement_cancelled_too_fails_naming_it(emulator, try_1, task_state_reads):
    """Bounded: the job submitted in place of a cancelled one is not replaced again; its cancel fails the task."""
    ctx, deferred = reattached_before_the_cancel_lands(emulator, try_1, task_state_reads)
    event = asyncio.run(deferred.trigger.wait())
    replaced = deferral(lambda: try_1.operator().execute_complete(ctx, event))
    new = replaced.trigger.job_name
    emulator.job_client().cancel_batch_prediction_job(name=new)
    with pytest.raises(AirflowException, match=f"{new} ended in JOB_STATE_CANCELLED"):
        try_1.run_to_the_end(ctx, replaced)
    assert len(jobs_named(emulator, try_1.display_name)) == 2


def test_held_cancel_is_accepted_and_lands_on_release(emulator, submit_job):
    """The emulator's model of Vertex AI's asynchronous cancel: accepted, the job still live until released."""
    emulator.force_outcome("JOB_STATE_PAUSED", display_name="held-cancel")
    name = submit_job("held-cancel")
    emulator.hold_cancels("held-cancel")
    emulator.job_client().cancel_batch_prediction_job(name=name)
    assert emulator.job(name).state.name != "JOB_STATE_CANCELLING"
    emulator.release_cancels("held-cancel")
    assert emulator.job(name).state.name == "JOB_STATE_CANCELLING"


@pytest.mark.parametrize("try_1", [False], ids=["no-store"], indirect=True)
def test_no_replacement_once_the_timeout_has_passed(emulator, try_1, task_state_reads):
    """A re-attached job cancelled at the task's deadline is named in the failure; no job is made to be cancelled."""
    ctx, deferred = reattached_before_the_cancel_lands(emulator, try_1, task_state_reads)
    event = {**asyncio.run(deferred.trigger.wait()), "deadline": time.time() - 1}
    old = event["job"]["name"]
    with pytest.raises(AirflowException, match=f"{old}, re-attached .* the task's timeout has passed"):
        try_1.operator().execute_complete(ctx, event)
    assert len(jobs_named(emulator, try_1.display_name)) == 1


@pytest.mark.parametrize("try_1", [True], ids=["task-state-store"], indirect=True)
def test_worker_mode_try_2_replaces_a_job_cancelled_while_it_polls(emulator, try_1, task_state_reads, capfd):
    """Try 2 waits in the worker (deferrable=False): the cancel lands once it polls; it replaces the job and returns."""
    emulator.hold_cancels(try_1.display_name)
    try_1.kill_try_1(task_state_reads)
    polls = sum(n for f, n in emulator.list_filters.items() if "create_time" in f)

    def try_2_polls() -> bool:
        return sum(n for f, n in emulator.list_filters.items() if "create_time" in f) > polls

    def cancel_lands() -> None:
        emulator.release_cancels(try_1.display_name)
        emulator.force_outcome(None, try_1.display_name)

    with run_when(try_2_polls, cancel_lands):
        summary = try_1.operator(deferrable=False).execute(try_1.context(2))
    old, new = jobs_named(emulator, try_1.display_name)
    assert old.state.name == "JOB_STATE_CANCELLED"
    assert (summary["name"], summary["state"]) == (new.name, "JOB_STATE_SUCCEEDED")
    assert not try_1.store or try_1.store["batch_prediction_job"] == new.name
    assert (
        f"{old.name}, re-attached from an earlier try of this task, ended JOB_STATE_CANCELLED" in capfd.readouterr().out
    )
