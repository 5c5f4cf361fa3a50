"""Quickstart: the actions in your own videos, as moments (video, label, time, confidence).

Every video under ``gs://<bucket>/videos/`` goes to one Vertex AI batch prediction job; the task waits
for it in the triggerer (no worker slot held), and the parse task turns the job's output into records.
The same file runs on the local emulator and on Google Cloud: only the params and the environment change.
"""

# [START quickstart]
from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import dag, task  # or airflow.sdk on Airflow 3

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator


@dag(
    schedule=None,
    catchup=False,
    # The emulator's defaults; on Google Cloud pass your own with `airflow dags test ... -c '{...}'`.
    params={"project": "my-project", "region": "us-central1", "model": "1234567890", "bucket": "my-videos"},
)
def video_actions_quickstart() -> None:
    predict = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="{{ params.project }}",
        region="{{ params.region }}",
        model="{{ params.model }}",
        videos_prefix="gs://{{ params.bucket }}/videos/",
        gcs_destination_prefix="gs://{{ params.bucket }}/predictions",
        deferrable=True,  # wait in the triggerer, not in a worker slot
    )
    moments = ParseVideoActionPredictionsOperator(task_id="parse", job=predict.output, min_confidence=0.5)

    @task
    def print_moments(parsed: dict[str, Any]) -> None:
        """One line per moment, then the counts."""
        for moment in parsed["predictions"]:
            print(
                f"{moment['video_uri']} {moment['label']} at {moment['time_start']:.2f} s ({moment['confidence']:.2f})"
            )
        print(f"moments: {parsed['rows']}, videos: {parsed['videos']}, errors: {parsed['errors']}")

    print_moments(moments.output)


video_actions_quickstart()
# [END quickstart]
