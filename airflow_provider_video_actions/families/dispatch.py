"""The one place that decides a model's family, and which family's decoder reads a job's output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_video_actions.errors import VideoActionsValueError
from airflow_provider_video_actions.families.action_recognition import ACTION_RECOGNITION
from airflow_provider_video_actions.families.base import ModelFamily
from airflow_provider_video_actions.families.gemini.family import GEMINI
from airflow_provider_video_actions.families.gemini.request import GeminiSummary
from airflow_provider_video_actions.parse.source import GEMINI_OUTPUT_FILE

if TYPE_CHECKING:
    pass

#: Every family, the default (claims any model no other family claims) last.
FAMILIES: tuple[ModelFamily, ...] = (GEMINI, ACTION_RECOGNITION)
FAMILY_NAMES = tuple(family.name for family in FAMILIES)
DEFAULT_FAMILY = FAMILIES[-1]


def family_for(model: Any, explicit_family: str | None = None) -> ModelFamily:
    """The family named by ``model_family``, or else the first family that claims the model's name (the default
    family for a model that is not a name, whose checks then refuse it)."""
    if explicit_family is not None:
        for family in FAMILIES:
            if family.name == explicit_family:
                return family
        raise VideoActionsValueError(
            f"model_family must be one of {', '.join(map(repr, FAMILY_NAMES))} (or None to tell by the model name), "
            f"got {explicit_family!r}."
        )
    return next((family for family in FAMILIES if isinstance(model, str) and family.claims(model)), DEFAULT_FAMILY)


def check_region_of_any_family(region: Any) -> str:
    """The region if some family's jobs can run there (the model, hence the family, is not known yet)."""
    for family in FAMILIES[:-1]:
        try:
            return family.check_region(region)
        except VideoActionsValueError:
            continue
    return DEFAULT_FAMILY.check_region(region)


def output_family(model_family: str | None, job: Mapping[str, Any] | None, predictions: list[str]) -> ModelFamily:
    """The family whose decoder reads a job's output: the user's ``model_family``, else the job's, else the file names.

    The submit summary names the model (and holds a Gemini part for Gemini jobs); a bare output directory
    tells by its files: Gemini writes ``predictions.jsonl``, action recognition ``predictions_<n>.jsonl``.
    Never guessed line by line, so no line is read by the wrong family's decoder.
    """
    if model_family is not None:
        return family_for(None, model_family)
    if isinstance(job, Mapping):
        if isinstance(job.get(GeminiSummary.KEY), Mapping):
            return GEMINI
        if isinstance(job.get("model"), str) and job["model"]:
            return family_for(job["model"])
    names = {uri.rstrip("/").rsplit("/", 1)[-1] for uri in predictions}
    if GEMINI_OUTPUT_FILE in names and len(names) > 1:
        raise VideoActionsValueError(
            f"the output directory holds both Gemini's {GEMINI_OUTPUT_FILE} and action recognition's "
            f"predictions_<n>.jsonl files: set model_family to {' or '.join(map(repr, FAMILY_NAMES))} "
            "(or pass the submit task's result as job)."
        )
    return GEMINI if GEMINI_OUTPUT_FILE in names else ACTION_RECOGNITION
