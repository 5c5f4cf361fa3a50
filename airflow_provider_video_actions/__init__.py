"""Airflow provider for Vertex AI video action recognition batch predictions: submit -> wait -> parse.

Names are imported lazily so that a DAG file importing this package stays cheap to parse.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "VideoActionBatchPredictionOperator": "airflow_provider_video_actions.operators.submit",
    "ParseVideoActionPredictionsOperator": "airflow_provider_video_actions.operators.parse",
    "ProposeParseShardsOperator": "airflow_provider_video_actions.operators.shards",
    "CombineParseShardsOperator": "airflow_provider_video_actions.operators.shards",
    "VideoActionBatchPredictionTrigger": "airflow_provider_video_actions.triggers.wait",
    "VideoActionBatchPredictionSensor": "airflow_provider_video_actions.sensors.wait",
    "VideoActionBatchPredictionHook": "airflow_provider_video_actions.hooks.batch_prediction",
    "VideoActionBatchPredictionAsyncHook": "airflow_provider_video_actions.hooks.batch_prediction",
    "VideoActionBatchPredictionJobLink": "airflow_provider_video_actions.links",
    "PredictionRecord": "airflow_provider_video_actions.predictions",
    "ErrorRecord": "airflow_provider_video_actions.predictions",
    "JobSpec": "airflow_provider_video_actions.job",
    "path_segment": "airflow_provider_video_actions.paths",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import an exported name on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
