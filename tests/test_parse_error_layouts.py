"""Errors files in both layouts Vertex AI is known by: the instance nested under ``instance``, or flat (documented).

The emulator writes the documented flat layout; outputs written before (and by other tools) nest it. The
parse reads the same error records from either.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_video_actions.operators.parse import ParseVideoActionPredictionsOperator

#: (instance, error) of each failed line: a plain failure, a bounded segment, a code given as text, a status
#: with no message, an error given as a bare string, and an instance with no content.
FAILURES = [
    ({"content": "gs://b/missing.mp4", "mimeType": "video/mp4"}, {"code": 5, "message": "Video not found"}),
    (
        {"content": "gs://b/late.mp4", "mimeType": "video/mp4", "timeSegmentStart": "9s", "timeSegmentEnd": "12.5s"},
        {"code": 11, "message": "segment outside the video"},
    ),
    ({"content": "gs://b/png.mp4", "mimeType": "image/png"}, {"code": "3", "message": "Unsupported mimeType"}),
    ({"content": "gs://b/quiet.mp4", "mimeType": "video/mp4"}, {"code": 13}),
    ({"content": "gs://b/text.mp4", "mimeType": "video/mp4"}, "internal error"),
    ({"mimeType": "video/mp4"}, {"code": 3, "message": "Instance has no 'content' string"}),
]


def _line(layout: str, instance: dict, error: object) -> str:
    """One errors-file line in the given layout."""
    record = {"instance": instance, "error": error} if layout == "nested" else {**instance, "error": error}
    return json.dumps(record)


def _error_records(tmp_path, layout: str) -> list[dict]:
    """The parse's error records of a job directory whose errors file uses ``layout``."""
    out = tmp_path / layout / "prediction-video-action-recognition-1-2026-01-01T00:00:00.000000Z"
    out.mkdir(parents=True)
    (out / "predictions_00001.jsonl").write_text("")
    (out / "errors_00001.jsonl").write_text("".join(_line(layout, *failure) + "\n" for failure in FAILURES))
    result = ParseVideoActionPredictionsOperator(task_id="parse", output_directory=f"file://{out}").execute({})
    assert result["errors"] == len(FAILURES)
    return [{k: v for k, v in record.items() if k != "file"} for record in result["error_records"]]


@pytest.mark.parametrize("layout", ["nested", "flat"])
def test_each_layout_gives_the_errors_video_segment_code_and_message(tmp_path, layout: str) -> None:
    """Each failed line becomes one record with its video, segment, code and message, in either layout."""
    records = _error_records(tmp_path, layout)
    assert [(r["video_uri"], r["code"], r["message"]) for r in records] == [
        ("gs://b/missing.mp4", 5, "Video not found"),
        ("gs://b/late.mp4", 11, "segment outside the video"),
        ("gs://b/png.mp4", 3, "Unsupported mimeType"),
        ("gs://b/quiet.mp4", 13, ""),
        ("gs://b/text.mp4", None, "internal error"),
        (None, 3, "Instance has no 'content' string"),
    ]
    assert (records[1]["segment_start"], records[1]["segment_end"]) == (9.0, 12.5)


def test_nested_and_flat_layouts_give_the_same_records(tmp_path) -> None:
    """The two layouts of the same failures are indistinguishable once parsed."""
    assert _error_records(tmp_path, "nested") == _error_records(tmp_path, "flat")
