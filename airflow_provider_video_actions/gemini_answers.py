"""The Gemini family's answer side: read response lines into the same records as action recognition output.

A Gemini output line is ``{"status": "", "processed_time": ..., "request": {...the request, echoed...},
"response": {"candidates": [{"content": {"parts": [{"text": "<JSON answer>"}]}, "finishReason":
"STOP"}], ...}}``; a failed line has a non-empty ``status``. The family is decided per line: a line
with ``request``, ``response`` or ``status`` is Gemini, anything else goes to the action recognition
decoder (:func:`airflow_provider_video_actions.predictions.decode_chunk`), so one parse serves both.

The video and its segment come from the echoed request (output order is not input order). The
answer text is decoded against a typed struct of the response schema, then checked: every failure
(a non-empty ``status``, a ``blockReason``, no candidate, a ``finishReason`` other than STOP,
truncated JSON, a schema mismatch, a label outside the set, a time outside the segment, a
confidence outside [0, 1]) turns the whole line into one :class:`ErrorRecord` naming the video and
the reason, never a silent drop. Kept answers are filtered like the action recognition model
filters its own: below ``confidence_threshold`` dropped, the ``max_predictions`` most confident kept.
Records carry ``label_id`` = the label's index in the set (as a string) and the model's own
``confidence`` (uncalibrated, self-reported).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from airflow_provider_video_actions.gemini import SUMMARY_KEY, check_action_labels
from airflow_provider_video_actions.job import VideoActionsValueError, parse_seconds
from airflow_provider_video_actions.predictions import DecodedChunk, ErrorRecord, _Instance, _Moment, decode_chunk

#: google.rpc code of a line whose ``status`` names none, and of an answer this parser rejects.
UNKNOWN = 2
#: Slack on the segment bounds, in seconds (answers and offsets are written with millisecond precision).
TIME_TOLERANCE = 0.001
_GEMINI_KEYS = (b'"request"', b'"response"', b'"status"')
_RPC_STATUS_RE = re.compile(r'"status"\s*:\s*"([A-Z_]+)"')
_RPC_CODES = {
    name: code
    for code, name in enumerate(
        [
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        ]
    )
}


@dataclass(frozen=True)
class AnswerRules:
    """How answers are checked and filtered: the label set (None: read it from each echoed schema), threshold, limit."""

    labels: tuple[str, ...] | None = None
    confidence_threshold: float = 0.0
    max_predictions: int | None = None

    @classmethod
    def from_job(cls, job: Any, action_labels: Any = None) -> AnswerRules:
        """Rules from the submit operator's summary (its ``gemini`` part), ``action_labels`` overriding its labels."""
        recorded = job.get(SUMMARY_KEY) if isinstance(job, Mapping) else None
        recorded = recorded if isinstance(recorded, Mapping) else {}
        labels = action_labels if action_labels is not None else recorded.get("action_labels")
        return cls(
            tuple(check_action_labels(labels)) if labels is not None else None,
            float(recorded.get("confidence_threshold") or 0.0),
            recorded.get("max_predictions"),
        )


# ---------------------------------------------------------------------------------------------
# The wire shape, after keys are camelCased (echoes and responses have been seen in both cases).
# ---------------------------------------------------------------------------------------------


class _FileData(msgspec.Struct):
    fileUri: str | None = None  # noqa: N815 - wire names
    mimeType: str | None = None  # noqa: N815


class _VideoMetadata(msgspec.Struct):
    startOffset: str | float | None = None  # noqa: N815
    endOffset: str | float | None = None  # noqa: N815


class _Part(msgspec.Struct):
    text: str | None = None
    thought: bool = False
    fileData: _FileData | None = None  # noqa: N815
    videoMetadata: _VideoMetadata | None = None  # noqa: N815


class _Content(msgspec.Struct):
    parts: list[_Part] = []


class _Request(msgspec.Struct):
    contents: list[_Content] = []
    generationConfig: dict[str, Any] = {}  # noqa: N815


class _Candidate(msgspec.Struct):
    content: _Content | None = None
    finishReason: str | None = None  # noqa: N815
    finishMessage: str | None = None  # noqa: N815


class _PromptFeedback(msgspec.Struct):
    blockReason: str | None = None  # noqa: N815
    blockReasonMessage: str | None = None  # noqa: N815


class _Response(msgspec.Struct):
    candidates: list[_Candidate] = []
    promptFeedback: _PromptFeedback | None = None  # noqa: N815


class _Status(msgspec.Struct):
    code: int | None = None
    message: str = ""


class _Line(msgspec.Struct):
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
    """A Gemini line that yields no records; ``code`` is a google.rpc code, None for an unreadable line."""

    def __init__(self, message: str, code: int | None = UNKNOWN) -> None:
        super().__init__(message)
        self.message, self.code = message, code


# ---------------------------------------------------------------------------------------------
# Decoding.
# ---------------------------------------------------------------------------------------------


def decode_output_chunk(chunk: bytes, file: str, first_line: int, rules: AnswerRules) -> DecodedChunk:
    """Decode a chunk of whole output lines of either family into served instances, moments and errors."""
    if not any(key in chunk for key in _GEMINI_KEYS):
        return decode_chunk(chunk, file, first_line)
    decoded = DecodedChunk(chunk.count(b"\n") + (not chunk.endswith(b"\n")))
    for number, raw in enumerate(chunk.split(b"\n"), start=first_line):
        if raw.strip():
            _decode_line(raw, file, number, rules, decoded)
    return decoded


def _decode_line(raw: bytes, file: str, number: int, rules: AnswerRules, decoded: DecodedChunk) -> None:
    """File one line: a Gemini answer's instance and moments, an error record, or an action recognition line."""
    try:
        obj = _decode_object(raw)
    except msgspec.DecodeError as exc:
        decoded.errors.append(ErrorRecord(None, None, None, None, f"malformed output line: {exc}", file, number))
        return
    if not {"request", "response", "status"} & obj.keys():
        other = decode_chunk(raw, file, number)
        decoded.instances += other.instances
        decoded.moments += other.moments
        decoded.errors += other.errors
        return
    video, start, end = None, None, None
    try:
        line = msgspec.convert(_camel_keys(obj), _Line)
        video, start, end = _video(line.request)
        moments = _answer(line, start, end, rules)
    except (msgspec.ValidationError, VideoActionsValueError) as exc:
        decoded.errors.append(ErrorRecord(video, start, end, None, f"malformed output line: {exc}", file, number))
        return
    except LineRejectedError as exc:
        decoded.errors.append(ErrorRecord(video, start, end, exc.code, exc.message, file, number))
        return
    decoded.instances.append(_Instance(video, start, end))
    decoded.moments.append(moments)


def _camel_keys(value: Any) -> Any:
    """The value with every ``snake_case`` object key written ``camelCase`` (protobuf JSON allows either)."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m[1].upper(), k): _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def _video(request: _Request | None) -> tuple[str, float, float | None]:
    """The echoed request's video URI and segment (seconds; None = to the end)."""
    parts = [p for c in (request.contents if request else []) for p in c.parts if p.fileData and p.fileData.fileUri]
    if not parts:
        raise VideoActionsValueError("the echoed request has no fileData.fileUri: cannot tell which video it was")
    meta = parts[0].videoMetadata or _VideoMetadata()
    start = parse_seconds(meta.startOffset, "videoMetadata.startOffset") or 0.0
    return parts[0].fileData.fileUri, start, parse_seconds(meta.endOffset, "videoMetadata.endOffset")


def _answer(line: _Line, start: float, end: float | None, rules: AnswerRules) -> list[_Moment]:
    """The checked, filtered moments of a line's answer, or raise :class:`LineRejectedError` saying why."""
    _check_status(line.status)
    if line.response is None:
        raise LineRejectedError("Gemini line has neither a response nor a status")
    feedback = line.response.promptFeedback
    if feedback and feedback.blockReason:
        reason = f"{feedback.blockReason} {feedback.blockReasonMessage or ''}".strip()
        raise LineRejectedError(f"Gemini blocked the request: {reason}")
    if not line.response.candidates:
        raise LineRejectedError("Gemini answered no candidates")
    candidate = line.response.candidates[0]
    text = "".join(p.text or "" for p in (candidate.content.parts if candidate.content else []) if not p.thought)
    if candidate.finishReason != "STOP":
        detail = f" ({candidate.finishMessage})" if candidate.finishMessage else ""
        raise LineRejectedError(
            f"Gemini answer did not finish: finishReason {candidate.finishReason}{detail}; "
            f"the answer may be truncated: {text[:200]!r}"
        )
    labels = rules.labels or _schema_labels(line.request)
    moments = [_moment(m, labels, start, end) for m in _parse_answer(text).moments]
    return _select(moments, rules)


def _check_status(status: str | _Status | None) -> None:
    """Raise for a failed line: a non-empty ``status`` string (code read from it) or status object."""
    if isinstance(status, _Status) and (status.code or status.message):
        raise LineRejectedError(f"Gemini request failed: {status.message}", status.code or UNKNOWN)
    if isinstance(status, str) and status:
        match = _RPC_STATUS_RE.search(status)
        code = _RPC_CODES.get(match[1], UNKNOWN) if match else UNKNOWN
        raise LineRejectedError(f"Gemini request failed: {status}", code)


def _schema_labels(request: _Request | None) -> tuple[str, ...]:
    """The label enum of the echoed response schema, when no label set was given."""
    config = request.generationConfig if request else {}
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


def _moment(answer: _AnswerMoment, labels: tuple[str, ...], start: float, end: float | None) -> _Moment:
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
    return _Moment(str(labels.index(answer.label)), answer.label, answer.start, answer.end, answer.confidence)


def _select(moments: list[_Moment], rules: AnswerRules) -> list[_Moment]:
    """Enforce what the prompt asked: no moment below the threshold, the most confident ``max_predictions``."""
    kept = [m for m in moments if m.confidence >= rules.confidence_threshold]
    if rules.max_predictions is not None and len(kept) > rules.max_predictions:
        kept = heapq.nlargest(rules.max_predictions, kept, key=lambda m: m.confidence)
    return sorted(kept, key=lambda m: m.timeSegmentStart)
