"""Example: the same videos through both model families, then their label counts side by side.

list videos -> (action recognition model | Gemini) batch jobs -> parse each to XCom -> compare label counts.

Both jobs go through the same operators and come back as the same records; only ``model`` and, for
Gemini, ``action_labels`` differ. Against Google Cloud, set the DAG params (project, region, the
AutoML model ID, the Gemini model id) and put videos under ``gs://<bucket>/videos/``. With
``VERTEX_AI_EMULATOR_HOST`` and ``STORAGE_EMULATOR_HOST`` set, the first task uploads sample videos
with planted actions (plus one missing video) and both families find the same moments.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator

BUCKET = os.environ.get("VIDEO_ACTIONS_BUCKET", "video-actions-demo")
#: The label set Gemini may answer, with the one-line descriptions its prompt carries.
ACTION_LABELS = {
    "wave": "a person waves a hand",
    "jump": "a person jumps off the ground",
    "run": "a person runs",
    "clap": "a person claps hands",
    "sit": "a person sits down",
    "fall": "a person falls over",
}


@dag(
    schedule=None,
    catchup=False,
    tags=["example", "vertex-ai", "video", "gemini"],
    params={
        "project": "demo-project",
        "region": "us-central1",
        "automl_model": "1234567890",
        "gemini_model": "gemini-2.5-flash",
    },
)
def video_actions_two_families() -> None:
    @task
    def list_videos() -> list[str]:
        """Sample videos uploaded to the emulator, or the bucket's ``videos/`` folder on Google Cloud."""
        from airflow_provider_video_actions.emulator.samples import example_videos

        return example_videos(BUCKET)

    videos = list_videos()
    common = {
        "project_id": "{{ params.project }}",
        "region": "{{ params.region }}",
        "videos": videos,
        "check_videos_exist": False,  # the samples list one missing video on purpose: see its error record
        "gcs_destination_prefix": f"gs://{BUCKET}/predictions",
        "confidence_threshold": 0.2,
        "poll_interval": 2,
        "timeout": 3600,
    }
    automl = VideoActionBatchPredictionOperator(task_id="predict_automl", model="{{ params.automl_model }}", **common)
    gemini = VideoActionBatchPredictionOperator(
        task_id="predict_gemini",
        model="{{ params.gemini_model }}",
        action_labels=ACTION_LABELS,
        prompt="Count an action once per time it happens.",
        **common,
    )
    automl_moments = ParseVideoActionPredictionsOperator(task_id="parse_automl", job=automl.output)
    gemini_moments = ParseVideoActionPredictionsOperator(task_id="parse_gemini", job=gemini.output)

    @task
    def compare_label_counts(automl: dict[str, Any], gemini: dict[str, Any]) -> dict[str, Any]:
        """Moments per label from each family, side by side, and whether they agree."""
        labels = sorted({*automl["label_counts"], *gemini["label_counts"]})
        families = {"automl": automl, "gemini": gemini}
        counts = {label: {name: p["label_counts"].get(label, 0) for name, p in families.items()} for label in labels}
        lines = [f"{'label':<8} {'automl':>6} {'gemini':>6}"]
        lines += [f"{label:<8} {c['automl']:>6} {c['gemini']:>6}" for label, c in counts.items()]
        lines.append(f"errors   {automl['errors']:>6} {gemini['errors']:>6}")
        print("\n".join(lines))
        return {
            "label_counts": counts,
            "errors": {"automl": automl["errors"], "gemini": gemini["errors"]},
            "agree": all(c["automl"] == c["gemini"] for c in counts.values()),
        }

    compare_label_counts(automl_moments.output, gemini_moments.output)


video_actions_two_families()
