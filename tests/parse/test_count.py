"""The count stage: counts that add up, distinct videos counted exactly, samples bounded."""

from __future__ import annotations

from airflow_provider_video_actions.parse.count import ERROR_SAMPLES, ParseStats, video_hashes
from airflow_provider_video_actions.parse.keep import PredictionFilter
from airflow_provider_video_actions.predictions import MALFORMED, DecodedChunk, Instance, Moment, malformed


def test_the_summary_adds_up():
    stats = ParseStats()
    decoded = DecodedChunk(3, instances=[Instance("a"), Instance("a")])
    decoded.moments = [[Moment("1", "wave", 0.0, 1.0, 0.9)], [Moment("2", "run", 0.0, 1.0, 0.1)]]
    stats.add_lines(3)
    stats.add_records(PredictionFilter(min_confidence=0.5).columns(decoded), decoded)
    for line in range(ERROR_SAMPLES + 1):
        stats.add_error(malformed("not JSON", "f.jsonl", line))
    summary = stats.summary()
    assert (summary["rows"], summary["filtered_moments"], summary["instances"], summary["videos"]) == (1, 1, 2, 1)
    assert summary["label_counts"] == {"wave": 1} and stats.malformed_lines == ERROR_SAMPLES + 1
    assert len(summary["error_samples"]) == ERROR_SAMPLES and summary["error_samples"][0]["kind"] == MALFORMED


def test_video_hashes_are_distinct_and_sorted():
    hashes = video_hashes(["b", "a", "b"])
    assert len(hashes) == 2 and list(hashes) == sorted(hashes)
