"""A bad parameter fails its task without a retry, however it arrives: literal, Jinja template or ``.expand()``.

Each DAG gives its tasks ``retries=2`` with no delay, so a retried task would run three times under dag.test();
each task must end FAILED after its first try, its message (in the task's output) naming the parameter.
"""

from __future__ import annotations

import pytest

from tests.conftest import DAGS_FOLDER, dag_bag, run_dag, write_dag

RETRIES = "retries=2, retry_delay=timedelta(0)"
SUBMIT = 'project_id="test-project", region="us-central1", model="42", gcs_source="gs://video-bucket/instances.jsonl"'
IMPORTS = f"""
from datetime import timedelta
from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, ProposeParseShardsOperator
PARSE = dict(task_id="parse", output_directory="file:///tmp/video-actions-no-job/", {RETRIES})
"""


def failed_once(run, capfd) -> tuple[dict[str, tuple[str, int]], str]:
    """task id -> (state, try number) of each task instance, and the output of the run (where the errors are)."""
    tries = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    captured = capfd.readouterr()
    return tries, captured.out + captured.err


def test_a_literal_bad_value_is_a_dag_import_error(airflow_db):
    write_dag(
        "no_retry_literal",
        IMPORTS + 'ParseVideoActionPredictionsOperator(**PARSE, destination="file:///tmp/parts/", shard="5/4")',
    )
    errors = dag_bag(DAGS_FOLDER / "no_retry_literal.py").import_errors
    assert any("shard must be 'index/count'" in message and "'5/4'" in message for message in errors.values())
    write_dag(
        "no_retry_literal",
        f"VideoActionBatchPredictionOperator(task_id='predict', {SUBMIT}, gcs_destination_prefix='gs://video-bucket/out', "
        "labels={'A': 'a'})",
    )
    errors = dag_bag(DAGS_FOLDER / "no_retry_literal.py").import_errors
    assert any("labels key 'A' is invalid" in message for message in errors.values()), errors


def test_a_templated_bad_value_fails_without_a_retry(airflow_db, capfd):
    write_dag(
        "no_retry_templated",
        IMPORTS
        + f"""
ParseVideoActionPredictionsOperator(
    **PARSE, destination="file:///tmp/parts/", shard="{{{{ params.shard }}}}", params={{"shard": "5/4"}}
)
VideoActionBatchPredictionOperator(
    task_id="predict", {SUBMIT}, gcs_destination_prefix="{{{{ params.prefix }}}}", params={{"prefix": "gs:/video-bucket"}},
    {RETRIES},
)
""",
    )
    tries, output = failed_once(run_dag("no_retry_templated"), capfd)
    assert tries == {"parse": ("failed", 1), "predict": ("failed", 1)}
    assert "shard must be 'index/count'" in output and "got '5/4'" in output
    assert (
        "gcs_destination_prefix must be a gs:// URI like gs://my-bucket/videos/a.mp4, got 'gs:/video-bucket'" in output
    )


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (
            'ParseVideoActionPredictionsOperator.partial(**PARSE, destination="file:///tmp/parts/")'
            '.expand(shard=["5/4"])',
            "shard must be 'index/count'",
        ),
        (
            'ParseVideoActionPredictionsOperator.partial(**PARSE).expand(destination=["file:///tmp/parts/"])',
            "destination 'file:///tmp/parts/' is a folder",
        ),
        ('ParseVideoActionPredictionsOperator.partial(**PARSE).expand(shard=["1/2"])', "shard 1/2 needs a destination"),
        (
            'ParseVideoActionPredictionsOperator.partial(**PARSE, destination="file:///tmp/parts/")'
            '.expand(shard=["0/2000000"])',
            "more than max_shards=1024",
        ),
        (
            "ParseVideoActionPredictionsOperator.partial(**PARSE).expand(gcs_read_concurrency=[0])",
            "gcs_read_concurrency must be a positive integer",
        ),
        (
            f'VideoActionBatchPredictionOperator.partial(task_id="predict", {SUBMIT}, {RETRIES})'
            '.expand(gcs_destination_prefix=["gs:/video-bucket"])',
            "gcs_destination_prefix must be a gs:// URI like gs://my-bucket/videos/a.mp4, got 'gs:/video-bucket'",
        ),
        (
            'ProposeParseShardsOperator.partial(task_id="propose", output_directory="gs://video-bucket/o/", '
            f"{RETRIES}).expand(max_shards=[0])",
            "max_shards must be a positive integer",
        ),
        (
            f'VideoActionBatchPredictionSensor.partial(task_id="wait", {RETRIES}).expand(job_name=["jobs/7"])',
            "job_name must be a full resource name like 'projects/my-project/",
        ),
    ],
    ids=["parse-shard", "parse-folder-without-shard", "parse-shard-without-destination", "parse-huge-count",
         "parse-read-concurrency", "submit-prefix", "propose-max-shards", "sensor-job-name"],
)  # fmt: skip
def test_a_mapped_bad_value_fails_without_a_retry(airflow_db, capfd, request, task, message):
    """Airflow builds a mapped instance's operator while rendering its templates, inside the task's try."""
    # One dag id per case: Airflow 3.1's dag.test() runs the DAG serialized first under an id.
    dag_id = "no_retry_mapped_" + request.node.callspec.id.replace("-", "_")
    write_dag(dag_id, IMPORTS + task)
    run = run_dag(dag_id)
    tries, output = failed_once(run, capfd)
    assert list(tries.values()) == [("failed", 1)], tries
    assert message in output
