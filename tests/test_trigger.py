"""The deferrable wait, against the emulator over real gRPC: every state, faults, deadline, kill."""

from __future__ import annotations

import time

import grpc
import pytest

from airflow_provider_video_actions.triggers.wait import VideoActionBatchPredictionTrigger


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
    """40 waits on labelled jobs: the job service sees list calls per poll, not a read per job."""
    import asyncio

    names = [submit_job(f"shared-{i}") for i in range(40)]
    gets, lists = emulator.calls["GetBatchPredictionJob"], emulator.calls["ListBatchPredictionJobs"]
    events = await asyncio.gather(*(trigger(name, poll_interval=0.2).wait() for name in names))
    assert [e["status"] for e in events] == ["done"] * 40
    assert {e["job"]["name"] for e in events} == set(names)
    assert emulator.calls["GetBatchPredictionJob"] == gets
    polls = emulator.calls["ListBatchPredictionJobs"] - lists
    assert 1 <= polls <= 30, polls


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


async def test_on_kill_cancels_the_job(submit_job, emulator):
    emulator.force_outcome("JOB_STATE_PAUSED", display_name="killed")
    name = submit_job("killed")
    await trigger(name).on_kill()
    assert emulator.job(name).state.name in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")


async def test_on_kill_keeps_the_job_when_asked(submit_job, emulator):
    emulator.force_outcome("JOB_STATE_PAUSED", display_name="kept")
    name = submit_job("kept")
    cancels = emulator.calls["CancelBatchPredictionJob"]
    await trigger(name, cancel_on_kill=False).on_kill()
    assert emulator.calls["CancelBatchPredictionJob"] == cancels
    assert emulator.job(name).state.name not in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")


async def test_triggerer_restart_does_not_cancel_the_job(submit_job, emulator):
    """A run() cancelled without a user action (triggerer shutdown or restart) leaves the job running."""
    import asyncio

    emulator.force_outcome("JOB_STATE_PAUSED", display_name="restart")
    name = submit_job("restart")
    cancels = emulator.calls["CancelBatchPredictionJob"]
    waiting = asyncio.ensure_future(first_event(trigger(name)))
    await asyncio.sleep(0.5)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert emulator.calls["CancelBatchPredictionJob"] == cancels
    assert emulator.job(name).state.name not in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")


async def test_shared_stream_contract(submit_job, emulator):
    """The Airflow >= 3.3 shared-stream methods: one key, one open stream, one event per filter."""
    import asyncio

    names = [submit_job(f"stream-{i}") for i in range(3)]
    triggers = [trigger(name) for name in names]
    keys = {t._poll_key() for t in triggers}
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
    results = await asyncio.gather(*(events(t, q) for t, q in zip(triggers, queues, strict=True)))
    poller.cancel()
    assert [[e["job"]["name"] for e in r] for r in results] == [[name] for name in names]
