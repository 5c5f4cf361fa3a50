"""A per-video action timeline (PNG) from parsed prediction records: easier to read than a table of moments.

One row per video, a labelled mark at each moment, opacity by confidence; failed videos get a row
saying why. Needs matplotlib: ``pip install "airflow-provider-video-actions[timeline]"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Marks fainter than this would vanish; the confidence still shows as the label's number.
MIN_ALPHA = 0.15
#: Text properties that draw names, labels and messages as written: ``a$b$c.mp4`` is not maths, nor TeX.
LITERAL_TEXT = {"parse_math": False, "usetex": False}


def _matplotlib() -> tuple[Any, Any]:
    """matplotlib's ``Figure`` and colormaps (no pyplot: no global state, no GUI), or an error naming the extra."""
    try:
        from matplotlib import colormaps
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            'The timeline needs matplotlib: pip install "airflow-provider-video-actions[timeline]"'
        ) from exc
    return Figure, colormaps


def _short(uri: str) -> str:
    """A video's row label: its file name, which is what people recognise."""
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _draw_video(ax: Axes, row: int, moments: list[Mapping[str, Any]], colors: dict[str, Any]) -> None:
    """One video's moments: a vertical mark each, labelled with the action and its confidence.

    Labels alternate above and below the row so that close moments stay readable.
    """
    for i, m in enumerate(sorted(moments, key=lambda m: m["time_start"])):
        alpha = max(float(m["confidence"]), MIN_ALPHA)
        ax.plot([m["time_start"]] * 2, [row - 0.25, row + 0.25], color=colors[m["label"]], alpha=alpha, lw=5)
        above = i % 2 == 0  # the y axis is inverted: above is row - 0.25
        ax.annotate(
            f"{m['label']} {m['confidence']:.2f}",
            (m["time_start"], row - 0.25 if above else row + 0.25),
            xytext=(0, 2 if above else -2),
            textcoords="offset points",
            ha="center",
            va="bottom" if above else "top",
            fontsize=9,
            alpha=max(alpha, 0.6),
            **LITERAL_TEXT,
        )


def render_timeline(
    predictions: Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    errors: Iterable[Mapping[str, Any]] = (),
    title: str = "Detected actions",
) -> str:
    """Write the timeline PNG of prediction records (and error records) to ``path``; returns the path."""
    figure_class, colormaps = _matplotlib()
    by_video: dict[str, list[Mapping[str, Any]]] = {}
    for p in predictions:
        by_video.setdefault(p["video_uri"], []).append(p)
    failed = {e["video_uri"]: e["message"] for e in errors if e.get("video_uri") and e["video_uri"] not in by_video}
    videos = sorted(by_video) + sorted(failed)
    labels = sorted({p["label"] for moments in by_video.values() for p in moments})
    fig = figure_class(figsize=(10, 1.5 + 0.9 * max(len(videos), 1)), layout="constrained")
    ax = fig.add_subplot()
    palette = colormaps["tab10"]
    colors = {label: palette(i % palette.N) for i, label in enumerate(labels)}
    for row, video in enumerate(videos):
        if video in by_video:
            _draw_video(ax, row, by_video[video], colors)
        else:
            ax.annotate(
                f"failed: {failed[video]}",
                (0, row),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=9,
                color="firebrick",
                **LITERAL_TEXT,
            )
    ax.set_yticks(range(len(videos)), [_short(v) for v in videos], **LITERAL_TEXT)
    ax.set_ylim(len(videos) - 0.4, -0.6)
    ax.set_xlim(0, max((p["time_start"] for moments in by_video.values() for p in moments), default=1.0) * 1.08 + 0.1)
    ax.set_xlabel("seconds from the start of the video")
    ax.set_title(title, **LITERAL_TEXT)
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path, dpi=120)
    return os.fspath(path)
