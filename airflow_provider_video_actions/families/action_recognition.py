"""The action recognition family: Vertex AI video action recognition models (AutoML or custom).

Instances are ``{"content", "mimeType", "timeSegmentStart", "timeSegmentEnd"}`` lines; the model takes
``confidenceThreshold`` and ``maxPredictions`` as model parameters (``maxPredictions`` counts per frame,
as ``VideoActionRecognitionPredictionParams`` says, not per instance). Its output lines are read by
:mod:`.action_recognition_arrow` (fast, whole chunks) and :mod:`.action_recognition_answers` (exact).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_video_actions.families.base import FamilyRequest, ModelFamily, OpenRead, model_resource_name
from airflow_provider_video_actions.job import VideoActionsValueError, VideoInstance

if TYPE_CHECKING:
    from airflow_provider_video_actions.families.action_recognition_arrow import FastChunk
    from airflow_provider_video_actions.parse.keep import PredictionFilter
    from airflow_provider_video_actions.predictions import DecodedChunk


class _Decoder:
    """Action recognition output: Arrow's fast path for chunks it vouches for, the exact line decoder for the rest."""

    #: Bytes of whole lines per chunk: enough blocks for Arrow's threads, little to redo when a chunk is refused.
    chunk_bytes: ClassVar[int] = 2 * 1024 * 1024

    def __init__(self) -> None:
        try:
            from airflow_provider_video_actions.families.action_recognition_arrow import read_fast
        except ImportError:  # pyarrow not installed: no fast path, every chunk is read exactly
            read_fast = None
        #: The fast path (``read_fast(chunk, keep)``), looked up once: None without pyarrow.
        self.read_fast: Callable[[bytes, PredictionFilter], FastChunk | None] | None = read_fast

    def decode(self, chunk: bytes, file: str, first_line: int) -> DecodedChunk:
        from airflow_provider_video_actions.families.action_recognition_answers import decode_exactly

        return decode_exactly(chunk, file, first_line)


class ActionRecognitionFamily(ModelFamily):
    """Models trained for video action recognition: labels fixed at training, filters as model parameters."""

    name: ClassVar[str] = "action_recognition"
    #: The instance schema's mime types (``VideoActionRecognitionPredictionInstance``).
    mime_types: ClassVar[Mapping[str, str]] = {".mp4": "video/mp4", ".avi": "video/avi", ".mov": "video/quicktime"}

    def claims(self, model: str) -> bool:
        """Any model that no other family claims is an action recognition model."""
        return True

    def resource_name(self, model: str, project_id: str, region: str) -> str:
        """``ID[@version]`` or ``projects/P/locations/L/models/ID[@version]``, in ``region``."""
        if isinstance(model, str) and "publishers/" in model:
            raise VideoActionsValueError(
                f"model {model!r} is a publisher model, not an action recognition model: use a Gemini model "
                "('gemini-<version>' or 'publishers/google/models/gemini-<version>'), or a model ID."
            )
        return model_resource_name(model, project_id, region, "video action recognition")

    def check_request(self, request: FamilyRequest) -> None:
        """Labels were fixed at training: no label set, prompt, or Gemini-only settings."""
        gemini_only = {
            "action_labels": request.action_labels,
            "prompt": request.prompt,
            "fps": request.fps,
            "media_resolution": request.media_resolution,
            "max_requests_per_job": request.max_requests_per_job,
            "max_input_bytes": request.max_input_bytes,
        }
        for param, value in gemini_only.items():
            if value is not None:
                raise VideoActionsValueError(
                    f"{param} is only for Gemini models; this is an action recognition model whose labels were "
                    f"fixed at training. Remove {param}, or use a 'gemini-...' model (or model_family='gemini')."
                )

    def request_lines(self, instances: Iterable[VideoInstance], request: FamilyRequest) -> Iterator[str]:
        """One instance line per video or segment."""
        return (instance.to_line() for instance in instances)

    def check_input(self, lines: int, size: int, request: FamilyRequest) -> None:
        """No documented per-job limits for these models: the service reports what it refuses."""

    def model_parameters(self, request: FamilyRequest) -> dict[str, Any]:
        """The model filters its own moments: ``confidenceThreshold`` and ``maxPredictions`` (per frame)."""
        return {"confidenceThreshold": request.confidence_threshold, "maxPredictions": request.max_predictions}

    def answer_decoder(
        self, job: Mapping[str, Any] | None, action_labels: Any = None, open_read: OpenRead | None = None
    ) -> _Decoder:
        """The fast and the exact reader; nothing from the summary is needed."""
        return _Decoder()


ACTION_RECOGNITION = ActionRecognitionFamily()
