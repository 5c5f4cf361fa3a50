"""Scheduled runs: every hour, the videos that landed under a prefix in that hour, each predicted once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.providers.common.compat.sdk import dag

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator

try:
    from airflow.sdk import CronTriggerTimetable  # Airflow >= 3.2
except ImportError:
    from airflow.timetables.trigger import CronTriggerTimetable


# [START hourly]
@dag(
    # Each run covers the hour before it: [logical date - 1 h, logical date). A cron string alone would give
    # Airflow 3 runs a zero-length data interval, which the operator refuses.
    schedule=CronTriggerTimetable("0 * * * *", timezone="UTC", interval=timedelta(hours=1)),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),  # Airflow 2 needs one for a scheduled DAG
    catchup=False,
    params={"project": "my-project", "bucket": "my-videos"},
)
def video_actions_every_hour() -> None:
    predict = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="{{ params.project }}",
        region="us-central1",
        model="1234567890",
        videos_prefix="gs://{{ params.bucket }}/videos/",
        videos_created_in="data_interval",  # only the videos GCS created in this run's hour; none: skip
        gcs_destination_prefix="gs://{{ params.bucket }}/predictions",
        deferrable=True,
    )
    ParseVideoActionPredictionsOperator(
        task_id="parse",
        job=predict.output,
        destination="gs://{{ params.bucket }}/parsed/{{ data_interval_start | ts_nodash }}/moments.parquet",
    )


video_actions_every_hour()
# [END hourly]
