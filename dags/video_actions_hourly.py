"""Example: every hour, predict only the videos that landed in that hour, each exactly once.

land_samples -> predict (the videos GCS created in the run's data interval) -> parse to a per-interval
Parquet file. The schedule gives each run the hour before it, ``[data_interval_start,
data_interval_end)``; back-to-back hours take every video exactly once, so a catch-up or a backfill
submits one job per hour with that hour's videos, and clearing a run re-attaches to its job. An hour
with no new video skips predict and parse. A run triggered without a logical date (Airflow 3) has no
data interval: predict skips saying so (no job); trigger with a logical date to process the hour before it.

Against Google Cloud, set the DAG params and let uploaders land videos under
``gs://<bucket>/videos/``. With ``VERTEX_AI_EMULATOR_HOST`` and ``STORAGE_EMULATOR_HOST`` set, the
first task lands the sample videos there as the other examples do; they arrive when the run runs,
so give a logical date after it (``airflow dags test video_actions_hourly <now + 30 min>``) for
the run's hour to hold them.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator

try:
    from airflow.sdk import CronTriggerTimetable
except ImportError:  # Airflow < 3.2
    from airflow.timetables.trigger import CronTriggerTimetable

BUCKET = os.environ.get("VIDEO_ACTIONS_BUCKET", "video-actions-demo")
LANDING = f"gs://{BUCKET}/videos/"


@dag(
    # On the hour, over the hour before it: a bare "@hourly" gives Airflow 3 runs a zero-length interval.
    schedule=CronTriggerTimetable("0 * * * *", timezone="UTC", interval=timedelta(hours=1)),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,  # `airflow backfill create` processes past hours, one job per hour
    max_active_runs=4,
    tags=["example", "vertex-ai", "video", "incremental"],
    params={"project": "demo-project", "region": "us-central1", "model": "1234567890"},
)
def video_actions_hourly() -> None:
    @task
    def land_samples() -> None:
        """On the emulator, the sample videos land under the prefix now; on Google Cloud, uploaders land them."""
        from airflow_provider_video_actions.emulator.samples import example_videos
        from airflow_provider_video_actions.hooks.storage import vertex_emulator_host

        if vertex_emulator_host():
            example_videos(BUCKET)

    predict = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="{{ params.project }}",
        region="{{ params.region }}",
        model="{{ params.model }}",
        videos_prefix=LANDING,
        videos_created_in="data_interval",
        gcs_destination_prefix=f"gs://{BUCKET}/predictions",
        confidence_threshold=0.2,
        deferrable=True,
        poll_interval=2,
        timeout=3600,
    )
    land_samples() >> predict
    ParseVideoActionPredictionsOperator(
        task_id="parse",
        job=predict.output,
        # One file per hour, named after the interval (a re-run of the hour replaces it).
        destination=f"gs://{BUCKET}/parsed/hourly/{{{{ data_interval_start | ts_nodash }}}}/moments.parquet",
    )


video_actions_hourly()
