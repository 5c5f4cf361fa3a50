"""Submit: a list of videos (whole, or a segment of one), the model's parameters, a deferred wait."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import dag

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator


@dag(schedule=None, catchup=False, params={"project": "my-project", "bucket": "my-videos"})
def video_actions_submit() -> None:
    # [START submit]
    predict = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="{{ params.project }}",
        region="us-central1",
        model="1234567890",  # or projects/.../locations/us-central1/models/1234567890[@version]
        videos=[
            "gs://{{ params.bucket }}/videos/kitchen.mp4",  # the whole video
            # a segment of one: seconds, or Vertex AI durations ("40.5s")
            {
                "content": "gs://{{ params.bucket }}/videos/playground.mp4",
                "time_segment_start": 1,
                "time_segment_end": "4.5s",
            },
        ],
        # videos_prefix="gs://my-videos/videos/",      # or: every .mp4/.avi/.mov under a prefix
        # gcs_source="gs://my-videos/instances.jsonl",  # or: a ready instances file (or a list of them)
        gcs_destination_prefix="gs://{{ params.bucket }}/predictions",
        confidence_threshold=0.3,
        max_predictions=50,
        deferrable=True,  # wait in the triggerer; without it the task holds a worker slot while it polls
        timeout=6 * 3600,
    )
    # [END submit]
    ParseVideoActionPredictionsOperator(task_id="parse", job=predict.output)


video_actions_submit()
