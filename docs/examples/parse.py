"""Parse: the job's output as records, filtered, to a Parquet file in GCS, then a timeline picture of them."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator


@dag(schedule=None, catchup=False, params={"project": "my-project", "bucket": "my-videos"})
def video_actions_parse() -> None:
    predict = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="{{ params.project }}",
        region="us-central1",
        model="1234567890",
        videos_prefix="gs://{{ params.bucket }}/videos/",
        gcs_destination_prefix="gs://{{ params.bucket }}/predictions",
        deferrable=True,
    )
    # [START parse]
    ParseVideoActionPredictionsOperator(
        task_id="parse_to_parquet",
        job=predict.output,  # or output_directory="gs://.../prediction-..."
        destination="gs://{{ params.bucket }}/parsed/{{ run_id | path_segment }}/moments.parquet",  # .jsonl, .csv
        min_confidence=0.5,
        labels=["wave", "jump"],
        top_k=5,
    )
    # [END parse]
    # [START timeline]
    moments = ParseVideoActionPredictionsOperator(task_id="parse_to_xcom", job=predict.output)  # no destination: XCom

    @task
    def draw_timeline(parsed: dict[str, Any]) -> str:
        """One row per video, a mark per moment, as opaque as it is confident; failed videos say why."""
        from airflow_provider_video_actions.timeline import render_timeline  # the [timeline] extra

        path = os.path.join(tempfile.mkdtemp(prefix="video-actions-timeline-"), "timeline.png")
        return render_timeline(parsed["predictions"], path, errors=parsed["error_records"])

    draw_timeline(moments.output)
    # [END timeline]


video_actions_parse()
