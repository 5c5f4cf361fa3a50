"""Big outputs: the job's output files parsed by N mapped task instances, then one summary."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import dag

from airflow_provider_video_actions import (
    CombineParseShardsOperator,
    ParseVideoActionPredictionsOperator,
    ProposeParseShardsOperator,
    VideoActionBatchPredictionOperator,
)


# [START sharded]
@dag(schedule=None, catchup=False, params={"project": "my-project", "bucket": "my-videos"})
def video_actions_sharded() -> None:
    predict = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="{{ params.project }}",
        region="us-central1",
        model="1234567890",
        videos_prefix="gs://{{ params.bucket }}/videos/",
        gcs_destination_prefix="gs://{{ params.bucket }}/predictions",
        deferrable=True,
    )
    # ["0/4", "1/4", ...]: one shard per target_shard_bytes (1 GiB) of output, at most max_shards (64)
    shards = ProposeParseShardsOperator(task_id="propose_shards", job=predict.output)
    parse = ParseVideoActionPredictionsOperator.partial(
        task_id="parse",
        job=predict.output,
        # path_segment (shipped with the package): the run id as one safe folder name, distinct per run
        destination="gs://{{ params.bucket }}/moments/{{ run_id | path_segment }}/",
    ).expand(shard=shards.output)
    CombineParseShardsOperator(task_id="combine", summaries=parse.output, asset_alias="video-actions-moments")


video_actions_sharded()
# [END sharded]
