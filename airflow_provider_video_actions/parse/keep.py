"""The keep stage: the user's filters over a chunk's checked moments (min_confidence, labels, top_k)."""

from __future__ import annotations

import heapq
import itertools
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflow_provider_video_actions.predictions import Columns, DecodedChunk, Moment

_ids, _names, _starts, _ends, _confidences = (
    operator.attrgetter(name) for name in ("id", "display_name", "time_segment_start", "time_segment_end", "confidence")
)
_contents, _segment_starts, _segment_ends = (operator.attrgetter(name) for name in ("content", "start", "end"))


def _repeat(values: Iterable[Any], counts: list[int]) -> list[Any]:
    """Each value repeated its count of times, flattened (one value per kept moment)."""
    return list(itertools.chain.from_iterable(map(itertools.repeat, values, counts)))


@dataclass(frozen=True)
class PredictionFilter:
    """Which moments to keep: a confidence floor, a label allow-list, the top k per instance (in output order)."""

    min_confidence: float = 0.0
    labels: frozenset[str] | None = None
    top_k: int | None = None

    @property
    def keeps_all(self) -> bool:
        """Whether the filter keeps every moment (no floor, no allow-list, no limit)."""
        return self.min_confidence <= 0 and self.labels is None and self.top_k is None

    def keep(self, moments: list[Moment]) -> list[Moment]:
        """The moments of one instance that pass the filter, in their output order."""
        kept = [
            m
            for m in moments
            if m.confidence >= self.min_confidence and (self.labels is None or m.display_name in self.labels)
        ]
        if self.top_k is not None and len(kept) > self.top_k:
            best = heapq.nlargest(self.top_k, range(len(kept)), key=lambda i: kept[i].confidence)
            kept = [kept[i] for i in sorted(best)]
        return kept

    def columns(self, decoded: DecodedChunk) -> Columns:
        """The kept moments of a chunk's served instances as :class:`PredictionRecord` columns."""
        kept = decoded.moments if self.keeps_all else list(map(self.keep, decoded.moments))
        counts = list(map(len, kept))
        moments = list(itertools.chain.from_iterable(kept))
        return (
            _repeat(map(_contents, decoded.instances), counts),
            _repeat(map(_segment_starts, decoded.instances), counts),
            _repeat(map(_segment_ends, decoded.instances), counts),
            list(map(_ids, moments)),
            list(map(_names, moments)),
            list(map(_starts, moments)),
            list(map(_ends, moments)),
            list(map(_confidences, moments)),
        )
