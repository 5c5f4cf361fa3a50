"""The Gemini family's answer side: read response lines into the same records as action recognition output.

A Gemini output line is ``{"status": "", "processed_time": ..., "request": {...the request, echoed...},
"response": {"candidates": [{"content": {"parts": [{"text": "<JSON answer>"}]}, "finishReason":
"STOP"}], ...}}``; a failed line has a non-empty ``status`` (and ``"response": {}`` or none). Google
documents the echo camelCase with explicit nulls for unset fields (``"fileData": null``, ``"thought":
null``); a Google notebook shows it snake_case; offsets may come back as ``"30s"`` or ``{"seconds":
30}``. Every field here is optional and nullable, and snake_case keys are read as camelCase.

An answer joins to its instance by the request label ``video-actions-instance`` (the line's index in
the instances file, which the parser reads from the submit summary's ``instances_uris``); without the
label, or without a summary, the echoed ``fileData.fileUri`` and ``videoMetadata`` offsets name the
video and segment. The answer text is decoded against a typed struct of the response schema, then
checked: every failure (a non-empty ``status``, a ``blockReason``, no candidate, a ``finishReason``
other than STOP, truncated JSON, a schema mismatch, a label outside the set, a time outside the
segment, a confidence outside [0, 1]) turns the whole line into one :class:`ErrorRecord` naming the
video and the reason, never a silent drop. Kept answers are filtered like the action recognition model
filters its own: below ``confidence_threshold`` dropped, the ``max_predictions`` most confident kept.
Records carry ``label_id`` = the label's index in the set (as a string) and the model's own
``confidence`` (uncalibrated, self-reported).
"""

from __future__ import annotations

import heapq
import json
import re
from dataclasses import dataclass
from typing import Any

import msgspec
from google.rpc import code_pb2

from airflow_provider_video_actions.families.base import TIME_TOLERANCE, OpenRead
from airflow_provider_video_actions.families.gemini.request import INSTANCE_LABEL, GeminiSummary, check_action_labels
from airflow_provider_video_actions.job import VideoActionsValueError, brief, parse_seconds
from airflow_provider_video_actions.predictions import (
    INVALID_LINE,
    JOB_ERROR,
    MALFORMED,
    DecodedChunk,
    ErrorRecord,
    Instance,
    Moment,
    decode_lines,
)

_RPC_STATUS_RE = re.compile(r'"status"\s*:\s*"([A-Z_]+)"')


@dataclass(frozen=True)
class AnswerRules:
    """How answers are checked and filtered: the label set (None: read it from each echoed schema), threshold, limit."""

    labels: tuple[str, ...] | None = None
    confidence_threshold: float = 0.0
    max_predictions: int | None = None

    @classmethod
    def from_job(cls, job: Any, action_labels: Any = None) -> AnswerRules:
        """Rules from the submit summary's Gemini part, ``action_labels`` overriding its label set."""
        recorded = GeminiSummary.from_summary(job)
        labels = tuple(check_action_labels(action_labels)) if action_labels is not None else None
        if recorded is None:
            return cls(labels)
        return cls(labels or recorded.action_labels, recorded.confidence_threshold, recorded.max_predictions)


# ---------------------------------------------------------------------------------------------
# The wire shape, after keys are camelCased; every field may be missing or null.
# ---------------------------------------------------------------------------------------------


class _Struct(msgspec.Struct, rename="camel"):
    """A wire struct: Python names snake_case, JSON names camelCase."""


class _FileData(_Struct):
    file_uri: str | None = None
    mime_type: str | None = None


class _Duration(_Struct):
    """A protobuf Duration written as an object (``{"seconds": 30, "nanos": 500000000}``)."""

    seconds: int | str | None = None
    nanos: int | None = None


Offset = str | float | _Duration | None


class _VideoMetadata(_Struct):
    start_offset: Offset = None
    end_offset: Offset = None


class _Part(_Struct):
    text: str | None = None
    thought: bool | None = None
    file_data: _FileData | None = None
    video_metadata: _VideoMetadata | None = None


class _Content(_Struct):
    parts: list[_Part] | None = None


class _Request(_Struct):
    contents: list[_Content] | None = None
    generation_config: dict[str, Any] | None = None
    labels: dict[str, str | None] | None = None


class _Candidate(_Struct):
    content: _Content | None = None
    finish_reason: str | None = None
    finish_message: str | None = None


class _PromptFeedback(_Struct):
    block_reason: str | None = None
    block_reason_message: str | None = None


class _Response(_Struct):
    candidates: list[_Candidate] | None = None
    prompt_feedback: _PromptFeedback | None = None


class _Status(_Struct):
    code: int | None = None
    message: str | None = None


class _Line(_Struct):
    request: _Request | None = None
    response: _Response | None = None
    status: str | _Status | None = None


class _AnswerMoment(msgspec.Struct, forbid_unknown_fields=True):
    """One moment of the answer, exactly as the response schema describes it."""

    label: str
    start: float
    end: float
    confidence: float


class _Answer(msgspec.Struct, forbid_unknown_fields=True):
    """The answer's JSON, exactly as the response schema describes it."""

    moments: list[_AnswerMoment]


_decode_answer = msgspec.json.Decoder(_Answer).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


class LineRejectedError(Exception):
    """A Gemini line that yields no records; ``code`` is a google.rpc code, ``kind`` the error record's kind."""

    def __init__(self, message: str, code: int = code_pb2.UNKNOWN, kind: str = INVALID_LINE) -> None:
        super().__init__(message)
        self.message, self.code, self.kind = message, code, kind


# ---------------------------------------------------------------------------------------------
# Which instance a line answers.
# ---------------------------------------------------------------------------------------------

Segment = tuple[str, float, float | None]


class InstanceIndex:
    """Instance index -> (video, segment start, segment end), read from the job's own request lines on first use."""

    def __init__(self, instances_uris: list[str], open_read: OpenRead | None) -> None:
        self._uris, self._open = instances_uris, open_read
        self._segments: list[Segment] | None = None

    def get(self, index: int) -> Segment | None:
        """The instance at ``index``, or None when the instances file is out of reach or shorter."""
        if self._segments is None:
            self._segments = self._load()
        return self._segments[index] if 0 <= index < len(self._segments) else None

    def _load(self) -> list[Segment]:
        """Our request lines, in file order (a single file: the submit operator writes one)."""
        if self._open is None or len(self._uris) != 1:
            return []
        from google.api_core.exceptions import NotFound

        segments = []
        try:
            with self._open(self._uris[0]) as handle:
                for raw in handle:
                    if raw.strip():
                        request = msgspec.convert(json.loads(raw).get("request") or {}, _Request)
                        segments.append(_echoed_video(request))
        except (FileNotFoundError, NotFound):  # deleted since the job ran: answers join by their echo instead
            return []
        return segments


def _line_index(request: _Request | None) -> int | None:
    """The instance index the request was labelled with, or None."""
    value = (request.labels or {}).get(INSTANCE_LABEL) if request else None
    return int(value) if isinstance(value, str) and value.isdigit() else None


# ---------------------------------------------------------------------------------------------
# Decoding.
# ---------------------------------------------------------------------------------------------


class GeminiDecoder:
    """Decodes Gemini output lines with the rules and instance index of one job."""

    def __init__(self, rules: AnswerRules, index: InstanceIndex | None = None) -> None:
        self.rules, self.index = rules, index

    def decode(self, chunk: bytes, file: str, first_line: int) -> DecodedChunk:
        """Decode a chunk of whole Gemini lines into served instances, moments and errors."""
        return decode_lines(chunk, file, first_line, self._decode_line)

    def _decode_line(self, raw: bytes, file: str, number: int, decoded: DecodedChunk) -> None:
        """File one line: the answer's instance and moments, or an error record."""
        video, start, end = None, None, None
        try:
            line = msgspec.convert(_camel_keys(_decode_object(raw)), _Line)
            video, start, end = self._video(line.request)
            moments = _answer(line, start, end, self.rules)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, OverflowError, RecursionError) as exc:
            # ValueError covers VideoActionsValueError and a Duration object's unreadable seconds.
            reason = "nested too deep" if isinstance(exc, RecursionError) else exc
            message = f"malformed output line: {reason}"
            decoded.errors.append(ErrorRecord(video, start, end, None, message, file, number, MALFORMED))
            return
        except LineRejectedError as exc:
            decoded.errors.append(ErrorRecord(video, start, end, exc.code, exc.message, file, number, exc.kind))
            return
        decoded.instances.append(Instance(video, start, end))
        decoded.moments.append(moments)

    def _video(self, request: _Request | None) -> Segment:
        """The line's video and segment: by its instance label, else from the echoed request."""
        index = _line_index(request)
        found = self.index.get(index) if self.index is not None and index is not None else None
        return found or _echoed_video(request)


def _camel_keys(value: Any) -> Any:
    """The value with every ``snake_case`` object key written ``camelCase`` (protobuf JSON allows either)."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m[1].upper(), k): _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def _offset(value: Offset, param: str) -> float | None:
    """Seconds of an echoed offset: ``"30s"``, a number, or a Duration object, held to the same rules."""
    if isinstance(value, _Duration):
        seconds, nanos = value.seconds or 0, value.nanos or 0
        if isinstance(seconds, str) and not (seconds.isascii() and seconds.isdigit() and len(seconds) <= 19):
            raise VideoActionsValueError(f"{param}.seconds must be whole seconds (an int64), got {brief(seconds)}.")
        if not 0 <= nanos < 1_000_000_000:
            raise VideoActionsValueError(f"{param}.nanos must be 0 to 999999999, got {nanos}.")
        whole = parse_seconds(int(seconds), f"{param}.seconds")  # refuses negative and huge values
        return parse_seconds(whole + nanos / 1e9, param)
    return parse_seconds(value, param)


def _echoed_video(request: _Request | None) -> Segment:
    """The echoed request's video URI and segment (seconds; None = to the end)."""
    parts = [
        p
        for c in (request.contents or [] if request else [])
        for p in (c.parts or [])
        if p.file_data and p.file_data.file_uri
    ]
    if not parts:
        raise VideoActionsValueError("the echoed request has no fileData.fileUri: cannot tell which video it was")
    meta = parts[0].video_metadata or _VideoMetadata()
    start = _offset(meta.start_offset, "videoMetadata.startOffset") or 0.0
    return parts[0].file_data.file_uri, start, _offset(meta.end_offset, "videoMetadata.endOffset")


def _answer(line: _Line, start: float, end: float | None, rules: AnswerRules) -> list[Moment]:
    """The checked, filtered moments of a line's answer, or raise :class:`LineRejectedError` saying why."""
    _check_status(line.status)
    if line.response is None:
        raise LineRejectedError("Gemini line has neither a response nor a status")
    feedback = line.response.prompt_feedback
    if feedback and feedback.block_reason:
        reason = f"{feedback.block_reason} {feedback.block_reason_message or ''}".strip()
        raise LineRejectedError(f"Gemini blocked the request: {reason}")
    if not line.response.candidates:
        raise LineRejectedError("Gemini answered no candidates")
    candidate = line.response.candidates[0]
    parts = (candidate.content.parts if candidate.content else None) or []
    text = "".join(p.text or "" for p in parts if not p.thought)
    if candidate.finish_reason != "STOP":
        detail = f" ({candidate.finish_message})" if candidate.finish_message else ""
        raise LineRejectedError(
            f"Gemini answer did not finish: finishReason {candidate.finish_reason}{detail}; "
            f"the answer may be truncated: {text[:200]!r}"
        )
    labels = rules.labels or _schema_labels(line.request)
    moments = [_moment(m, labels, start, end) for m in _parse_answer(text).moments]
    return _select(moments, rules)


def _check_status(status: str | _Status | None) -> None:
    """Raise for a failed line: a non-empty ``status`` string (code read from it) or status object."""
    if isinstance(status, _Status) and (status.code or status.message):
        raise LineRejectedError(
            f"Gemini request failed: {status.message or ''}", status.code or code_pb2.UNKNOWN, JOB_ERROR
        )
    if isinstance(status, str) and status:
        match = _RPC_STATUS_RE.search(status)
        names = code_pb2.Code.keys()
        code = code_pb2.Code.Value(match[1]) if match and match[1] in names else code_pb2.UNKNOWN
        raise LineRejectedError(f"Gemini request failed: {status}", code, JOB_ERROR)


def _schema_labels(request: _Request | None) -> tuple[str, ...]:
    """The label enum of the echoed response schema, when no label set was given."""
    config = (request.generation_config if request else None) or {}
    try:
        labels = config["responseSchema"]["properties"]["moments"]["items"]["properties"]["label"]["enum"]
    except (KeyError, TypeError):
        labels = None
    if not isinstance(labels, list) or not labels:
        raise LineRejectedError(
            "no label set to check the answer against: pass the submit task's result as job, or action_labels"
        )
    return tuple(labels)


def _parse_answer(text: str) -> _Answer:
    """The answer text decoded against the response schema; truncated or mismatched JSON is rejected."""
    try:
        return _decode_answer(text)
    except msgspec.ValidationError as exc:
        raise LineRejectedError(
            f"Gemini answer does not match the response schema: {exc}; answer: {text[:200]!r}"
        ) from None
    except msgspec.DecodeError as exc:
        raise LineRejectedError(f"Gemini answer is not complete JSON ({exc}); answer: {text[:200]!r}") from None


def _moment(answer: _AnswerMoment, labels: tuple[str, ...], start: float, end: float | None) -> Moment:
    """A checked answer moment as a record moment (``id`` = the label's index in the set)."""
    if answer.label not in labels:
        raise LineRejectedError(f"Gemini answered label {answer.label!r}, which is not in the label set {list(labels)}")
    if not 0.0 <= answer.confidence <= 1.0:
        raise LineRejectedError(f"Gemini answered confidence {answer.confidence} for {answer.label!r}, outside [0, 1]")
    upper = float("inf") if end is None else end + TIME_TOLERANCE
    if not start - TIME_TOLERANCE <= answer.start <= answer.end <= upper:
        bounds = f"{start}s to {'the end' if end is None else f'{end}s'}"
        raise LineRejectedError(
            f"Gemini answered {answer.label!r} from {answer.start}s to {answer.end}s, outside the segment {bounds} "
            "(or ending before it starts)"
        )
    return Moment(str(labels.index(answer.label)), answer.label, answer.start, answer.end, answer.confidence)


def _select(moments: list[Moment], rules: AnswerRules) -> list[Moment]:
    """Enforce what the prompt asked: no moment below the threshold, the most confident ``max_predictions``."""
    kept = [m for m in moments if m.confidence >= rules.confidence_threshold]
    if rules.max_predictions is not None and len(kept) > rules.max_predictions:
        kept = heapq.nlargest(rules.max_predictions, kept, key=lambda m: m.confidence)
    return sorted(kept, key=lambda m: m.time_segment_start)
