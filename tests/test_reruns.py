"""Which re-runs re-attach to a job: those that keep the run id (a retry, a cleared task or run); a new run id submits.

The task's job label is a hash of dag id, task id, run id and map index. ``airflow dags test DAG DATE``
names its run ``manual__<the time of the call>`` on Airflow 3 (``run_after`` is now), so running it twice
for one date submits twice; Airflow 2 names it ``manual__<DATE>``, and the second call re-attaches.
"""

from __future__ import annotations

from datetime import datetime, timezone

from tests.conftest import BUCKET, DAGS_FOLDER, dag_bag, run_dag, write_dag

DAG_ID = "video_actions_rerun"
PREDICT = """
VideoActionBatchPredictionOperator(
    task_id="predict", project_id="test-project", region="us-central1", model="42", gcs_source=INSTANCES,
    gcs_destination_prefix="gs://BUCKET/reruns", poll_interval=0.1, min_poll_interval=0.1,
)
"""


def airflow_dags_test(dag_id: str, logical_date: datetime) -> None:
    """What ``airflow dags test DAG DATE`` does (``dag_command.dag_test``): ``dag.test`` given only the date."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:  # run_dag would pin run_after too, which the command leaves at now
        run = dag_bag(DAGS_FOLDER / f"{dag_id}.py").get_dag(dag_id).test(logical_date=logical_date)
    else:
        run = run_dag(dag_id, logical_date)  # dag.test(execution_date=DATE), as the command
    assert run.state == "success", run


def test_airflow_dags_test_twice_for_one_date(airflow_db, emulator, instances_uri):
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    write_dag(DAG_ID, PREDICT.replace("INSTANCES", repr(instances_uri)).replace("BUCKET", BUCKET))
    airflow_dags_test(DAG_ID, datetime(2026, 1, 1, tzinfo=timezone.utc))
    airflow_dags_test(DAG_ID, datetime(2026, 1, 1, tzinfo=timezone.utc))

    run_ids = [j.display_name.removeprefix(f"{DAG_ID}.predict.") for j in emulator.jobs() if DAG_ID in j.display_name]
    if AIRFLOW_V_3_0_PLUS:  # two runs named after the time of each call: two jobs
        assert len(run_ids) == 2 and run_ids[0] != run_ids[1], run_ids
        assert all(run_id.startswith("manual__") and "2026-01-01" not in run_id for run_id in run_ids), run_ids
    else:  # both runs are manual__2026-01-01T00:00:00+00:00: the second re-attaches to the first's job
        assert run_ids == ["manual__2026-01-01T00:00:00+00:00"], run_ids
