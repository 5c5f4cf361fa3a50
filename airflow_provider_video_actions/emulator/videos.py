"""Synthetic test videos: each action is a solid colour, so the emulator's model can find it exactly.

See ``model.py`` for how a planted action is reported back.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

RGB = tuple[int, int, int]

#: label -> (label id, colour). The order is stable; ids are what the model reports as ``id``.
ACTIONS: dict[str, tuple[str, RGB]] = {
    "wave": ("1", (255, 0, 0)),
    "jump": ("2", (0, 255, 0)),
    "run": ("3", (0, 0, 255)),
    "clap": ("4", (255, 255, 0)),
    "sit": ("5", (255, 0, 255)),
    "fall": ("6", (0, 255, 255)),
}


@dataclass(frozen=True)
class PlantedAction:
    """An action shown from ``start`` for ``duration`` seconds, at ``strength`` (0..1) brightness."""

    label: str
    start: float
    duration: float = 0.5
    strength: float = 1.0

    def __post_init__(self) -> None:
        """Reject unknown labels and out-of-range values early, where the test wrote them."""
        if self.label not in ACTIONS:
            raise ValueError(f"unknown action {self.label!r}; known: {', '.join(ACTIONS)}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be within 0..1, got {self.strength}")
        if self.start < 0 or self.duration <= 0:
            raise ValueError("start must be >= 0 and duration > 0")

    def covers(self, t: float) -> bool:
        """Whether a frame shown at time ``t`` belongs to this action (half-open interval)."""
        return self.start <= t + 1e-6 < self.start + self.duration


def frame_colour(actions: Sequence[PlantedAction], t: float) -> RGB:
    """Colour of the frame at time ``t``: the last planted action covering it, else black."""
    colour: RGB = (0, 0, 0)
    for action in actions:
        if action.covers(t):
            base = ACTIONS[action.label][1]
            colour = tuple(round(c * action.strength) for c in base)  # type: ignore[assignment]
    return colour


def make_video(
    actions: Sequence[PlantedAction],
    duration: float = 4.0,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
) -> bytes:
    """Encode an H.264 MP4 of black frames, with each planted action's frames in its colour."""
    import av  # the emulator extra; imported here so sample names and actions need no codec
    import numpy as np

    width, height = size
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for index in range(round(duration * fps)):
            pixels = np.empty((height, width, 3), np.uint8)
            pixels[:] = frame_colour(actions, index / fps)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buf.getvalue()
