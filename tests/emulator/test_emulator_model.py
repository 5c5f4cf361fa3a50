"""The synthetic videos and the colour "model": planted actions are found where the docs say."""

from __future__ import annotations

import pytest

from airflow_provider_video_actions.emulator import ACTIONS, PlantedAction, make_video
from airflow_provider_video_actions.emulator.model import InstanceError, predict

FRAME = 0.1  # seconds per frame at the default 10 fps


def seconds(value: str) -> float:
    """Parse a ``"1.250000s"`` time."""
    assert value.endswith("s")
    return float(value[:-1])


def test_every_action_is_found_at_its_midpoint_with_its_strength() -> None:
    """Each action is reported at start + duration / 2 with confidence ~ strength, as model.py documents."""
    planted = [
        PlantedAction(label, start=0.5 + i, duration=0.5, strength=1.0 - 0.15 * i) for i, label in enumerate(ACTIONS)
    ]
    video = make_video(planted, duration=len(planted) + 1.0)

    predictions = predict(video, 0.0, None, 0.0, 50)

    assert [p["displayName"] for p in predictions] == [a.label for a in planted]
    for action, prediction in zip(planted, predictions, strict=True):
        assert prediction["id"] == ACTIONS[action.label][0]
        assert prediction["timeSegmentStart"] == prediction["timeSegmentEnd"]
        assert seconds(prediction["timeSegmentStart"]) == pytest.approx(action.start + action.duration / 2, abs=FRAME)
        assert prediction["confidence"] == pytest.approx(action.strength, abs=0.05)


def test_times_have_microsecond_precision() -> None:
    """Times use the API's seconds format with six decimals."""
    video = make_video([PlantedAction("wave", start=1.0, duration=0.5)])

    (prediction,) = predict(video, 0.0, None, 0.0, 50)

    assert prediction["timeSegmentStart"] == "1.250000s"


def test_threshold_and_max_predictions() -> None:
    """The threshold drops weak runs; max_predictions keeps the most confident, in time order."""
    video = make_video(
        [
            PlantedAction("wave", 0.5, strength=0.3),
            PlantedAction("jump", 1.5, strength=0.9),
            PlantedAction("run", 2.5, strength=0.6),
        ]
    )

    assert [p["displayName"] for p in predict(video, 0.0, None, 0.5, 50)] == ["jump", "run"]
    assert [p["displayName"] for p in predict(video, 0.0, None, 0.0, 2)] == ["jump", "run"]
    assert [p["displayName"] for p in predict(video, 0.0, None, 0.0, 1)] == ["jump"]


def test_segment_limits_frames_but_times_stay_relative_to_video_start() -> None:
    """Only frames inside the segment count; reported times are on the whole-video timeline."""
    video = make_video([PlantedAction("wave", 0.5, duration=1.0), PlantedAction("clap", 2.5)])

    inside = predict(video, 2.0, 3.5, 0.0, 50)
    cut = predict(video, 1.0, 2.0, 0.0, 50)

    assert [(p["displayName"], seconds(p["timeSegmentStart"])) for p in inside] == [("clap", pytest.approx(2.75))]
    assert [(p["displayName"], seconds(p["timeSegmentStart"])) for p in cut] == [("wave", pytest.approx(1.25))]


def test_black_video_has_no_predictions() -> None:
    """Background frames never produce predictions."""
    assert predict(make_video([]), 0.0, None, 0.0, 50) == []


@pytest.mark.parametrize(
    ("video", "start", "end", "code"),
    [
        (b"definitely not a video", 0.0, None, 3),
        (None, 5.0, None, 11),
        (None, 2.0, 1.0, 11),
    ],
    ids=["not-a-video", "start-after-end-of-video", "end-before-start"],
)
def test_instance_errors(video: bytes | None, start: float, end: float | None, code: int) -> None:
    """Undecodable content is INVALID_ARGUMENT; a segment outside the video is OUT_OF_RANGE."""
    with pytest.raises(InstanceError) as raised:
        predict(video or make_video([]), start, end, 0.0, 50)

    assert raised.value.code == code
    assert raised.value.message


def test_planted_action_rejects_unknown_labels_and_strengths() -> None:
    """Typos in a test's planted actions fail where they are written."""
    with pytest.raises(ValueError, match="unknown action"):
        PlantedAction("dance", 1.0)
    with pytest.raises(ValueError, match="strength"):
        PlantedAction("wave", 1.0, strength=1.5)
