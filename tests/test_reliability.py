"""No duplicate jobs, no orphaned jobs, transient faults survived: against the emulator's fault knobs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import grpc
import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

from airflow_provider_video_actions.job import TASK_LABEL
from airflow_provider_video_actions.triggers.wait import VideoActionBatchPredictionTrigger
from tests.conftest import (
    BUCKET,
    PATIENCE,
    job_cancelled,
    run_dag,
    run_dag_script,
    run_when,
    task_states,
    write_dag,
    xcom_value,
)

FIXED_DATE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def submit_task(task_id: str, instances_uri: str, deferrable: bool = True, **extra: object) -> str:
    options = "".join(f", {key}={value!r}" for key, value in extra.items())
    return f"""
    VideoActionBatchPredictionOperator(
        task_id={task_id!r}, project_id="test-project", region="us-central1", model="42",
        gcs_source={instances_uri!r}, gcs_destination_prefix="gs://{BUCKET}/out",
        job_display_name=dag.dag_id + ".{task_id}", poll_interval=0.1, min_poll_interval=0.1, deferrable={deferrable}{options},
    )
    """


def creates_for(emulator, display_name: str) -> int:
    """Jobs created with this display name (``dag.task``), or under this ``dag.`` prefix."""
    names = [emulator.job(name).display_name for name in emulator.created]
    return sum(1 for n in names if n == display_name or (display_name.endswith(".") and n.startswith(display_name)))


SUBMISSIONS = 8


def test_ten_percent_faults_on_every_call_are_survived(airflow_db, emulator, instances_uri, submit_job):
    """50 concurrent deferred waits and 8 submissions under 10% transient faults all succeed, one create each.

    (8 submissions, not more: each is a task of a ``dag.test`` run, which costs ~5 s on Airflow 3, on four lines.)
    """
    jobs = [submit_job(f"faults-wait-{i}") for i in range(50)]
    write_dag("faults", "\n".join(submit_task(f"predict_{i}", instances_uri) for i in range(SUBMISSIONS)))
    emulator.inject_faults(0.10, code=grpc.StatusCode.UNAVAILABLE, seed=7)
    faults_before, calls_before = sum(emulator.faults.values()), sum(emulator.calls.values())

    async def wait_all():
        triggers = [VideoActionBatchPredictionTrigger(name, poll_interval=0.1) for name in jobs]
        return await asyncio.gather(*(t.wait() for t in triggers))

    events = asyncio.run(wait_all())
    run = run_dag("faults")
    injected = sum(emulator.faults.values()) - faults_before
    calls = sum(emulator.calls.values()) - calls_before
    emulator.inject_faults(0.0)

    assert [e["status"] for e in events] == ["done"] * 50
    assert {e["job"]["state"] for e in events} == {"JOB_STATE_SUCCEEDED"}
    assert set(task_states(run).values()) == {"success"}
    assert injected > 0  # seed 7 fails the 4th call; how many more depends on how many calls the run makes
    for i in range(SUBMISSIONS):
        assert creates_for(emulator, f"faults.predict_{i}") == 1
    print(
        f"faults injected={injected} of {calls} calls, waits=50 submissions={SUBMISSIONS} "
        f"creates={creates_for(emulator, 'faults.')}"
    )


def test_lost_create_response_does_not_create_twice(airflow_db, emulator, instances_uri):
    """The job is created but the answer is lost (DEADLINE_EXCEEDED): the retry finds it by label."""
    write_dag("lost_create", submit_task("predict", instances_uri))
    emulator.lose_next_response("CreateBatchPredictionJob", 1)
    run = run_dag("lost_create")
    assert task_states(run) == {"predict": "success"}
    assert creates_for(emulator, "lost_create.") == 1


@pytest.mark.parametrize("code", [grpc.StatusCode.UNKNOWN, grpc.StatusCode.PERMISSION_DENIED])
@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "worker"])
def test_create_answered_with_an_error_but_made_the_job_is_awaited(
    airflow_db, emulator, instances_uri, deferrable, code, capfd
):
    """The job is made but create answers a permanent error: the same try finds it by label and waits on it."""
    dag_id = f"create_error_{code.name.lower()}_{'deferred' if deferrable else 'worker'}"
    write_dag(dag_id, submit_task("predict", instances_uri, deferrable))
    emulator.lose_next_response("CreateBatchPredictionJob", 1, code)
    run = run_dag(dag_id)
    assert task_states(run) == {"predict": "success"}
    assert run.get_task_instance("predict").try_number == 1
    assert creates_for(emulator, f"{dag_id}.") == 1
    out = capfd.readouterr().out
    assert f"Creating the job answered {code.name}: Injected lost response" in out and "but it was made" in out


@contextlib.contextmanager
def when_first_try_ended(dag_id: str, task_id: str, action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` once the task's first try has ended (up for retry, or try 2 begun), read from the Airflow DB.

    Keyed on the task's state rather than a timer, so a slow machine cannot let the job finish inside try 1.
    """
    from airflow.utils.session import create_session
    from sqlalchemy import text

    # Plain SQL: configuring the ORM mappers from a second thread races the DAG run's own use of them.
    query = text("SELECT state, try_number FROM task_instance WHERE dag_id = :dag_id AND task_id = :task_id")

    def first_try_ended() -> bool:
        with create_session() as session:
            rows = session.execute(query, {"dag_id": dag_id, "task_id": task_id}).all()
        return any(state == "up_for_retry" or try_number >= 2 for state, try_number in rows)

    with run_when(first_try_ended, action):
        yield


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "worker"])
def test_retry_after_timeout_reattaches_from_task_state(airflow_db, emulator, instances_uri, deferrable):
    """Try 1 times out waiting (job kept: cancel_on_kill=False); try 2 reconnects to the same job."""
    dag_id = f"retry_state_{'deferred' if deferrable else 'worker'}"
    write_dag(
        dag_id,
        submit_task("predict", instances_uri, deferrable, retries=1, retry_delay=0, timeout=12, cancel_on_kill=False),
    )
    emulator.force_outcome("JOB_STATE_PAUSED", display_name=f"{dag_id}.predict")
    with when_first_try_ended(dag_id, "predict", lambda: emulator.force_outcome(None, f"{dag_id}.predict")):
        run = run_dag(dag_id)
    assert task_states(run) == {"predict": "success"}
    assert run.get_task_instance("predict").try_number == 2
    assert creates_for(emulator, f"{dag_id}.") == 1
    [name] = [n for n in emulator.created if emulator.job(n).display_name == f"{dag_id}.predict"]
    assert xcom_value(run, "predict")["name"] == name  # worker mode returned None here before
    if AIRFLOW_V_3_3_PLUS:  # try 2 took the job name from the task state store, not from a list by label
        task_lists = [f for f in emulator.list_filters.elements() if f"labels.{TASK_LABEL}=" in f]
        [job] = [emulator.job(n) for n in emulator.created if emulator.job(n).display_name == f"{dag_id}.predict"]
        assert sum(job.labels[TASK_LABEL] in f for f in task_lists) == 1


def start_worker(dag_id: str) -> subprocess.Popen:
    """Run a DAG with dag.test() in another process (a worker we can signal), at a fixed date."""
    script = run_dag_script(dag_id, FIXED_DATE)
    return subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy(), stdout=subprocess.DEVNULL)


def wait_while_worker_runs(worker: subprocess.Popen, done: Callable[[], bool]) -> None:
    """Check ``done`` until it holds, the worker process exits or PATIENCE runs out (an event, not a sleep)."""
    deadline = time.monotonic() + PATIENCE
    while not done() and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.05)


def wait_for_create(emulator, worker: subprocess.Popen, display_name: str) -> None:
    wait_while_worker_runs(worker, lambda: creates_for(emulator, display_name) > 0)
    assert creates_for(emulator, display_name) == 1


def wait_for_poll(emulator, worker: subprocess.Popen) -> None:
    """Wait until the task lists jobs again after its create: it is in the wait loop."""
    lists = emulator.calls["ListBatchPredictionJobs"]
    wait_while_worker_runs(worker, lambda: emulator.calls["ListBatchPredictionJobs"] > lists)
    assert emulator.calls["ListBatchPredictionJobs"] > lists, "the task never polled its job"


def test_killed_worker_mode_task_cancels_its_job(airflow_db, emulator, instances_uri):
    """SIGTERM to the worker runs the operator's on_kill, which cancels the job."""
    write_dag("killed_worker", submit_task("predict", instances_uri, deferrable=False))
    emulator.force_outcome("JOB_STATE_PAUSED", display_name="killed_worker.predict")
    worker = start_worker("killed_worker")
    wait_for_create(emulator, worker, "killed_worker.predict")
    wait_for_poll(emulator, worker)
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=PATIENCE)
    [name] = [n for n in emulator.created if emulator.job(n).display_name == "killed_worker.predict"]
    assert job_cancelled(emulator, name)


#: A worker-mode wait whose kill signal lands inside the shared poll's asyncio task, as Airflow 2's SIGTERM
#: handler (it raises AirflowTaskTerminated, a BaseException) can when the signal arrives mid-poll.
KILLED_IN_THE_POLL = """
import logging, os, signal, sys
from airflow_provider_video_actions.triggers.wait import VideoActionBatchPredictionTrigger

class Terminated(BaseException):
    pass

def terminated(signum, frame):
    raise Terminated

class KillWhenTheListFails(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith("Listing jobs"):
            os.kill(os.getpid(), signal.SIGTERM)

signal.signal(signal.SIGTERM, terminated)
logging.getLogger("airflow_provider_video_actions.triggers.job_poll").addHandler(KillWhenTheListFails())
try:
    VideoActionBatchPredictionTrigger(sys.argv[1], poll_interval=0.1).wait_in_worker()
except Terminated:
    sys.exit(3)
"""


def test_a_kill_signal_during_the_poll_ends_a_worker_mode_wait(emulator, submit_job):
    """The signal's exception reaches the waiting task; it used to die inside the poll task and the wait hung."""
    name = submit_job("killed-in-the-poll")
    emulator.force_outcome("JOB_STATE_PAUSED", display_name="killed-in-the-poll")
    emulator.inject_faults(1.0, methods=["ListBatchPredictionJobs"])
    waiter = subprocess.run([sys.executable, "-c", KILLED_IN_THE_POLL, name], capture_output=True, timeout=PATIENCE)
    assert waiter.returncode == 3, waiter.stderr.decode()[-2000:]


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "worker"])
def test_worker_crash_after_create_reattaches(airflow_db, emulator, instances_uri, deferrable):
    """A worker killed (SIGKILL) right after the create: the next try of the same task instance re-attaches."""
    dag_id = f"crash_{'deferred' if deferrable else 'worker'}"
    write_dag(dag_id, submit_task("predict", instances_uri, deferrable))
    emulator.force_outcome("JOB_STATE_PAUSED", display_name=f"{dag_id}.predict")
    worker = start_worker(dag_id)
    wait_for_create(emulator, worker, f"{dag_id}.predict")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert creates_for(emulator, f"{dag_id}.") == 1
    emulator.force_outcome(None, display_name=f"{dag_id}.predict")

    run = run_dag(dag_id, FIXED_DATE)
    assert task_states(run) == {"predict": "success"}
    assert creates_for(emulator, f"{dag_id}.") == 1
    assert xcom_value(run, "predict")["state"] == "JOB_STATE_SUCCEEDED"


def test_timeout_cancels_the_job_and_names_it(airflow_db, emulator, instances_uri, capfd):
    write_dag("timeout", submit_task("predict", instances_uri, timeout=1.5))
    emulator.force_outcome("JOB_STATE_PAUSED", display_name="timeout.predict")
    run = run_dag("timeout")
    assert task_states(run) == {"predict": "failed"}
    [name] = [n for n in emulator.created if emulator.job(n).display_name == "timeout.predict"]
    assert job_cancelled(emulator, name)
    assert f"{name} did not finish before the task's timeout. It was cancelled." in capfd.readouterr().out
