"""The deferrable wait, against the emulator over real gRPC: every state, faults, deadline, kill."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc
import pytest

from airflow_provider_video_actions.triggers.wait import VideoActionBatchPredictionTrigger
from tests.conftest import job_cancelled, running_job


def trigger(job_name: str, **kwargs) -> VideoActionBatchPredictionTrigger:
    return VideoActionBatchPredictionTrigger(job_name, **{"poll_interval": 0.05, **kwargs})


async def first_event(t: VideoActionBatchPredictionTrigger) -> dict:
    events = [event.payload async for event in t.run()]
    assert len(events) == 1
    return events[0]


def test_serialize_round_trips_primitives_only():
    t = trigger(
        "projects/p/locations/us-central1/batchPredictionJobs/1",
        gcp_conn_id="conn",
        impersonation_chain=["a@b.iam.gserviceaccount.com"],
        deadline=123.5,
        cancel_on_kill=False,
    )
    classpath, kwargs = t.serialize()
    assert classpath == "airflow_provider_video_actions.triggers.wait.VideoActionBatchPredictionTrigger"
    assert all(isinstance(v, (str, int, float, bool, list, type(None))) for v in kwargs.values())
    again = VideoActionBatchPredictionTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)


async def test_succeeded_job_yields_done_with_summary(submit_job, emulator):
    name = submit_job()
    event = await first_event(trigger(name))
    assert event["status"] == "done"
    job = event["job"]
    assert job["name"] == name and job["state"] == "JOB_STATE_SUCCEEDED"
    assert job["completion_stats"]["successful_count"] == 1
    assert job["output_directory"].startswith("gs://")


@pytest.mark.parametrize(
    "state",
    ["JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED", "JOB_STATE_PARTIALLY_SUCCEEDED"],
)
async def test_each_terminal_state_ends_the_wait(submit_job, emulator, state):
    emulator.force_outcome(state, display_name=f"forced-{state}")
    name = submit_job(f"forced-{state}")
    event = await first_event(trigger(name))
    assert event["status"] == "done"
    assert event["job"]["state"] == state


async def test_paused_job_is_not_success_and_times_out(submit_job, emulator):
    emulator.force_outcome("JOB_STATE_PAUSED", display_name="paused")
    name = submit_job("paused")
    event = await first_event(trigger(name, deadline=time.time() + 1.5))
    assert event["status"] == "timeout"
    assert event["job_name"] == name and name in event["message"]
    assert event["job"]["state"] == "JOB_STATE_PAUSED"


@pytest.mark.parametrize(
    ("labels", "method"),
    [(None, "ListBatchPredictionJobs"), ({}, "GetBatchPredictionJob")],
    ids=["shared-list", "direct-read"],
)
async def test_transient_errors_are_retried(submit_job, emulator, labels, method):
    name = submit_job(labels=labels)
    emulator.fail_next(method, 3, grpc.StatusCode.UNAVAILABLE)
    emulator.fail_next(method, 1, grpc.StatusCode.RESOURCE_EXHAUSTED)
    before = emulator.faults[method]
    event = await first_event(trigger(name, poll_interval=0.05))
    assert event["status"] == "done"
    assert emulator.faults[method] - before == 4


async def test_many_waits_share_one_list_per_poll(submit_job, emulator):
    """40 waits on labelled jobs: the job service sees one list call per poll of ONE loop, and no read per job.

    The test holds its own subscription so the loop outlives the waits; its snapshot count is then the
    number of polls, whatever the machine's speed, and every list call must be one of them.
    """
    import asyncio

    from airflow_provider_video_actions.triggers import job_poll

    names = [submit_job(f"shared-{i}") for i in range(40)]
    key = trigger(names[0], poll_interval=0.2).spec.poll_key()
    gets, lists = emulator.calls["GetBatchPredictionJob"], emulator.calls["ListBatchPredictionJobs"]
    witness = job_poll.subscribe(key)
    await anext(witness)
    events = await asyncio.gather(*(trigger(name, poll_interval=0.2).wait() for name in names))
    polls = job_poll._fanouts[asyncio.get_running_loop()][key].version
    await witness.aclose()
    assert [e["status"] for e in events] == ["done"] * 40
    assert {e["job"]["name"] for e in events} == set(names)
    assert emulator.calls["GetBatchPredictionJob"] == gets
    # A list call may be in flight when the version is read: at most one more than the polls seen.
    assert polls <= emulator.calls["ListBatchPredictionJobs"] - lists <= polls + 1


async def test_unlabelled_job_is_read_directly(submit_job, emulator):
    name = submit_job("foreign", labels={})
    gets = emulator.calls["GetBatchPredictionJob"]
    event = await first_event(trigger(name))
    assert event["status"] == "done"
    assert emulator.calls["GetBatchPredictionJob"] > gets


async def test_permanent_error_yields_error_event_naming_the_job(emulator):
    name = "projects/test-project/locations/us-central1/batchPredictionJobs/999999"
    event = await first_event(trigger(name))
    assert event["status"] == "error"
    assert event["job_name"] == name
    assert name in event["message"] and "not found" in event["message"].lower()


def paused_job(submit_job, emulator, display_name: str) -> str:
    """A job the emulator holds PAUSED, so it is still live when the test acts on it."""
    emulator.force_outcome("JOB_STATE_PAUSED", display_name=display_name)
    return submit_job(display_name)


async def cancel_while_polling(t: VideoActionBatchPredictionTrigger, emulator) -> None:
    """Start the trigger's run(), let it poll once, then cancel it as the triggerer would."""
    import asyncio

    lists = emulator.calls["ListBatchPredictionJobs"]
    waiting = asyncio.ensure_future(first_event(t))
    while emulator.calls["ListBatchPredictionJobs"] == lists:
        await asyncio.sleep(0.02)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_on_kill_cancels_the_job(submit_job, emulator):
    name = paused_job(submit_job, emulator, "killed")
    await trigger(name).on_kill()
    assert job_cancelled(emulator, name)


async def test_on_kill_keeps_the_job_when_asked(submit_job, emulator):
    name = paused_job(submit_job, emulator, "kept")
    cancels = emulator.calls["CancelBatchPredictionJob"]
    await trigger(name, cancel_on_kill=False).on_kill()
    assert emulator.calls["CancelBatchPredictionJob"] == cancels
    assert not job_cancelled(emulator, name)


@dataclass
class DeferredTask:
    """The trigger's task instance as the triggerer hands it over; ``state`` is what the metadata DB says now."""

    state: str | None
    map_index: int = -1
    dag_id: str = "dag"
    task_id: str = "predict"
    run_id: str = "run"

    def refresh_from_db(self) -> None:
        """Airflow 2's read of the state (it is already current here)."""


@pytest.fixture
def task_state_reads(monkeypatch: pytest.MonkeyPatch):
    """Answer the execution API's task-state read (the triggerer's supervisor channel does not run here).

    Keys follow the API: ``task_id``, or ``task_id_<map_index>`` for a mapped task instance.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    def attach(ti: DeferredTask, *, fails: bool = False) -> DeferredTask:
        if AIRFLOW_V_3_0_PLUS:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            def get_task_states(dag_id, task_ids, run_ids, map_index):
                if fails:
                    raise ConnectionError("supervisor channel closed")
                assert (dag_id, task_ids, run_ids, map_index) == (ti.dag_id, [ti.task_id], [ti.run_id], ti.map_index)
                key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
                return {ti.run_id: {key: ti.state}}

            monkeypatch.setattr(RuntimeTaskInstance, "get_task_states", staticmethod(get_task_states))
        elif fails:

            def refresh_from_db() -> None:
                raise ConnectionError("metadata DB gone")

            monkeypatch.setattr(ti, "refresh_from_db", refresh_from_db)
        return ti

    return attach


@pytest.mark.parametrize(
    ("state", "map_index", "cancels"),
    [
        ("deferred", -1, False),  # the trigger moved to another triggerer
        ("failed", -1, True),  # marked failed
        ("success", -1, True),  # marked success
        (None, -1, True),  # cleared (or the run deleted)
        ("deferred", 3, False),
        ("failed", 3, True),  # a mapped task instance, keyed task_id_3 by the API
    ],
)
async def test_on_kill_cancels_only_when_a_user_acted(
    submit_job, emulator, task_state_reads, state, map_index, cancels
):
    name = paused_job(submit_job, emulator, f"kill-{state}-{map_index}")
    t = trigger(name)
    t.task_instance = task_state_reads(DeferredTask(state, map_index))
    await t.on_kill()
    assert job_cancelled(emulator, name) is cancels


async def test_on_kill_cancels_when_the_task_state_cannot_be_read(submit_job, emulator, task_state_reads):
    name = paused_job(submit_job, emulator, "kill-unreadable")
    t = trigger(name)
    t.task_instance = task_state_reads(DeferredTask("deferred"), fails=True)
    await t.on_kill()
    assert job_cancelled(emulator, name)


@pytest.mark.parametrize(
    ("state", "fails", "cancels"),
    [("failed", False, True), (None, False, True), ("deferred", False, False), ("deferred", True, False)],
    ids=["marked-failed", "cleared", "triggerer-restart", "state-unreadable"],
)
async def test_before_3_3_cancelled_run_cancels_only_when_a_user_acted(
    submit_job, emulator, task_state_reads, monkeypatch, state, fails, cancels
):
    """Airflow < 3.3 has no trigger on_kill: a cancelled run() reads the task state (forced here on 3.3 too)."""
    from airflow_provider_video_actions.triggers import wait

    monkeypatch.setattr(wait, "AIRFLOW_V_3_3_PLUS", False)
    name = paused_job(submit_job, emulator, f"legacy-{state}-{fails}")
    t = trigger(name)
    t.task_instance = task_state_reads(DeferredTask(state), fails=fails)
    await cancel_while_polling(t, emulator)
    assert job_cancelled(emulator, name) is cancels


@pytest.mark.parametrize("on_kill", [True, False], ids=["on_kill", "cancelled-run-before-3.3"])
async def test_sensor_s_wait_killed_by_a_user_leaves_the_running_job_running(
    submit_job, emulator, task_state_reads, monkeypatch, on_kill
):
    """The sensor's deferred wait is killed (its task marked failed) while the job runs: the job is not cancelled."""
    from airflow_provider_video_actions.sensors.wait import VideoActionBatchPredictionSensor
    from airflow_provider_video_actions.triggers import wait

    name = running_job(submit_job, emulator, f"sensor-killed-{on_kill}")
    sensor = VideoActionBatchPredictionSensor(
        task_id="wait", job_name=name, poke_interval=0.1, min_poll_interval=0.1, start_from_trigger=True
    )
    t = VideoActionBatchPredictionTrigger(**sensor.start_trigger_args.trigger_kwargs)
    t.task_instance = task_state_reads(DeferredTask("failed", task_id="wait"))
    cancels = emulator.calls["CancelBatchPredictionJob"]
    if on_kill:
        await t.on_kill()
    else:
        monkeypatch.setattr(wait, "AIRFLOW_V_3_3_PLUS", False)
        await cancel_while_polling(t, emulator)
    assert emulator.calls["CancelBatchPredictionJob"] == cancels
    assert emulator.job(name).state.name == "JOB_STATE_RUNNING"


async def test_triggerer_restart_does_not_cancel_the_job(submit_job, emulator):
    """A run() cancelled without a user action (triggerer shutdown or restart) leaves the job running."""
    name = paused_job(submit_job, emulator, "restart")
    cancels = emulator.calls["CancelBatchPredictionJob"]
    await cancel_while_polling(trigger(name), emulator)
    assert emulator.calls["CancelBatchPredictionJob"] == cancels
    assert not job_cancelled(emulator, name)


async def test_shared_stream_contract(submit_job, emulator):
    """The Airflow >= 3.3 shared-stream methods: one key, one open stream, one event per filter."""
    import asyncio

    names = [submit_job(f"stream-{i}") for i in range(3)]
    triggers = [trigger(name) for name in names]
    keys = {t.spec.poll_key() for t in triggers}
    assert len(keys) == 1
    queues = [asyncio.Queue() for _ in triggers]

    async def pump():
        async for snapshot in VideoActionBatchPredictionTrigger.open_shared_stream(triggers[0].serialize()[1]):
            for queue in queues:
                queue.put_nowait(snapshot)

    async def from_queue(queue):
        while True:
            yield await queue.get()

    async def events(t, queue):
        return [event.payload async for event in t.filter_shared_stream(from_queue(queue))]

    poller = asyncio.ensure_future(pump())
    results = await asyncio.wait_for(asyncio.gather(*(events(t, q) for t, q in zip(triggers, queues, strict=True))), 60)
    poller.cancel()
    assert [[e["job"]["name"] for e in r] for r in results] == [[name] for name in names]
