"""Example (Airflow 3): predict videos as they land, from GCS's Pub/Sub notifications.

GCS publishes a message for each object it finalizes under ``videos/`` to a Pub/Sub topic. An
``AssetWatcher`` runs the Google provider's ``PubsubPullTrigger`` (a ``BaseEventTrigger``) on a
subscription to that topic in the triggerer; each batch of messages becomes an event of the
``video_arrivals`` asset, and this DAG, scheduled on the asset, predicts the videos the events name.
Set up once (``gcloud``)::

    gcloud storage buckets notifications create gs://BUCKET --topic=video-arrivals \\
        --event-types=OBJECT_FINALIZE --object-prefix=videos/
    gcloud pubsub subscriptions create video-arrivals-airflow --topic=video-arrivals

Pub/Sub delivers at least once and the trigger acknowledges on pull, before the run: a redelivered
message can start a second run with the same video. For each video exactly once, use the scheduled
pattern of ``dags/video_actions_hourly.py``. The emulator has no Pub/Sub: this DAG runs only on Google
Cloud; on Airflow 2 (no asset watchers) the file defines no DAG.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.sdk import AirflowSkipException, dag, task
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator

BUCKET = os.environ.get("VIDEO_ACTIONS_BUCKET", "video-actions-demo")
PROJECT = os.environ.get("VIDEO_ACTIONS_PROJECT", "demo-project")
SUBSCRIPTION = os.environ.get("VIDEO_ACTIONS_SUBSCRIPTION", "video-arrivals-airflow")
#: The video files action recognition models take.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov")


def notified_videos(triggering_asset_events: Any) -> list[str]:
    """The videos finalized according to the triggering events' Pub/Sub messages, each once, sorted."""
    uris = set()
    for events in triggering_asset_events.values():
        for event in events:
            for received in (event.extra.get("payload") or {}).get("message", []):
                attributes = received["message"].get("attributes", {})
                name = attributes.get("objectId", "")
                if attributes.get("eventType") == "OBJECT_FINALIZE" and name.lower().endswith(VIDEO_EXTENSIONS):
                    uris.add(f"gs://{attributes['bucketId']}/{name}")
    return sorted(uris)


if AIRFLOW_V_3_0_PLUS:
    from airflow.providers.google.cloud.triggers.pubsub import PubsubPullTrigger
    from airflow.sdk import Asset, AssetWatcher

    video_arrivals = Asset(
        name="video_arrivals",
        uri=f"gs://{BUCKET}/videos/",
        watchers=[
            AssetWatcher(
                name="video_arrivals_pubsub",
                trigger=PubsubPullTrigger(
                    project_id=PROJECT,
                    subscription=SUBSCRIPTION,
                    max_messages=1000,
                    ack_messages=True,
                    gcp_conn_id="google_cloud_default",
                    poke_interval=30,
                    return_immediately=False,
                ),
            )
        ],
    )

    @dag(
        schedule=[video_arrivals],
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        tags=["example", "vertex-ai", "video", "event-driven"],
        params={"project": PROJECT, "region": "us-central1", "model": "1234567890"},
    )
    def video_actions_on_arrival() -> None:
        @task
        def new_videos(**context: Any) -> list[str]:
            """The videos this run's notifications name; none (other objects only) skips the run."""
            if not (uris := notified_videos(context["triggering_asset_events"])):
                raise AirflowSkipException("The notifications name no video file: nothing to predict.")
            print(f"{len(uris)} new videos: {', '.join(uris)}")
            return uris

        predict = VideoActionBatchPredictionOperator(
            task_id="predict",
            project_id="{{ params.project }}",
            region="{{ params.region }}",
            model="{{ params.model }}",
            videos=new_videos(),
            gcs_destination_prefix=f"gs://{BUCKET}/predictions",
            timeout=6 * 3600,
        )
        ParseVideoActionPredictionsOperator(
            task_id="parse",
            job=predict.output,
            # path_segment (a filter every operator of the package has): the run id as one folder name, distinct per run
            destination=f"gs://{BUCKET}/parsed/arrivals/{{{{ run_id | path_segment }}}}/moments.parquet",
        )

    video_actions_on_arrival()
