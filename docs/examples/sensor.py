"""Wait: a sensor on a job submitted elsewhere (another DAG, a script, the console), then parse its output."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import dag

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionSensor


# [START sensor]
@dag(
    schedule=None, catchup=False, params={"job_name": "projects/my-project/locations/us-central1/batchPredictionJobs/1"}
)
def video_actions_sensor() -> None:
    wait = VideoActionBatchPredictionSensor(
        task_id="wait",
        job_name="{{ params.job_name }}",  # the job's full resource name
        poke_interval=10,
        timeout=3600,
        deferrable=True,  # the wait runs in the triggerer ([operators] default_deferrable is False by default)
    )
    ParseVideoActionPredictionsOperator(task_id="parse", job=wait.output)


video_actions_sensor()
# [END sensor]
