"""DAGs for the deployment scenarios (tests/deployment): mapped deferred submits against the emulator.

Each DAG uploads the emulator's sample videos, then runs ``count`` mapped submits, one video each, all
with the display name ``<dag_id>.predict`` so that the test can hold them (the emulator keeps held jobs
PAUSED) through the control API. Poll intervals are at the 1 s floor to keep the scenarios short.
``deploy_sensor_from_trigger`` is a sensor alone, started straight in the triggerer on the job its run's conf names.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_video_actions import VideoActionBatchPredictionOperator, VideoActionBatchPredictionSensor

BUCKET = "video-actions-deployment"


def scenario(dag_id: str, count: int, **submit: Any) -> None:
    """A DAG ``dag_id``: sample videos, then ``count`` mapped deferred submits with the ``submit`` options."""

    @dag(dag_id=dag_id, schedule=None, catchup=False, tags=["deployment-test"])
    def scenario_dag() -> None:
        @task
        def videos() -> list[list[str]]:
            """One sample video per mapped submit (the emulator's three samples, in turn)."""
            from airflow_provider_video_actions.emulator.samples import example_videos

            samples = example_videos(BUCKET)[:3]
            return [[samples[i % len(samples)]] for i in range(count)]

        VideoActionBatchPredictionOperator.partial(
            task_id="predict",
            project_id="deployment-project",
            region="us-central1",
            model="1234567890",
            gcs_destination_prefix=f"gs://{BUCKET}/predictions",
            job_display_name=f"{dag_id}.predict",
            deferrable=True,
            **{"poll_interval": 1, **submit},
        ).expand(videos=videos())

    scenario_dag()


scenario("deploy_mapped", 20, poll_interval=2)
scenario("deploy_mark_failed", 1)
scenario("deploy_clear", 1)
scenario("deploy_clear_race", 1)
# Try 1 times out on its held job; 30 s leave try 2 room to re-attach through a busy triggerer polling every 1 s.
scenario("deploy_retry_timeout", 1, timeout=30, retries=1, retry_delay=timedelta(0), cancel_on_kill=False)
# (h): the job the sensor below waits on.
scenario("deploy_watched", 1)


@dag(
    dag_id="deploy_sensor_from_trigger",
    schedule=None,
    catchup=False,
    tags=["deployment-test"],
    params={"job": ""},
)
def sensor_from_trigger() -> None:
    """A sensor that starts straight in the triggerer (no worker run) on the job named by the run's conf."""
    VideoActionBatchPredictionSensor(
        task_id="wait",
        job_name="{{ params.job }}",
        poke_interval=1,
        timeout=300,
        start_from_trigger=True,
        retries=1,  # a bad name must fail without using it
        retry_delay=timedelta(0),
    )


sensor_from_trigger()
