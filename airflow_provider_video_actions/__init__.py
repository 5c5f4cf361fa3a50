"""Airflow provider for Vertex AI video action recognition batch predictions: submit -> wait -> parse.

Names are imported lazily so that a DAG file importing this package stays cheap to parse; the
``TYPE_CHECKING`` imports give IDEs and type checkers the real types of the same names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # explicit re-exports (``X as X``), read by type checkers only
    from airflow_provider_video_actions.hooks.batch_prediction import (
        VideoActionBatchPredictionAsyncHook as VideoActionBatchPredictionAsyncHook,
    )
    from airflow_provider_video_actions.hooks.batch_prediction import (
        VideoActionBatchPredictionHook as VideoActionBatchPredictionHook,
    )
    from airflow_provider_video_actions.hooks.storage import VideoActionStorageHook as VideoActionStorageHook
    from airflow_provider_video_actions.job import JobSpec as JobSpec
    from airflow_provider_video_actions.links import (
        VideoActionBatchPredictionJobLink as VideoActionBatchPredictionJobLink,
    )
    from airflow_provider_video_actions.operators.parse import (
        ParseVideoActionPredictionsOperator as ParseVideoActionPredictionsOperator,
    )
    from airflow_provider_video_actions.operators.shards import CombineParseShardsOperator as CombineParseShardsOperator
    from airflow_provider_video_actions.operators.shards import ProposeParseShardsOperator as ProposeParseShardsOperator
    from airflow_provider_video_actions.operators.submit import (
        VideoActionBatchPredictionOperator as VideoActionBatchPredictionOperator,
    )
    from airflow_provider_video_actions.paths import path_segment as path_segment
    from airflow_provider_video_actions.predictions import ErrorRecord as ErrorRecord
    from airflow_provider_video_actions.predictions import PredictionRecord as PredictionRecord
    from airflow_provider_video_actions.sensors.wait import (
        VideoActionBatchPredictionSensor as VideoActionBatchPredictionSensor,
    )
    from airflow_provider_video_actions.triggers.wait import (
        VideoActionBatchPredictionTrigger as VideoActionBatchPredictionTrigger,
    )

__version__ = "0.2.0"

_EXPORTS = {
    "VideoActionBatchPredictionOperator": "airflow_provider_video_actions.operators.submit",
    "ParseVideoActionPredictionsOperator": "airflow_provider_video_actions.operators.parse",
    "ProposeParseShardsOperator": "airflow_provider_video_actions.operators.shards",
    "CombineParseShardsOperator": "airflow_provider_video_actions.operators.shards",
    "VideoActionBatchPredictionTrigger": "airflow_provider_video_actions.triggers.wait",
    "VideoActionBatchPredictionSensor": "airflow_provider_video_actions.sensors.wait",
    "VideoActionBatchPredictionHook": "airflow_provider_video_actions.hooks.batch_prediction",
    "VideoActionBatchPredictionAsyncHook": "airflow_provider_video_actions.hooks.batch_prediction",
    "VideoActionStorageHook": "airflow_provider_video_actions.hooks.storage",
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
