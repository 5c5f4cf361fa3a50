"""Gemini: the same two operators with a Gemini model; the label set is a parameter, no training."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import dag

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator


@dag(schedule=None, catchup=False, params={"project": "my-project", "bucket": "my-videos"})
def video_actions_gemini() -> None:
    # [START gemini]
    predict = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="{{ params.project }}",
        region="us-central1",
        model="gemini-2.5-flash",  # was: model="1234567890"
        action_labels={"wave": "a person waves a hand", "jump": "a person jumps"},  # new
        # prompt="Only count actions by adults.",  # optional extra instructions
        videos_prefix="gs://{{ params.bucket }}/videos/",
        gcs_destination_prefix="gs://{{ params.bucket }}/predictions",
        confidence_threshold=0.3,
        max_predictions=50,
        deferrable=True,
    )
    ParseVideoActionPredictionsOperator(task_id="parse", job=predict.output)  # unchanged
    # [END gemini]


video_actions_gemini()
