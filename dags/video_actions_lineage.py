"""Example: data-aware scheduling on parsed moments, through an asset alias.

The producer runs a job and parses its output to a file whose path is known only at run time
(``.../{{ run_id | path_segment }}/moments.jsonl``: from the run id, so any trigger works); the
parse task emits that file as an asset event through the ``video-actions-moments`` alias. The
consumer is scheduled on the alias, so it runs once per parsed file and reads the file's URI and
counts from the triggering event. With the OpenLineage provider installed, both operators also
report their inputs and outputs as OpenLineage datasets.

Runs against the emulator as ``dags/video_action_recognition.py`` does (``VERTEX_AI_EMULATOR_HOST``
and ``STORAGE_EMULATOR_HOST`` set: sample videos are generated).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.sdk import AssetAlias, dag, task

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator

BUCKET = os.environ.get("VIDEO_ACTIONS_BUCKET", "video-actions-demo")
MOMENTS_ALIAS = "video-actions-moments"
#: Asset-scheduled DAGs need a start date on Airflow 2.
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dag(
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["example", "vertex-ai", "video", "lineage"],
    params={"project": "demo-project", "region": "us-central1", "model": "1234567890"},
)
def video_actions_lineage_producer() -> None:
    @task
    def list_videos() -> list[str]:
        """Sample videos uploaded to the emulator, or the bucket's ``videos/`` folder on Google Cloud."""
        from airflow_provider_video_actions.emulator.samples import example_videos

        return example_videos(BUCKET)

    predict = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="{{ params.project }}",
        region="{{ params.region }}",
        model="{{ params.model }}",
        videos=list_videos(),
        check_videos_exist=False,  # the samples list one missing video on purpose: see its error record
        gcs_destination_prefix=f"gs://{BUCKET}/predictions",
        poll_interval=2,
        timeout=3600,
    )
    ParseVideoActionPredictionsOperator(
        task_id="parse",
        job=predict.output,
        # path_segment (a filter every operator of the package has): the run id as one folder name, distinct per run
        destination=f"gs://{BUCKET}/moments/{{{{ run_id | path_segment }}}}/moments.jsonl",
        min_confidence=0.5,
        asset_alias=MOMENTS_ALIAS,
    )


@dag(schedule=[AssetAlias(MOMENTS_ALIAS)], start_date=START, catchup=False, tags=["example", "video", "lineage"])
def video_actions_lineage_consumer() -> None:
    @task
    def report(**context: Any) -> list[str]:
        """Each moments file that triggered this run, with the counts the parse task attached."""
        # Airflow 2 calls assets datasets.
        events = context.get("triggering_asset_events") or context.get("triggering_dataset_events") or {}
        uris = []
        for asset_events in events.values():
            for event in asset_events:
                uri = (getattr(event, "asset", None) or event.dataset).uri
                print(f"New moments file {uri}: {event.extra}")
                uris.append(uri)
        return uris

    report()


video_actions_lineage_producer()
video_actions_lineage_consumer()
