"""The Gemini family's request side: model names, the label set, limits, request lines and their response schema.

A Gemini batch job runs through the same ``batchPredictionJobs.create`` as an action recognition
model, with a publisher model (``publishers/google/models/gemini-...``, or a tuned model's
``projects/P/locations/L/models/ID`` with ``model_family="gemini"``) and one JSONL request line per
video or segment::

    {"request": {"contents": [{"role": "user", "parts": [
        {"fileData": {"fileUri": "gs://b/v.mp4", "mimeType": "video/mp4"},
         "videoMetadata": {"startOffset": "30.000000s", "endOffset": "90.500000s", "fps": 2}},
        {"text": "<prompt>"}]}],
     "generationConfig": {"responseMimeType": "application/json", "responseSchema": {...}, "temperature": 0,
                          "mediaResolution": "MEDIA_RESOLUTION_LOW"},
     "labels": {"airflow_provider": "video-actions", "video-actions-instance": "0"}}}

The ``video-actions-instance`` label holds the line's index in the instances file: Google echoes the
request, labels included, so an answer joins to its video and segment through it (the echoed
``fileData`` and offsets are the fallback). The response schema asks for ``{"moments": [{"label",
"start", "end", "confidence"}]}``: ``label`` is an enum of the user's label set, times are seconds
from the start of the video, ``confidence`` is the model's own (uncalibrated) estimate in [0, 1].
Gemini takes no model parameters, so ``confidence_threshold`` and ``max_predictions`` are stated in
the prompt and enforced again by the parser. This module is stdlib-only, so DAG files stay cheap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_video_actions.job import (
    PROVIDER_LABEL,
    PROVIDER_LABEL_VALUE,
    VideoActionsValueError,
    VideoInstance,
    format_seconds,
)

#: Where Google's publisher models live; a Gemini batch job names its model by this path.
PUBLISHER_PREFIX = "publishers/google/models/"
_GEMINI_RE = re.compile(
    r"(?:(?:projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/)?publishers/google/models/)?"
    r"(?P<id>gemini-[A-Za-z0-9._-]+)"
)
#: The answer's JSON fields (no underscores, so snake_case and camelCase echoes read alike).
ANSWER_FIELDS = ("label", "start", "end", "confidence")
#: Request label holding the line's index in the instances file: the join key of an answer to its instance.
INSTANCE_LABEL = "video-actions-instance"
#: Google's documented video mime types for Gemini (no video/avi), by file extension.
MIME_TYPES: Mapping[str, str] = {
    ".flv": "video/x-flv",
    ".mov": "video/quicktime",
    ".qt": "video/quicktime",
    ".mpeg": "video/mpeg",
    ".mpg": "video/mpg",
    ".mpegs": "video/mpegs",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".wmv": "video/wmv",
    ".3gp": "video/3gpp",
}
#: ``generationConfig.mediaResolution`` values (``GenerationConfig.MediaResolution`` in aiplatform_v1).
MEDIA_RESOLUTIONS = ("MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM", "MEDIA_RESOLUTION_HIGH")
#: Google's Gemini batch limits: requests per job and bytes of input file.
MAX_REQUESTS_PER_JOB = 200_000
MAX_INPUT_BYTES = 1_000_000_000
#: ``videoMetadata.fps`` range: (0, 24].
MAX_FPS = 24.0


def is_publisher_model(model: Any) -> bool:
    """Whether ``model`` names a Gemini publisher model, in any of its three spellings."""
    return isinstance(model, str) and _GEMINI_RE.fullmatch(model) is not None


def publisher_model(model: Any, project_id: str, region: str) -> str | None:
    """The model name a Gemini publisher model is created with, or None when ``model`` is no such name.

    ``gemini-x`` and ``publishers/google/models/gemini-x`` become the publisher path; the full
    ``projects/P/locations/L/publishers/google/models/gemini-x`` is kept, checked against project and region.
    """
    match = _GEMINI_RE.fullmatch(model) if isinstance(model, str) else None
    if not match:
        return None
    if match["project"] is None:
        return PUBLISHER_PREFIX + match["id"]
    if (match["project"], match["region"]) != (project_id, region):
        raise VideoActionsValueError(
            f"model {model!r} names project {match['project']!r} and location {match['region']!r}, but the job "
            f"runs in project_id={project_id!r}, region={region!r}; make them agree or use 'gemini-<version>'."
        )
    return model


def _one_line(text: str) -> bool:
    """Whether text holds no line break of any kind (each would start a line of its own in the prompt)."""
    return len(f"x{text}x".splitlines()) == 1


def check_action_labels(value: Any, param: str = "action_labels") -> dict[str, str]:
    """The label set as name -> one-line description ('' if none), from a list of names or such a dict."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        pairs = [(name, "") for name in value] if isinstance(value, (list, tuple)) else []
    if not pairs:
        raise VideoActionsValueError(
            f"{param} must be a non-empty list of label names or a dict of name -> one-line description, got {value!r}."
        )
    labels: dict[str, str] = {}
    for name, description in pairs:
        if not isinstance(name, str) or not name.strip() or not _one_line(name):
            raise VideoActionsValueError(
                f"{param}: label names must be non-empty one-line strings (no line break of any kind: \\n, \\r, "
                f"U+0085, U+2028...), got {name!r}."
            )
        if not isinstance(description, str | None) or not _one_line(description or ""):
            raise VideoActionsValueError(
                f"{param}[{name!r}]: the description must be one line of text (no line break of any kind: \\n, "
                f"\\r, U+0085, U+2028...), got {description!r}."
            )
        if name.strip() in labels:
            raise VideoActionsValueError(f"{param}: label {name.strip()!r} is given twice.")
        labels[name.strip()] = (description or "").strip()
    return labels


def check_fps(fps: Any) -> float | None:
    """``videoMetadata.fps``: None (Google's default, 1 frame a second) or a number in (0, 24]."""
    if fps is None:
        return None
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= MAX_FPS:
        raise VideoActionsValueError(
            f"fps must be a number of frames per second above 0 and at most {MAX_FPS:g} (Gemini samples 1 by "
            f"default; more finds shorter actions and costs tokens in proportion), got {fps!r}."
        )
    return float(fps)


def check_media_resolution(value: Any) -> str | None:
    """``generationConfig.mediaResolution``: None (the model's default), or low, medium or high."""
    if value is None:
        return None
    name = f"MEDIA_RESOLUTION_{value.upper()}" if isinstance(value, str) and "_" not in value else value
    if name not in MEDIA_RESOLUTIONS:
        raise VideoActionsValueError(
            f"media_resolution must be 'low', 'medium' or 'high' (or {', '.join(MEDIA_RESOLUTIONS)}), got {value!r}."
        )
    return name


def response_schema(labels: Mapping[str, str], max_predictions: int) -> dict[str, Any]:
    """The REST ``responseSchema``: moments with an enum label, start/end seconds and a [0, 1] confidence."""
    moment = {
        "type": "OBJECT",
        "properties": {
            "label": {"type": "STRING", "enum": list(labels)},
            "start": {"type": "NUMBER", "minimum": 0},
            "end": {"type": "NUMBER", "minimum": 0},
            "confidence": {"type": "NUMBER", "minimum": 0, "maximum": 1},
        },
        "required": list(ANSWER_FIELDS),
        "propertyOrdering": list(ANSWER_FIELDS),
    }
    return {
        "type": "OBJECT",
        "properties": {"moments": {"type": "ARRAY", "items": moment, "maxItems": max_predictions}},
        "required": ["moments"],
    }


@dataclass(frozen=True)
class GeminiAsk:
    """What one Gemini job is asked, the same for every video: label set, threshold, limit, sampling, extra prompt."""

    labels: Mapping[str, str]
    confidence_threshold: float
    max_predictions: int
    addition: str | None = None
    fps: float | None = None
    media_resolution: str | None = None

    def prompt(self, instance: VideoInstance) -> str:
        """The instructions: the label set with descriptions, the absolute segment, seconds, threshold and limit."""
        label_lines = "\n".join(f"- {name}: {text}" if text else f"- {name}" for name, text in self.labels.items())
        end = "the end of the video" if instance.segment_end is None else f"{instance.segment_end:.3f} s"
        parts = [
            "Find the moments in this video where one of these actions happens. Use only these labels:",
            label_lines,
            f"Look only at the part of the video from {instance.segment_start:.3f} s to {end}.",
            "For each moment give its label, its start and end as seconds from the start of the whole video "
            "(not of the part you look at), and your confidence from 0 to 1.",
            f"Leave out moments with confidence below {self.confidence_threshold:g}; report at most "
            f"{self.max_predictions} moments, the most confident ones. If none of the actions happens, answer an "
            "empty list.",
        ]
        if self.addition:
            parts.append(self.addition.strip())
        return "\n".join(parts)

    def request_line(self, instance: VideoInstance, index: int) -> str:
        """The JSONL request line of the ``index``-th instance (camelCase protobuf JSON, checked against content.py)."""
        metadata: dict[str, Any] = {"startOffset": format_seconds(instance.segment_start)}
        if instance.segment_end is not None:
            metadata["endOffset"] = format_seconds(instance.segment_end)
        if self.fps is not None:
            metadata["fps"] = self.fps
        video = {"fileData": {"fileUri": instance.content, "mimeType": instance.mime_type}, "videoMetadata": metadata}
        config: dict[str, Any] = {
            "responseMimeType": "application/json",
            "responseSchema": response_schema(self.labels, self.max_predictions),
            "temperature": 0,
        }
        if self.media_resolution is not None:
            config["mediaResolution"] = self.media_resolution
        request = {
            "contents": [{"role": "user", "parts": [video, {"text": self.prompt(instance)}]}],
            "generationConfig": config,
            "labels": {PROVIDER_LABEL: PROVIDER_LABEL_VALUE, INSTANCE_LABEL: str(index)},
        }
        return json.dumps({"request": request})

    def request_lines(self, instances: Iterable[VideoInstance]) -> Iterator[str]:
        """One request line per instance, each labelled with its index."""
        return (self.request_line(instance, index) for index, instance in enumerate(instances))


@dataclass(frozen=True)
class GeminiSummary:
    """The Gemini part of the submit summary: what the parse task holds answers to (label set, threshold, limit).

    Written by the submit operator under :attr:`KEY` and read back only through :meth:`from_summary`.
    """

    action_labels: tuple[str, ...]
    confidence_threshold: float = 0.0
    max_predictions: int | None = None

    KEY = "gemini"

    @classmethod
    def from_ask(cls, ask: GeminiAsk) -> GeminiSummary:
        """The summary part of what a job was asked."""
        return cls(tuple(ask.labels), ask.confidence_threshold, ask.max_predictions)

    def to_summary(self) -> dict[str, Any]:
        """The JSON-able entry merged into the submit summary."""
        return {
            self.KEY: {
                "action_labels": list(self.action_labels),
                "confidence_threshold": self.confidence_threshold,
                "max_predictions": self.max_predictions,
            }
        }

    @classmethod
    def from_summary(cls, summary: Any) -> GeminiSummary | None:
        """The part recorded in a submit summary, or None when there is none (not a Gemini job, or no summary)."""
        recorded = summary.get(cls.KEY) if isinstance(summary, Mapping) else None
        if not isinstance(recorded, Mapping) or recorded.get("action_labels") is None:
            return None
        return cls(
            tuple(check_action_labels(recorded["action_labels"], f"job[{cls.KEY!r}]['action_labels']")),
            float(recorded.get("confidence_threshold") or 0.0),
            recorded.get("max_predictions"),
        )
