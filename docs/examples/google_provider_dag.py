"""A DAG built on the Google provider's Vertex AI operator, pointed at the emulator, with this provider's parse."""

from __future__ import annotations

import os

from airflow.providers.common.compat.sdk import dag
from airflow.providers.google.cloud.operators.vertex_ai.batch_prediction_job import CreateBatchPredictionJobOperator

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator

# [START emulator]
from airflow_provider_video_actions.google_clients import use_emulator_for_google_clients

use_emulator_for_google_clients()  # does nothing while VERTEX_AI_EMULATOR_HOST is unset
# [END emulator]


# Plain strings, not templates: Google provider 22.2.2 (Cloud Composer's) templates neither GCS path.
BUCKET = os.environ.get("VIDEO_ACTIONS_BUCKET", "my-videos")


@dag(schedule=None, catchup=False, params={"project": "my-project"})
def google_provider_dag() -> None:
    # [START create]
    create = CreateBatchPredictionJobOperator(  # the Google provider's operator, as it is
        task_id="create",
        project_id="{{ params.project }}",
        region="us-central1",
        job_display_name="video-actions",
        model_name="1234567890",
        gcs_source=f"gs://{BUCKET}/instances.jsonl",
        gcs_destination_prefix=f"gs://{BUCKET}/predictions",
        deferrable=True,
    )
    # Its XCom (deferrable or not) is the parse's job: no hand-written parsing of the output files.
    ParseVideoActionPredictionsOperator(task_id="parse", job=create.output)
    # [END create]


google_provider_dag()
