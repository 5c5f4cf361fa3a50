"""The emulator's deterministic "action recognition model": it reads colours, not motion.

How a test plants an action and where the model finds it:

* ``make_video([PlantedAction("wave", start=1.0, duration=0.5, strength=0.8)], duration=4.0, fps=10)``
  paints the frames shown at times ``t`` with ``start <= t < start + duration`` (frame ``i`` is shown at
  ``i / fps``) in the action's colour scaled by ``strength``; every other frame is black.
* ``predict`` classifies each frame of the requested segment by its mean colour: brightness is the
  largest channel / 255; frames darker than ``BACKGROUND_BRIGHTNESS`` (0.1) are background, others get
  the action whose colour is nearest after normalising brightness away. Consecutive frames with the same
  label form a run, and each run yields one prediction at its midpoint
  ``(first frame time + last frame time + 1 / fps) / 2``, i.e. ``start + duration / 2`` for a planted
  action whose start and duration are multiples of the frame period: the example above is reported at
  ``"1.250000s"`` (both ``timeSegmentStart`` and ``timeSegmentEnd``) with ``confidence`` ~0.8.
* Tolerance, measured over every action at strengths 0.15..1.0, 10/25/30 fps and 32x32 to 160x120
  frames with libx264 (yuv420p): the time is exact to the microsecond (assert within one frame period to
  be safe) and the confidence is within 0.015 of ``strength`` (assert within 0.05). Frames dimmer than
  the background threshold are not actions: use strength >= 0.15.
* Leave at least one black frame between planted actions: touching actions of one label merge into one
  run, and where actions overlap the later one in the list paints the frame. If a segment cuts a planted
  action, only the frames inside it count, so the midpoint moves to the middle of the visible part.
* Times are seconds from the start of the video (not of the segment), formatted ``"%.6fs"``.
* Errors (``InstanceError``): undecodable content -> code 3; a segment starting at or after the end of
  the video, or ending before it starts -> code 11 (OUT_OF_RANGE).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np
from google.rpc import code_pb2

from airflow_provider_video_actions.emulator.videos import ACTIONS

BACKGROUND_BRIGHTNESS = 0.1

_LABELS = list(ACTIONS)
_UNIT_COLOURS = np.array([np.array(rgb, float) / max(rgb) for _, rgb in ACTIONS.values()])


class InstanceError(Exception):
    """One instance cannot be predicted; ``code`` is a google.rpc code for its error line."""

    def __init__(self, code: int, message: str) -> None:
        """Keep the code and message that the errors file reports."""
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class _Frame:
    """A decoded frame reduced to what the model needs."""

    time: float
    label: str | None
    brightness: float


def classify(mean_rgb: np.ndarray) -> tuple[str | None, float]:
    """Label (None for background) and brightness (0..1) of a frame from its mean RGB colour."""
    peak = float(mean_rgb.max())
    brightness = peak / 255.0
    if brightness < BACKGROUND_BRIGHTNESS:
        return None, brightness
    distances = np.linalg.norm(_UNIT_COLOURS - mean_rgb / peak, axis=1)
    return _LABELS[int(distances.argmin())], brightness


def _open(video: bytes) -> av.container.InputContainer:
    """Open the bytes as a container with a video stream, or raise an INVALID_ARGUMENT error."""
    try:
        container = av.open(io.BytesIO(video), "r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise InstanceError(code_pb2.INVALID_ARGUMENT, f"Content is not a decodable video: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise InstanceError(code_pb2.INVALID_ARGUMENT, "Content has no video stream")
    return container


def _frames(container: av.container.InputContainer) -> Iterator[_Frame]:
    """Decode the first video stream into classified frames, in presentation order."""
    try:
        for frame in container.decode(video=0):
            mean = frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
            label, brightness = classify(mean)
            yield _Frame(float(frame.time or 0.0), label, brightness)
    except av.FFmpegError as exc:
        raise InstanceError(code_pb2.INVALID_ARGUMENT, f"Video could not be decoded: {exc}") from exc


def _frame_period(container: av.container.InputContainer) -> float:
    """Seconds between frames, from the stream's average rate (25 fps if unknown)."""
    rate = container.streams.video[0].average_rate
    return float(1 / rate) if rate else 1 / 25


def _duration(container: av.container.InputContainer, frames: list[_Frame], period: float) -> float:
    """Video duration in seconds: container metadata, else one period past the last frame."""
    if container.duration:
        return container.duration / av.time_base
    return frames[-1].time + period if frames else 0.0


def _check_segment(start: float, end: float | None, duration: float) -> None:
    """Raise OUT_OF_RANGE when the segment does not lie within the video."""
    if end is not None and end < start:
        raise InstanceError(code_pb2.OUT_OF_RANGE, f"timeSegmentEnd {end}s is before timeSegmentStart {start}s")
    if start < 0 or start >= duration:
        raise InstanceError(
            code_pb2.OUT_OF_RANGE, f"timeSegmentStart {start}s is outside the video (0s to {duration}s)"
        )


def _runs(frames: list[_Frame]) -> Iterator[list[_Frame]]:
    """Group consecutive non-background frames of the same label."""
    run: list[_Frame] = []
    for frame in frames:
        if run and frame.label != run[0].label:
            yield run
            run = []
        if frame.label is not None:
            run.append(frame)
    if run:
        yield run


def _prediction(run: list[_Frame], period: float) -> dict:
    """One prediction at the midpoint of a run, with the run's mean brightness as confidence."""
    label = run[0].label
    assert label is not None
    moment = f"{(run[0].time + run[-1].time + period) / 2:.6f}s"
    confidence = round(float(np.mean([f.brightness for f in run])), 3)
    return {
        "id": ACTIONS[label][0],
        "displayName": label,
        "timeSegmentStart": moment,
        "timeSegmentEnd": moment,
        "confidence": confidence,
    }


def _select(predictions: list[dict], confidence_threshold: float, max_predictions: int) -> list[dict]:
    """Keep predictions above the threshold, at most ``max_predictions`` most confident, in time order."""
    kept = [p for p in predictions if p["confidence"] >= confidence_threshold]
    kept = sorted(kept, key=lambda p: -p["confidence"])[: max(max_predictions, 0)]
    return sorted(kept, key=lambda p: float(p["timeSegmentStart"][:-1]))


def predict(
    video: bytes,
    segment_start: float,
    segment_end: float | None,
    confidence_threshold: float,
    max_predictions: int,
) -> list[dict]:
    """Predict the actions in ``[segment_start, segment_end)`` of an encoded video (None = to the end)."""
    with _open(video) as container:
        period = _frame_period(container)
        frames = list(_frames(container))
        _check_segment(segment_start, segment_end, _duration(container, frames, period))
    end = float("inf") if segment_end is None else segment_end
    inside = [f for f in frames if segment_start <= f.time + 1e-6 < end]
    predictions = [_prediction(run, period) for run in _runs(inside)]
    return _select(predictions, confidence_threshold, max_predictions)
