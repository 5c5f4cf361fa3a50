"""The emulator's one place that picks a job's family: each family module answers ``claims(job)``."""

from __future__ import annotations

from types import ModuleType

from google.cloud import aiplatform_v1

from airflow_provider_video_actions.emulator.families import action_recognition, gemini

#: Every emulated family, the default (claims any job) last.
FAMILIES: tuple[ModuleType, ...] = (gemini, action_recognition)


def family_for_job(job: aiplatform_v1.BatchPredictionJob) -> ModuleType:
    """The family module that runs this job."""
    return next(family for family in FAMILIES if family.claims(job))


def default_settings() -> dict[str, object]:
    """Family name -> its knobs at their defaults (Google's behaviour)."""
    return {family.NAME: family.default_settings() for family in FAMILIES}
