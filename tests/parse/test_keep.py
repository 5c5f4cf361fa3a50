"""The keep stage: the user's filters, top k per instance kept in output order."""

from __future__ import annotations

from airflow_provider_video_actions.parse.keep import PredictionFilter
from airflow_provider_video_actions.predictions import DecodedChunk, Instance, Moment


def moments(*confidences: float, label: str = "wave") -> list[Moment]:
    return [Moment("1", label, 0.0, 1.0, confidence) for confidence in confidences]


def test_filters_keep_the_output_order():
    assert [m.confidence for m in PredictionFilter(top_k=2).keep(moments(0.2, 0.9, 0.1, 0.5))] == [0.9, 0.5]
    assert [m.confidence for m in PredictionFilter(min_confidence=0.5).keep(moments(0.2, 0.9, 0.5))] == [0.9, 0.5]
    assert PredictionFilter(labels=frozenset({"run"})).keep(moments(0.9)) == []
    assert PredictionFilter().keeps_all and not PredictionFilter(top_k=1).keeps_all


def test_columns_repeat_each_instance_once_per_kept_moment():
    decoded = DecodedChunk(2, instances=[Instance("a", 0.0, None), Instance("b", 1.0, 2.0)])
    decoded.moments = [moments(0.1, 0.8), moments(0.9)]
    columns = PredictionFilter(min_confidence=0.5).columns(decoded)
    assert columns[0] == ["a", "b"] and columns[1] == [0.0, 1.0] and columns[-1] == [0.8, 0.9]
