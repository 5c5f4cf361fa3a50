"""The action timeline PNG: drawn from prediction and error records; a clear error without matplotlib."""

from __future__ import annotations

import sys
from pathlib import Path

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


#: Names, labels and messages matplotlib would read as maths or TeX: each must be drawn as written.
ODD_TEXTS = ["a$b$c.mp4", "x$^$y.mp4", "p$\\frac$q.mp4", "100%{}.mp4", "back\\slash $.mp4", "{0}$_$.mp4"]


def svg_texts(path) -> set[str]:
    """The strings of an SVG's text elements (written as text, not glyph paths, with ``svg.fonttype: none``)."""
    from xml.etree import ElementTree

    return {"".join(e.itertext()) for e in ElementTree.parse(path).iter("{http://www.w3.org/2000/svg}text")}


def test_dollars_and_other_math_characters_are_drawn_literally(tmp_path):
    """A video named ``x$^$y.mp4`` made mathtext raise; ``a$b$c.mp4`` was drawn as italic 'abc'."""
    matplotlib = pytest.importorskip("matplotlib", reason="the timeline extra is not installed")
    predictions = [
        {"video_uri": f"gs://b/videos/{name}", "label": f"w$a$ve{i}", "time_start": 1.0, "confidence": 0.9}
        for i, name in enumerate(ODD_TEXTS)
    ]
    errors = [{"video_uri": "gs://b/videos/m$i$ssing.mp4", "message": "not $found$ \\o/"}]

    png = render_timeline(predictions, tmp_path / "t.png", errors=errors, title="$Moments$")
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        svg = render_timeline(predictions, tmp_path / "t.svg", errors=errors, title="$Moments$")

    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    texts = svg_texts(svg)
    assert {*ODD_TEXTS, "m$i$ssing.mp4", "failed: not $found$ \\o/", "$Moments$"} <= texts
    assert {f"w$a$ve{i} 0.90" for i in range(len(ODD_TEXTS))} <= texts
