"""A job that ends FAILED or CANCELLED: the submit task fails, and a parse keeps the rows it did write."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import XComArg, dag

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator


# [START failed_job]
@dag(schedule=None, catchup=False, params={"project": "my-project", "bucket": "my-videos"})
def video_actions_failed_job() -> None:
    predict = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="{{ params.project }}",
        region="us-central1",
        model="1234567890",
        videos_prefix="gs://{{ params.bucket }}/videos/",
        gcs_destination_prefix="gs://{{ params.bucket }}/predictions",
        deferrable=True,
    )
    # The submit task fails on a CANCELLED, FAILED or EXPIRED job, but first pushes the job's summary to
    # XCom under "failed_job"; allow_partial=True parses whatever the job exported before it ended.
    ParseVideoActionPredictionsOperator(
        task_id="parse_partial",
        job=XComArg(predict, key="failed_job"),
        allow_partial=True,
        trigger_rule="all_done",  # run although predict failed
    )
    # predict shows failed; the run's own state follows its last task, this parse.


video_actions_failed_job()
# [END failed_job]
