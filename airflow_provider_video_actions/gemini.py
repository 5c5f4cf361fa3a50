"""The Gemini family's request side: model names, the label set, request lines and their response schema.

A Gemini batch job runs through the same ``batchPredictionJobs.create`` as an action recognition
model, with a publisher model (``publishers/google/models/gemini-...``) and one JSONL request line
per video or segment::

    {"request": {"contents": [{"role": "user", "parts": [
        {"fileData": {"fileUri": "gs://b/v.mp4", "mimeType": "video/mp4"},
         "videoMetadata": {"startOffset": "30.000000s", "endOffset": "90.500000s"}},
        {"text": "<prompt>"}]}],
     "generationConfig": {"responseMimeType": "application/json", "responseSchema": {...}, "temperature": 0},
     "labels": {"airflow-provider": "video-actions"}}}

The response schema asks for ``{"moments": [{"label", "start", "end", "confidence"}]}``: ``label`` is
an enum of the user's label set, times are seconds from the start of the video, ``confidence`` is the
model's own (uncalibrated) estimate in [0, 1]. Gemini takes no model parameters, so
``confidence_threshold`` and ``max_predictions`` are stated in the prompt and enforced again by the
parser (:mod:`airflow_provider_video_actions.gemini_answers`). This module is stdlib-only, so DAG
files that use it stay cheap to parse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
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
_GEMINI_RE = re.compile(r"^(?:publishers/google/models/)?(?P<id>gemini-[A-Za-z0-9._-]+)$")
#: The answer's JSON fields (no underscores, so snake_case and camelCase echoes read alike).
ANSWER_FIELDS = ("label", "start", "end", "confidence")
#: Key of the Gemini-only part of the submit operator's summary (label set, threshold, limit).
SUMMARY_KEY = "gemini"


def gemini_model_name(model: Any) -> str | None:
    """The publisher path of a Gemini model (a bare ``gemini-...`` id too), or None for any other model.

    This is the one place that decides the model family.
    """
    if not isinstance(model, str):
        return None
    match = _GEMINI_RE.match(model)
    if match:
        return PUBLISHER_PREFIX + match["id"]
    if "publishers/" in model:
        raise VideoActionsValueError(
            f"model {model!r} is not a Gemini model this provider can run: use "
            "'publishers/google/models/gemini-<version>' or the bare id 'gemini-<version>'."
        )
    return None


def is_gemini(model: Any) -> bool:
    """Whether ``model`` names a Gemini model (request lines in, response lines out)."""
    return gemini_model_name(model) is not None


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
        if not isinstance(name, str) or not name.strip() or "\n" in name:
            raise VideoActionsValueError(f"{param}: label names must be non-empty one-line strings, got {name!r}.")
        if not isinstance(description, str | None) or "\n" in (description or ""):
            raise VideoActionsValueError(f"{param}[{name!r}]: the description must be one line of text.")
        if name.strip() in labels:
            raise VideoActionsValueError(f"{param}: label {name.strip()!r} is given twice.")
        labels[name.strip()] = (description or "").strip()
    return labels


def check_family(model: str, action_labels: Any) -> dict[str, str] | None:
    """The label set for a Gemini model (required), or None for an action recognition model (must have none)."""
    if is_gemini(model):
        if action_labels is None:
            raise VideoActionsValueError(
                f"model {model!r} is a Gemini model: give action_labels, the labels it may answer "
                "(a list of names, or a dict of name -> one-line description)."
            )
        return check_action_labels(action_labels)
    if action_labels is not None:
        raise VideoActionsValueError(
            f"action_labels is only for Gemini models; model {model!r} is an action recognition model whose "
            "labels were fixed at training. Remove action_labels, or use a 'gemini-...' model."
        )
    return None


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
    """What one Gemini job is asked, the same for every video: the label set, threshold, limit, extra prompt."""

    labels: Mapping[str, str]
    confidence_threshold: float
    max_predictions: int
    addition: str | None = None

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

    def request_line(self, instance: VideoInstance) -> str:
        """One JSONL request line for a video or segment (camelCase protobuf JSON, checked against content.py)."""
        metadata = {"startOffset": format_seconds(instance.segment_start)}
        if instance.segment_end is not None:
            metadata["endOffset"] = format_seconds(instance.segment_end)
        video = {"fileData": {"fileUri": instance.content, "mimeType": instance.mime_type}, "videoMetadata": metadata}
        request = {
            "contents": [{"role": "user", "parts": [video, {"text": self.prompt(instance)}]}],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseSchema": response_schema(self.labels, self.max_predictions),
                "temperature": 0,
            },
            "labels": {PROVIDER_LABEL: PROVIDER_LABEL_VALUE},
        }
        return json.dumps({"request": request})

    def summary_fields(self) -> dict[str, Any]:
        """What the parse operator needs from a Gemini job's summary: the label set, threshold and limit."""
        return {
            "action_labels": list(self.labels),
            "confidence_threshold": self.confidence_threshold,
            "max_predictions": self.max_predictions,
        }
