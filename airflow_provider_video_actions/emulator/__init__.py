"""Local emulator of the Vertex AI JobService (video action recognition batch jobs) and of GCS."""

from airflow_provider_video_actions.emulator.job_service import JobTimeline
from airflow_provider_video_actions.emulator.server import Emulator
from airflow_provider_video_actions.emulator.videos import ACTIONS, PlantedAction, make_video

__all__ = ["ACTIONS", "Emulator", "JobTimeline", "PlantedAction", "make_video"]
