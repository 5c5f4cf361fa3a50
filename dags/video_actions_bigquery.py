"""Example: a big job's moments parsed by mapped tasks into a Parquet dataset, loaded into BigQuery.

submit (deferred wait) -> propose shards from the output's size -> parse, one mapped task instance
per shard, each writing ``part-0000i-of-0000n.parquet`` -> one combined summary (and one asset event
through the ``video-actions-moments-dataset`` alias) -> ``GCSToBigQueryOperator`` appends the parts to
a table (Parquet carries the schema). Paths use the run id, so a manual run needs no logical date.

Set the DAG params (project, region, model, table ``project.dataset.table``) and the
``VIDEO_ACTIONS_BUCKET`` environment variable. The load needs BigQuery, which the emulator does not
provide: the tests parse this DAG but cannot run it (tests/test_shards.py runs the same propose ->
mapped parse -> combine chain through the emulator).
"""

from __future__ import annotations

import os

from airflow.providers.common.compat.sdk import dag, task
from airflow.providers.google.cloud.transfers.gcs_to_bigquery import GCSToBigQueryOperator

from airflow_provider_video_actions import (
    CombineParseShardsOperator,
    ParseVideoActionPredictionsOperator,
    ProposeParseShardsOperator,
    VideoActionBatchPredictionOperator,
)

BUCKET = os.environ.get("VIDEO_ACTIONS_BUCKET", "video-actions-demo")
DATASET_ALIAS = "video-actions-moments-dataset"


@dag(
    schedule=None,
    catchup=False,
    tags=["example", "vertex-ai", "video", "bigquery"],
    params={
        "project": "demo-project",
        "region": "us-central1",
        "model": "1234567890",
        "table": "demo-project.video_actions.moments",
    },
)
def video_actions_bigquery() -> None:
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
        deferrable=True,
    )
    # One shard per GiB of output (the default target), at most 64: the DAG need not know the size.
    shards = ProposeParseShardsOperator(task_id="propose_shards", job=predict.output)
    parse = ParseVideoActionPredictionsOperator.partial(
        task_id="parse",
        job=predict.output,
        # path_segment (a filter every operator of the package has): the run id as one folder name, distinct per run
        destination=f"gs://{BUCKET}/moments/{{{{ run_id | path_segment }}}}/",
        retries=2,  # a retried instance rewrites exactly its own part
    ).expand(shard=shards.output)
    combine = CombineParseShardsOperator(task_id="combine", summaries=parse.output, asset_alias=DATASET_ALIAS)
    load = GCSToBigQueryOperator(
        task_id="load_to_bigquery",
        bucket=BUCKET,
        # The combined summary's uri is the wildcard of this run's parts: gs://bucket/moments/<run>/part-*-of-0000n.parquet
        source_objects=[f"{{{{ ti.xcom_pull(task_ids='combine')['uri'] | replace('gs://{BUCKET}/', '') }}}}"],
        source_format="PARQUET",
        destination_project_dataset_table="{{ params.table }}",
        write_disposition="WRITE_APPEND",
        # A deterministic load job id: a retry after a load that did finish fails instead of appending twice.
        force_rerun=False,
    )
    combine >> load


video_actions_bigquery()
