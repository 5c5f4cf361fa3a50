"""Sample videos for the demo and the end-to-end tests: known actions at known moments.

Each sample plants actions with :func:`make_video`; the emulator reports each at the middle of its
run (see ``model.py``). One more URI names a video that does not exist, to show a failed instance.
Importable without the emulator extra: against Google Cloud, :func:`example_videos` only lists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_video_actions.emulator.videos import PlantedAction, make_video

if TYPE_CHECKING:
    from google.cloud import storage

#: object name -> actions planted in it (4-second clips at 10 fps).
SAMPLE_VIDEOS: dict[str, tuple[PlantedAction, ...]] = {
    "videos/kitchen.mp4": (PlantedAction("wave", 0.5, 0.5, 0.9), PlantedAction("clap", 2.0, 1.0, 0.7)),
    "videos/playground.mp4": (PlantedAction("jump", 1.0, 0.5, 1.0), PlantedAction("run", 2.5, 1.0, 0.6)),
    "videos/lobby.mp4": (PlantedAction("sit", 1.5, 1.0, 0.4),),
}
MISSING_VIDEO = "videos/missing.mp4"


def example_videos(bucket: str) -> list[str]:
    """The example DAGs' videos: samples uploaded to the emulator, else the bucket's ``videos/`` folder."""
    from airflow_provider_video_actions import gcs
    from airflow_provider_video_actions.families.action_recognition import ActionRecognitionFamily
    from airflow_provider_video_actions.families.gemini.family import GeminiFamily
    from airflow_provider_video_actions.hooks.storage import VideoActionStorageHook, vertex_emulator_host

    client = VideoActionStorageHook().storage_client
    if vertex_emulator_host():
        return upload_samples(client, bucket)
    # Videos both families read: the example DAGs send the same list to each.
    both = {ext for ext in ActionRecognitionFamily.mime_types if ext in GeminiFamily.mime_types}
    return gcs.list_videos(client, f"gs://{bucket}/videos/", both)


def upload_samples(client: storage.Client, bucket: str) -> list[str]:
    """Create the bucket if needed, upload the samples, and return their URIs plus the missing one."""
    target = client.bucket(bucket)
    if not target.exists():
        target = client.create_bucket(bucket)
    for name, actions in SAMPLE_VIDEOS.items():
        target.blob(name).upload_from_string(make_video(actions), content_type="video/mp4")
    return [f"gs://{bucket}/{name}" for name in [*SAMPLE_VIDEOS, MISSING_VIDEO]]
