"""Example (Airflow 3): predict videos as they land, from GCS's Pub/Sub notifications.

GCS publishes a message for each object it finalizes under ``videos/`` to a Pub/Sub topic. An
``AssetWatcher`` runs the Google provider's ``PubsubPullTrigger`` (a ``BaseEventTrigger``) on a
subscription to that topic in the triggerer; each batch of messages becomes an event of the
``video_arrivals`` asset, and this DAG, scheduled on the asset, predicts the videos the events name.
Set up once (``gcloud``)::

    gcloud storage buckets notifications create gs://BUCKET --topic=video-arrivals \\
        --event-types=OBJECT_FINALIZE --object-prefix=videos/
    gcloud pubsub subscriptions create video-arrivals-airflow --topic=video-arrivals

Only videos of ``$VIDEO_ACTIONS_BUCKET`` under ``videos/`` are predicted: a notification naming another
bucket or folder (a topic shared with other notifications), or a malformed message, is skipped with a
logged reason, and the rest of the batch is still predicted. Pub/Sub delivers at least once and the
trigger acknowledges on pull, before the run: a redelivered message can start a second run with the
same video. For each video exactly once, use the scheduled
pattern of ``dags/video_actions_hourly.py``. The emulator has no Pub/Sub: this DAG runs only on Google
Cloud; on Airflow 2 (no asset watchers) the file defines no DAG.
"""

from __future__ import annotations

import inspect
import logging
import os
from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.sdk import AirflowSkipException, dag, task
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator
from airflow_provider_video_actions.job import VideoActionsValueError, brief, split_gcs_uri

BUCKET = os.environ.get("VIDEO_ACTIONS_BUCKET", "video-actions-demo")
PROJECT = os.environ.get("VIDEO_ACTIONS_PROJECT", "demo-project")
SUBSCRIPTION = os.environ.get("VIDEO_ACTIONS_SUBSCRIPTION", "video-arrivals-airflow")
#: Where uploaders land videos (the notification's ``--object-prefix``): the only objects this DAG predicts.
VIDEOS_PREFIX = "videos/"
#: The video files action recognition models take.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov")

log = logging.getLogger(__name__)


def notified_videos(triggering_asset_events: Any, bucket: str = BUCKET, prefix: str = VIDEOS_PREFIX) -> list[str]:
    """The videos finalized under ``gs://bucket/prefix`` that the events' Pub/Sub messages name, each once, sorted.

    The messages are already acknowledged: one that is malformed, or names another bucket or folder (a
    topic shared with other notifications), is skipped with a logged reason; the others are still predicted.
    """
    uris = set()
    for events in triggering_asset_events.values():
        for event in events:
            for received in received_messages(getattr(event, "extra", None)):
                if uri := notified_video(received, bucket, prefix):
                    uris.add(uri)
    return sorted(uris)


def received_messages(extra: Any) -> list[Any]:
    """The messages a PubsubPullTrigger event carries (``extra["payload"]["message"]``), or none, logged."""
    payload = extra.get("payload") if isinstance(extra, dict) else None
    messages = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(messages, list):
        log.warning("Skipping an asset event that carries no list of Pub/Sub messages: %s", brief(extra))
        return []
    return messages


def notified_video(received: Any, bucket: str, prefix: str) -> str | None:
    """The video a GCS notification (a ``ReceivedMessage`` as a dict) names, or None, logging why not."""
    message = received.get("message") if isinstance(received, dict) else None
    attributes = message.get("attributes") if isinstance(message, dict) else None
    if not isinstance(attributes, dict):
        log.warning("Skipping a message without attributes, not a GCS notification: %s", brief(received))
        return None
    name, source = attributes.get("objectId"), attributes.get("bucketId")
    if attributes.get("eventType") != "OBJECT_FINALIZE":
        log.info(
            "Skipping %s event of %s: only new objects are predicted.", brief(attributes.get("eventType")), brief(name)
        )
        return None
    if not isinstance(name, str) or not isinstance(source, str):
        log.warning("Skipping a notification whose bucketId or objectId is not text: %s", brief(attributes))
        return None
    uri = f"gs://{source}/{name}"
    if source != bucket or not name.startswith(prefix):
        log.warning("Skipping %s: this DAG predicts only videos under gs://%s/%s.", brief(uri), bucket, prefix)
        return None
    if not name.lower().endswith(VIDEO_EXTENSIONS):
        log.info("Skipping %s: not a video file (%s).", brief(uri), ", ".join(VIDEO_EXTENSIONS))
        return None
    try:
        split_gcs_uri(uri, "notified video")  # the submit operator's own check of a video URI
    except VideoActionsValueError as exc:
        log.warning("Skipping %s: %s", brief(uri), exc)
        return None
    return uri


if AIRFLOW_V_3_0_PLUS:
    from airflow.providers.google.cloud.triggers.pubsub import PubsubPullTrigger
    from airflow.sdk import Asset, AssetWatcher

    # Wait for messages rather than Pub/Sub's deprecated immediate pull: an option of Google provider >= 22.6.0
    # (Cloud Composer's images of August 2026 carry 22.2.2, whose trigger lacks it).
    PULL_OPTIONS = (
        {"return_immediately": False} if "return_immediately" in inspect.signature(PubsubPullTrigger).parameters else {}
    )
    video_arrivals = Asset(
        name="video_arrivals",
        uri=f"gs://{BUCKET}/{VIDEOS_PREFIX}",
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
                    **PULL_OPTIONS,
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
                raise AirflowSkipException(f"The notifications name no video under gs://{BUCKET}/{VIDEOS_PREFIX}.")
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
