"""Example: recognise actions in videos with a Vertex AI model, then use the moments downstream.

submit (deferred wait) -> parse to XCom and to a Parquet file in GCS -> print a per-video table and
draw a per-video action timeline PNG (at ``$VIDEO_ACTIONS_TIMELINE``, else in a new private temporary
folder per run; needs the ``timeline`` extra). Nothing needs a logical date: the DAG runs however it is
triggered (UI, REST API, ``airflow dags trigger``, ``airflow dags test``); per-run paths use the run id.

Against Google Cloud, set the DAG params (project, region, model, bucket) and put videos under
``gs://<bucket>/videos/``. With ``VERTEX_AI_EMULATOR_HOST`` and ``STORAGE_EMULATOR_HOST`` set
(``make demo`` does it), the first task generates sample videos with planted actions instead,
plus one missing video to show how a failed instance is reported.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator

BUCKET = os.environ.get("VIDEO_ACTIONS_BUCKET", "video-actions-demo")


@dag(
    schedule=None,
    catchup=False,
    tags=["example", "vertex-ai", "video"],
    params={"project": "demo-project", "region": "us-central1", "model": "1234567890"},
)
def video_action_recognition() -> None:
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
        confidence_threshold=0.2,
        deferrable=True,  # wait in the triggerer whatever [operators] default_deferrable says
        poll_interval=2,
        timeout=3600,
    )
    moments = ParseVideoActionPredictionsOperator(task_id="parse_to_xcom", job=predict.output, min_confidence=0.5)
    ParseVideoActionPredictionsOperator(
        task_id="parse_to_parquet",
        job=predict.output,
        # path_segment (a filter every operator of the package has): the run id as one folder name, distinct per run
        destination=f"gs://{BUCKET}/parsed/{{{{ run_id | path_segment }}}}/moments.parquet",
    )

    @task
    def print_table(parsed: dict[str, Any]) -> None:
        """A per-video table of detected actions, and every video that failed."""
        lines = [f"{'video':<48} {'action':<8} {'at (s)':>7} {'confidence':>10}"]
        for p in sorted(parsed["predictions"], key=lambda p: (p["video_uri"], p["time_start"])):
            lines.append(f"{p['video_uri']:<48} {p['label']:<8} {p['time_start']:>7.2f} {p['confidence']:>10.2f}")
        for e in parsed["error_records"]:
            lines.append(f"{e['video_uri']:<48} FAILED: {e['message']} (code {e['code']})")
        lines.append(f"moments: {parsed['rows']}, videos: {parsed['videos']}, errors: {parsed['errors']}")
        print("\n".join(lines))

    @task
    def draw_timeline(parsed: dict[str, Any]) -> str:
        """The same moments as a picture: one row per video, a mark per moment, opacity by confidence."""
        from airflow_provider_video_actions.timeline import render_timeline

        # A fresh 0700 folder per run: a file planted at a fixed /tmp path (a symlink) is never written through.
        path = os.environ.get("VIDEO_ACTIONS_TIMELINE") or os.path.join(
            tempfile.mkdtemp(prefix="video-actions-timeline-"), "timeline.png"
        )
        render_timeline(parsed["predictions"], path, errors=parsed["error_records"])
        print(f"Timeline: {path}")
        return path

    print_table(moments.output)
    draw_timeline(moments.output)


video_action_recognition()
