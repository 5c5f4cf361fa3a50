"""The action timeline PNG: drawn from prediction and error records; a clear error without matplotlib."""

from __future__ import annotations

import sys

import pytest

from airflow_provider_video_actions.timeline import render_timeline

PREDICTIONS = [
    {"video_uri": "gs://b/videos/kitchen.mp4", "label": "wave", "time_start": 0.75, "confidence": 0.9},
    {"video_uri": "gs://b/videos/kitchen.mp4", "label": "clap", "time_start": 2.5, "confidence": 0.2},
    {"video_uri": "gs://b/videos/park.mp4", "label": "jump", "time_start": 1.25, "confidence": 1.0},
]
ERRORS = [{"video_uri": "gs://b/videos/missing.mp4", "message": "not found", "code": 5}]


def test_timeline_is_a_png_with_one_row_per_video(tmp_path):
    pytest.importorskip("matplotlib", reason="the timeline extra is not installed")
    path = render_timeline(PREDICTIONS, tmp_path / "t.png", errors=ERRORS)
    from matplotlib.image import imread

    height, width, _ = imread(path).shape
    assert (width, height) == (1200, round(120 * (1.5 + 0.9 * 3)))  # 10 in wide at 120 dpi; 3 rows


def test_timeline_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"airflow-provider-video-actions\[timeline\]"):
        render_timeline(PREDICTIONS, tmp_path / "t.png")
