"""Job state -> task outcome, through dag.test() in both wait modes, and the sensor."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BUCKET, job_cancelled, run_dag, running_job, task_states, write_dag, xcom_value

OUTCOMES = {
    "JOB_STATE_SUCCEEDED": "success",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "success",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "failed",
    "JOB_STATE_EXPIRED": "failed",
}


def submit_dag(dag_id: str, instances_uri: str, deferrable: bool, **extra) -> str:
    options = "".join(f", {key}={value!r}" for key, value in extra.items())
    return write_dag(
        dag_id,
        f"""
        VideoActionBatchPredictionOperator(
            task_id="predict", project_id="test-project", region="us-central1", model="42",
            gcs_source={instances_uri!r}, gcs_destination_prefix="gs://{BUCKET}/out",
            job_display_name={dag_id!r}, poll_interval=0.1, min_poll_interval=0.1, deferrable={deferrable}{options},
        )
        """,
    )


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "worker"])
@pytest.mark.parametrize("state", list(OUTCOMES))
def test_terminal_state_gives_task_outcome(airflow_db, emulator, instances_uri, state, deferrable, capfd):
    """Each terminal state gives its task outcome; a failure names the job, its state, error and output directory."""
    dag_id = f"outcome_{state.lower()}_{'deferred' if deferrable else 'worker'}"
    if state != "JOB_STATE_SUCCEEDED":
        emulator.force_outcome(state, display_name=dag_id)
    run = run_dag(submit_dag(dag_id, instances_uri, deferrable))
    assert task_states(run) == {"predict": OUTCOMES[state]}
    if OUTCOMES[state] == "success":
        assert xcom_value(run, "predict")["state"] == state
    [job] = [j for j in emulator.jobs() if j.display_name == dag_id]
    assert job.state.name == state
    if OUTCOMES[state] == "failed":
        assert_failure_message_names(capfd.readouterr().out, job)


def assert_failure_message_names(out: str, job) -> None:
    """The task's failure names the job, its state, the job's error (message and code) and its output directory."""
    assert job.error.message and job.output_info.gcs_output_directory
    assert (
        f"Batch prediction job {job.name} ended in {job.state.name}: {job.error.message} (code {job.error.code})" in out
    )
    assert f"output so far: {job.output_info.gcs_output_directory}" in out


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "worker"])
def test_paused_job_is_not_success_and_timeout_cancels_it(airflow_db, emulator, instances_uri, deferrable):
    dag_id = f"paused_{'deferred' if deferrable else 'worker'}"
    emulator.force_outcome("JOB_STATE_PAUSED", display_name=dag_id)
    run = run_dag(submit_dag(dag_id, instances_uri, deferrable, timeout=2))
    assert task_states(run) == {"predict": "failed"}
    [job] = [j for j in emulator.jobs() if j.display_name == dag_id]
    assert job_cancelled(emulator, job.name)


def test_partial_success_over_max_failed_ratio_fails(airflow_db, emulator, storage_client, capfd):
    bucket = storage_client.bucket(BUCKET)
    bucket.blob("instances/half-missing.jsonl").upload_from_string(
        "".join(
            json.dumps({"content": f"gs://{BUCKET}/videos/{name}.mp4", "mimeType": "video/mp4"}) + "\n"
            for name in ("wave", "nope")
        )
    )
    from airflow_provider_video_actions.emulator import PlantedAction, make_video

    bucket.blob("videos/wave.mp4").upload_from_string(make_video([PlantedAction("wave", 1.0)]))
    uri = f"gs://{BUCKET}/instances/half-missing.jsonl"
    emulator.force_outcome("JOB_STATE_PARTIALLY_SUCCEEDED", display_name="ratio_strict")  # with the run's counts
    run = run_dag(submit_dag("ratio_strict", uri, True, max_failed_ratio=0.25))
    assert task_states(run) == {"predict": "failed"}
    [job] = [j for j in emulator.jobs() if j.display_name == "ratio_strict"]
    assert (
        f"Batch prediction job {job.name} ended in JOB_STATE_PARTIALLY_SUCCEEDED but 1 instances succeeded, "
        "1 failed or never completed (50.0%; 0 incomplete), more than max_failed_ratio=0.25. "
        f"See errors_*.jsonl in {job.output_info.gcs_output_directory}."
    ) in capfd.readouterr().out
    run = run_dag(submit_dag("ratio_lenient", uri, True, max_failed_ratio=0.5))
    assert task_states(run) == {"predict": "success"}
    assert xcom_value(run, "predict")["completion_stats"]["failed_count"] == 1


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "worker"])
def test_sensor_waits_on_a_job_submitted_elsewhere(airflow_db, emulator, submit_job, deferrable):
    name = submit_job("elsewhere")
    dag_id = f"sensor_{'deferred' if deferrable else 'worker'}"
    write_dag(
        dag_id,
        f"""
        VideoActionBatchPredictionSensor(
            task_id="wait", job_name={name!r}, poke_interval=0.1, min_poll_interval=0.1, timeout=60, deferrable={deferrable},
        )
        """,
    )
    run = run_dag(dag_id)
    assert task_states(run) == {"wait": "success"}
    summary = xcom_value(run, "wait")
    assert summary["name"] == name and summary["state"] == "JOB_STATE_SUCCEEDED"


def test_sensor_fails_on_failed_job_and_never_cancels(airflow_db, emulator, submit_job, capfd):
    emulator.force_outcome("JOB_STATE_FAILED", display_name="elsewhere-failed")
    name = submit_job("elsewhere-failed")
    cancels = emulator.calls["CancelBatchPredictionJob"]
    write_dag(
        "sensor_failed",
        f'VideoActionBatchPredictionSensor(task_id="wait", job_name={name!r}, poke_interval=0.1, min_poll_interval=0.1)',
    )
    run = run_dag("sensor_failed")
    assert task_states(run) == {"wait": "failed"}
    assert emulator.calls["CancelBatchPredictionJob"] == cancels
    assert_failure_message_names(capfd.readouterr().out, emulator.job(name))


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "worker"])
def test_sensor_timing_out_leaves_the_running_job_running(airflow_db, emulator, submit_job, deferrable, capfd):
    """The sensor's timeout passes while the job it watches runs: the sensor fails, the job is not its to cancel."""
    name = running_job(submit_job, emulator, f"elsewhere-running-{deferrable}")
    cancels = emulator.calls["CancelBatchPredictionJob"]
    dag_id = f"sensor_timeout_{'deferred' if deferrable else 'worker'}"
    write_dag(
        dag_id,
        f"""VideoActionBatchPredictionSensor(task_id="wait", job_name={name!r}, poke_interval=0.1,
            min_poll_interval=0.1, timeout=2, deferrable={deferrable})""",
    )
    run = run_dag(dag_id)
    assert task_states(run) == {"wait": "failed"}
    assert emulator.calls["CancelBatchPredictionJob"] == cancels
    assert emulator.job(name).state.name == "JOB_STATE_RUNNING"
    if deferrable:
        assert "The job was left as it is: this sensor did not start it." in capfd.readouterr().out


def test_sensor_can_start_straight_in_the_triggerer():
    from airflow_provider_video_actions.sensors.wait import VideoActionBatchPredictionSensor
    from airflow_provider_video_actions.triggers.wait import VideoActionBatchPredictionTrigger

    sensor = VideoActionBatchPredictionSensor(
        task_id="wait", job_name="{{ params.job }}", poke_interval=30, timeout=600, start_from_trigger=True
    )
    args = sensor.start_trigger_args
    assert sensor.start_from_trigger is True
    assert args.next_method == "execute_complete" and args.timeout.total_seconds() == 600
    trigger = VideoActionBatchPredictionTrigger(**args.trigger_kwargs)
    assert trigger.job_name == "{{ params.job }}" and trigger.spec.cancel_on_kill is False
    assert set(VideoActionBatchPredictionTrigger.template_fields) >= {"job_name"}


def test_a_sensor_started_in_the_triggerer_refuses_a_task_output_at_parse():
    """start_from_trigger fixes the trigger's arguments at parse: an XComArg would reach the trigger unresolved."""
    from airflow.providers.common.compat.sdk import DAG, task

    from airflow_provider_video_actions.errors import VideoActionsValueError
    from airflow_provider_video_actions.sensors.wait import VideoActionBatchPredictionSensor

    with DAG("sensor_output"):

        @task
        def name() -> str:
            return "projects/p/locations/us-central1/batchPredictionJobs/1"

        with pytest.raises(VideoActionsValueError, match=r"^job_name: start_from_trigger=True .* got PlainXComArg"):
            VideoActionBatchPredictionSensor(task_id="wait", job_name=name(), start_from_trigger=True)


async def test_a_name_rendered_wrong_in_the_triggerer_fails_the_sensor_without_a_retry():
    """``start_from_trigger``: the triggerer renders ``job_name``; a bad result is one error event, then no retry."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_video_actions.sensors.wait import VideoActionBatchPredictionSensor
    from airflow_provider_video_actions.triggers.wait import VideoActionBatchPredictionTrigger

    sensor = VideoActionBatchPredictionSensor(task_id="wait", job_name="{{ params.job }}", start_from_trigger=True)
    trigger = VideoActionBatchPredictionTrigger(**sensor.start_trigger_args.trigger_kwargs)
    trigger.job_name = "batchPredictionJobs/123"  # what rendering does
    assert trigger.shared_stream_key() is None  # no shared poll keyed on a bad name
    [event] = [event.payload async for event in trigger.run()]
    assert event["bad_parameter"] and event["message"].startswith("job_name must be a full resource name")
    with pytest.raises(AirflowFailException, match="'batchPredictionJobs/123'"):
        sensor.execute_complete({}, event)


def test_a_job_xcom_rendered_as_a_native_object_in_the_triggerer_gives_its_name():
    from airflow_provider_video_actions.triggers.wait import VideoActionBatchPredictionTrigger

    trigger = VideoActionBatchPredictionTrigger(job_name="{{ params.job }}", cancel_on_kill=False)
    name = "projects/p/locations/us-central1/batchPredictionJobs/123"
    trigger.job_name = {"name": name, "state": "JOB_STATE_RUNNING"}
    assert trigger.job_name == name and trigger.serialize()[1]["job_name"] == name
