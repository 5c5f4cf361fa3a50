"""Assets: a producer parses to a per-run file and emits it through an alias; a consumer runs on each one."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.sdk import AssetAlias, dag, task

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator


# [START producer]
@dag(schedule=None, catchup=False, params={"project": "my-project", "bucket": "my-videos"})
def video_actions_producer() -> None:
    predict = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="{{ params.project }}",
        region="us-central1",
        model="1234567890",
        videos_prefix="gs://{{ params.bucket }}/videos/",
        gcs_destination_prefix="gs://{{ params.bucket }}/predictions",
        deferrable=True,
    )
    ParseVideoActionPredictionsOperator(
        task_id="parse",
        job=predict.output,
        # known only at run time, hence an alias rather than an Asset outlet
        destination="gs://{{ params.bucket }}/moments/{{ run_id | path_segment }}/moments.jsonl",
        asset_alias="video-actions-moments",
    )


video_actions_producer()
# [END producer]


# [START consumer]
@dag(
    schedule=[AssetAlias("video-actions-moments")],
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),  # Airflow 2 needs one for a scheduled DAG
    catchup=False,
)
def video_actions_consumer() -> None:
    @task
    def report(*, triggering_asset_events: Any = None) -> None:
        """Each file the producer wrote, with its counts (the event's extra)."""
        for events in (triggering_asset_events or {}).values():
            for event in events:
                print(event.asset.uri, event.extra["rows"], "rows", event.extra["label_counts"])

    report()


video_actions_consumer()
# [END consumer]
