"""Validators at their boundaries: the last accepted value passes, the first refused one names its parameter.

Label count, object-name bytes, project id length, the poll-interval floor, an empty ``gcs_source`` and whole
replica counts; plus one bad templated value run in a DAG with retries, to show it fails on its first try.
"""

from __future__ import annotations

import pytest

from airflow_provider_video_actions.job import VideoActionsValueError
from airflow_provider_video_actions.operators.submit import VideoActionBatchPredictionOperator
from airflow_provider_video_actions.sensors.wait import VideoActionBatchPredictionSensor
from tests.conftest import run_dag, task_states, write_dag

SUBMIT = {
    "task_id": "predict",
    "project_id": "my-project",
    "region": "us-central1",
    "model": "123",
    "gcs_destination_prefix": "gs://bucket/out",
    "videos": ["gs://bucket/a.mp4"],
}
JOB = "projects/my-project/locations/us-central1/batchPredictionJobs/1"


def submit(**changes: object) -> VideoActionBatchPredictionOperator:
    """The submit operator built with ``changes`` over a valid set of parameters."""
    return VideoActionBatchPredictionOperator(**{**SUBMIT, **changes})


def refused(param: str, **changes: object) -> str:
    """The message of the refusal of ``changes``, which must name ``param``."""
    with pytest.raises(VideoActionsValueError) as refusal:
        submit(**changes)
    assert param in str(refusal.value)
    return str(refusal.value)


def labels(count: int) -> dict[str, str]:
    return {f"team_{i}": "x" for i in range(count)}


def test_61_user_labels_pass_62_are_refused():
    """Vertex AI takes 64 labels on a job and the provider sets 3: 61 are the user's."""
    assert submit(labels=labels(61)).labels == labels(61)
    message = refused("labels", labels=labels(62))
    assert "labels has 62 entries" in message and "give at most 61" in message


@pytest.mark.parametrize("key", ["airflow_provider", "airflow_task", "airflow_request", "airflow-task"])
def test_the_provider_s_own_label_keys_are_refused(key):
    assert "set by the provider itself" in refused("labels", labels={key: "x"})


@pytest.mark.parametrize("char", ["a", "\u00e9"], ids=["ascii", "two-byte"])
def test_object_names_up_to_1024_bytes_pass(char):
    """GCS counts an object name in bytes of UTF-8: 1024 pass, 1025 are refused, naming the video parameter."""
    name = char * ((1024 - 4) // len(char.encode())) + ".mp4"
    assert len(name.encode()) == 1024
    submit(videos=[f"gs://bucket/{name}"])
    message = refused("videos[0] content", videos=[f"gs://bucket/{char}{name}"])
    assert f"is {len((char + name).encode())} bytes; GCS allows at most 1024 bytes" in message


def test_a_destination_too_long_for_the_instances_file_is_refused():
    """The instances file goes under the destination prefix: its whole name must fit 1024 bytes."""
    message = refused("gcs_destination_prefix", gcs_destination_prefix="gs://bucket/" + "d" * 990)
    assert "GCS allows at most 1024 bytes" in message


@pytest.mark.parametrize("project", ["abcdef", "a" + "b" * 28 + "c", "example.com:my-project", "123456789012"])
def test_project_ids_of_6_to_30_characters_pass(project):
    assert submit(project_id=project).project_id == project


def test_a_project_number_rendered_natively_to_an_int_is_its_string():
    """``render_template_as_native_obj`` renders ``"123456789012"`` to an int: a project number all the same."""
    assert submit(project_id=123456789012).project_id == "123456789012"


@pytest.mark.parametrize(
    "project", ["abcde", "a" + "b" * 29 + "c", "1abcdef", "my-project-", "My-Project", True, -123456789012, 0]
)
def test_other_project_ids_are_refused(project):
    assert f"got {project!r}" in refused("project_id", project_id=project)


def test_poll_interval_below_its_floor_is_refused():
    """The floor is min_poll_interval (1 s by default); at it passes, under it is refused naming both."""
    assert submit(poll_interval=1.0).poll_interval == 1.0
    assert submit(poll_interval=0.2, min_poll_interval=0.2).poll_interval == 0.2
    message = refused("poll_interval", poll_interval=0.5)
    assert "below the floor of 1.0 s" in message and "min_poll_interval" in message
    assert "below the floor of 0.3 s" in refused("poll_interval", poll_interval=0.2, min_poll_interval=0.3)


def test_sensor_poke_interval_below_its_floor_is_refused():
    VideoActionBatchPredictionSensor(task_id="wait", job_name=JOB, poke_interval=1.0)
    with pytest.raises(VideoActionsValueError, match=r"poke_interval=0.5 is below the floor of 1.0 s"):
        VideoActionBatchPredictionSensor(task_id="wait", job_name=JOB, poke_interval=0.5)


@pytest.mark.parametrize(
    ("gcs_source", "message"),
    [
        ([], "gcs_source is empty"),
        ((), "gcs_source is empty"),
        ("", "gcs_source must be a gs:// URI"),
        ([""], "gcs_source must be a gs:// URI"),
        (None, "give exactly one of videos, videos_prefix or gcs_source; got none"),
    ],
    ids=["empty list", "empty tuple", "empty string", "empty string in a list", "missing"],
)
def test_an_empty_or_missing_gcs_source_is_refused(gcs_source, message):
    assert message in refused("gcs_source", videos=None, gcs_source=gcs_source)


@pytest.mark.parametrize("param", ["starting_replica_count", "max_replica_count"])
@pytest.mark.parametrize("count", [1.5, 2.0, True, "2", 0, -1], ids=["1.5", "2.0", "True", "text", "0", "-1"])
def test_replica_counts_must_be_whole_positive_numbers(param, count):
    message = refused(param, machine_type="n1-standard-4", **{param: count})
    assert f"{param} must be a positive integer, got {count!r}" in message


def test_whole_replica_counts_pass():
    op = submit(machine_type="n1-standard-4", starting_replica_count=1, max_replica_count=3)
    assert (op.machine_resources.starting_replica_count, op.machine_resources.max_replica_count) == (1, 3)


def test_a_templated_gcs_source_rendering_empty_fails_without_a_retry(airflow_db, emulator, capfd):
    """A bad value that arrives through a template fails the task on its first try, though the task has retries."""
    write_dag(
        "empty_gcs_source",
        """
        VideoActionBatchPredictionOperator(
            task_id="predict", project_id="test-project", region="us-central1", model="42",
            gcs_source="{{ params.source }}", params={"source": ""}, gcs_destination_prefix="gs://bucket/out",
            retries=2, retry_delay=0,
        )
        """,
    )
    run = run_dag("empty_gcs_source")
    assert task_states(run) == {"predict": "failed"}
    assert run.get_task_instance("predict").try_number == 1
    assert "gcs_source must be a gs:// URI" in capfd.readouterr().out
