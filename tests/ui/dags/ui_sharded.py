"""The example's videos parsed in shards, then combined: the Moments tab of the combine shows them together.

``make test-ui`` sets the emulator to write one line per output file, so that the job's files make several shards.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_video_actions import (
    CombineParseShardsOperator,
    ParseVideoActionPredictionsOperator,
    ProposeParseShardsOperator,
    VideoActionBatchPredictionOperator,
)

BUCKET = "video-actions-deployment"


@dag(schedule=None, catchup=False)
def ui_sharded() -> None:
    @task
    def list_videos() -> list[str]:
        """The emulator's sample videos (and the missing one)."""
        from airflow_provider_video_actions.emulator.samples import example_videos

        return example_videos(BUCKET)

    predict = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="demo-project",
        region="us-central1",
        model="1234567890",
        videos=list_videos(),
        check_videos_exist=False,
        gcs_destination_prefix=f"gs://{BUCKET}/predictions",
        confidence_threshold=0.2,
        deferrable=True,
        poll_interval=2,
    )
    shards = ProposeParseShardsOperator(task_id="propose", job=predict.output, target_shard_bytes=1, max_shards=4)
    parse = ParseVideoActionPredictionsOperator.partial(
        task_id="parse", job=predict.output, destination=f"gs://{BUCKET}/moments/{{{{ run_id | path_segment }}}}/"
    ).expand(shard=shards.output)
    CombineParseShardsOperator(task_id="combine", summaries=parse.output)


ui_sharded()
