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


async def test_transient_errors_are_retried(submit_job, emulator):
    name = submit_job()
    emulator.fail_next("GetBatchPredictionJob", 3, grpc.StatusCode.UNAVAILABLE)
    emulator.fail_next("GetBatchPredictionJob", 1, grpc.StatusCode.RESOURCE_EXHAUSTED)
    before = emulator.faults["GetBatchPredictionJob"]
    event = await first_event(trigger(name, poll_interval=0.05))
    assert event["status"] == "done"
    assert emulator.faults["GetBatchPredictionJob"] - before == 4


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
