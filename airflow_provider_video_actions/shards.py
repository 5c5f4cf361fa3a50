"""Sharded parse: one job's output files split across mapped task instances, their summaries combined.

A shard is ``"<index>/<count>"`` (or ``{"index": i, "count": n}``). Every instance lists the job's
output files with their sizes and computes the same size-balanced assignment (largest file first,
to the least loaded shard, ties by name and index), so no coordination is needed: instance ``i``
parses its own files and writes its own part, ``part-0000i-of-0000n.parquet`` in the destination
folder, its error records beside it (``part-0000i-of-0000n.errors.jsonl``). A retried instance
rewrites exactly its part; the union of the parts is what one unsharded parse writes.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_video_actions.job import VideoActionsValueError
from airflow_provider_video_actions.tallies import ERROR_SAMPLES, SUMMARY_LABELS
from airflow_provider_video_actions.validators import is_template

#: Parquet unless the destination names another format (``.../part.jsonl``).
DEFAULT_PART_EXTENSION = ".parquet"
#: Bytes of job output one shard aims at: about 7 CPU seconds of parsing (README "Big outputs").
DEFAULT_TARGET_SHARD_BYTES = 1024**3
#: Airflow's default ``[core] max_map_length`` is 1024; a parse rarely gains from more than a few dozen workers.
DEFAULT_MAX_SHARDS = 64
#: The summary's integer fields that do not add up across shards (the others are counts, summed).
_NOT_SUMMED = frozenset({"labels_omitted"})


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 0) of ``count``."""

    index: int
    count: int

    @classmethod
    def of(cls, value: Any, param: str = "shard") -> Shard:
        """A shard from ``"i/n"``, ``{"index": i, "count": n}`` or a Shard, or raise naming the parameter."""
        if isinstance(value, Shard):
            return value
        index = count = None
        if isinstance(value, str) and value.count("/") == 1:
            index, count = (int(part) if part.strip().isdigit() else None for part in value.split("/"))
        elif isinstance(value, Mapping) and set(value) == {"index", "count"}:
            index, count = value["index"], value["count"]
        if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
            raise VideoActionsValueError(
                f"{param} must be 'index/count' with 0 <= index < count (e.g. '3/8'), or "
                f"{{'index': 3, 'count': 8}}; got {value!r}. Expand over propose_shards(...) or "
                "ProposeParseShardsOperator's result."
            )
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_list(count: int) -> list[str]:
    """The shards of a ``count``-way parse, for ``.expand(shard=...)``."""
    return [str(Shard(index, count)) for index in range(count)]


def propose_shards(
    sizes: Iterable[int], target_shard_bytes: int = DEFAULT_TARGET_SHARD_BYTES, max_shards: int = DEFAULT_MAX_SHARDS
) -> list[str]:
    """Shards for output files of these sizes: one per ``target_shard_bytes``, at most one per file, ``max_shards``."""
    sizes = list(sizes)
    count = math.ceil(sum(sizes) / target_shard_bytes)
    return shard_list(max(1, min(count, len(sizes), max_shards)))


def assign(sizes: Mapping[str, int], count: int) -> list[list[str]]:
    """Files to ``count`` shards, balanced by size; the same for every instance given the same listing.

    Largest file first to the least loaded shard (ties: smaller index); files of equal size by name.
    Each shard's files are returned sorted by name.
    """
    shards: list[list[str]] = [[] for _ in range(count)]
    loads = [(0, index) for index in range(count)]
    for uri, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        load, index = heapq.heappop(loads)
        shards[index].append(uri)
        heapq.heappush(loads, (load + size, index))
    return [sorted(files) for files in shards]


def shard_files(
    shard: Shard, predictions: list[str], errors: list[str], sizes: Mapping[str, int]
) -> tuple[list[str], list[str]]:
    """This shard's predictions and errors files, each in the listing's order (so samples merge back in order).

    ``sizes`` holds the size of each of those files, from the same listing (``gcs.output_files``).
    """
    mine = set(assign(sizes, shard.count)[shard.index])
    return [uri for uri in predictions if uri in mine], [uri for uri in errors if uri in mine]


def listing_digest(files: Mapping[str, int]) -> str:
    """A digest of a listing's names and sizes: every shard of one parse must have assigned from the same one."""
    return hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()[:16]


def plan(destination: str | None, shard: Any) -> tuple[str | None, Shard | None]:
    """The file a parse writes and its shard: ``destination`` itself, or with a shard, that shard's part.

    A folder (``gs://b/moments/``) gets ``part-00003-of-00008.parquet``; a file name
    (``gs://b/moments/part.jsonl``) gets its stem numbered: ``part-00003-of-00008.jsonl``.
    """
    if shard is None:
        if isinstance(destination, str) and destination.endswith("/"):
            raise VideoActionsValueError(
                f"destination {destination!r} is a folder: that is a sharded parse's dataset, so give shard "
                "(expand over ProposeParseShardsOperator's result), or name one file, e.g. "
                f"{destination}moments.parquet."
            )
        return destination, None
    current = Shard.of(shard)
    if not isinstance(destination, str):
        raise VideoActionsValueError(
            f"shard {current} needs a destination (a folder like gs://bucket/moments/): each shard writes its own "
            "part of a dataset there, and XCom cannot hold a big output."
        )
    stem, extension = _stem(destination)
    numbering = f"-{current.index:05d}-of-{current.count:05d}"
    if stem.endswith(numbering):  # already this shard's part: execute ran again on the same task object
        return destination, current
    return f"{stem}{numbering}{extension}", current


def literal_part(destination: Any, shard: Any) -> str | None:
    """The part a literal destination names (None for a template, an XComArg or XCom), refusing a bad literal shard.

    Lets the parse operator fail at DAG parse time; a templated shard is checked when it is rendered.
    """
    if is_template(shard):
        shard = "0/1"  # a template or an XComArg, known later; every shard's part has the same format
    if destination is None or (isinstance(destination, str) and "{{" not in destination):
        return plan(destination, shard)[0]
    if shard is not None:
        Shard.of(shard)
    return None


def shard_summary(shard: Shard, part: str, digest: str) -> dict[str, Any]:
    """The ``shard`` field of a sharded parse's result: which shard, the wildcard of its dataset's parts, and the
    :func:`listing_digest` of the output files it was assigned from."""
    head, _, tail = part.rpartition(f"-{shard.index:05d}-of-{shard.count:05d}")
    return {
        "index": shard.index,
        "count": shard.count,
        "dataset": f"{head}-*-of-{shard.count:05d}{tail}",
        "listing_digest": digest,
    }


def dataset_folder(pattern: str) -> str:
    """The folder holding a dataset's parts (from its wildcard), the asset of the dataset.

    Without a trailing slash: Airflow normalises an asset URI's away.
    """
    return pattern.rsplit("/", 1)[0]


def _stem(destination: str) -> tuple[str, str]:
    """The part name's stem and extension: ``<folder>/part`` and ``.parquet`` for a folder."""
    if destination.endswith("/"):
        return destination + "part", DEFAULT_PART_EXTENSION
    return os.path.splitext(destination)


def combine(summaries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One summary, shaped as an unsharded parse's, from every shard's (each shard exactly once).

    ``uri`` is the wildcard of the dataset's parts (``gs://b/moments/part-*-of-00008.parquet``) and
    ``errors_uri`` of their errors files (None without errors), with the ``parts`` and ``errors_uris`` listed.

    Counts add up. ``videos`` is exact when each video's instances fall in one shard's files (a video
    split over shards counts once per shard). Label counts are exact unless a shard had more than
    ``SUMMARY_LABELS`` labels; error samples are the first in the listing's order, as unsharded.
    """
    summaries = list(summaries)
    count = _check_complete(summaries)
    _check_same_listing(summaries)
    summaries.sort(key=lambda s: s["shard"]["index"])
    combined: dict[str, Any] = {key: sum(s[key] for s in summaries) for key in _counts(summaries[0])}
    labels: Counter[str] = Counter()
    for s in summaries:
        labels.update(s["label_counts"])
    kept = dict(sorted(labels.most_common(SUMMARY_LABELS)))
    combined["label_counts"] = kept
    combined["labels_omitted"] = max([len(labels) - len(kept), *(s["labels_omitted"] for s in summaries)])
    samples = [sample for s in summaries for sample in s["error_samples"]]
    combined["error_samples"] = sorted(samples, key=_listing_order)[:ERROR_SAMPLES]
    combined["uri"] = pattern = summaries[0]["shard"]["dataset"]
    combined["errors_uri"] = os.path.splitext(pattern)[0] + ".errors.jsonl" if combined["errors"] else None
    combined["parts"] = [s["uri"] for s in summaries]
    combined["errors_uris"] = [s["errors_uri"] for s in summaries if s.get("errors_uri")]
    combined["shards"] = count
    return combined


def _counts(summary: Mapping[str, Any]) -> list[str]:
    """The summary's counts (``rows``, ``errors``, ...): every integer field but ``labels_omitted``."""
    return [k for k, v in summary.items() if type(v) is int and k not in _NOT_SUMMED]


def _check_complete(summaries: Sequence[Mapping[str, Any]]) -> int:
    """The shard count, after checking there is one summary per shard, each once (a partial dataset is refused)."""
    if not summaries or any(not isinstance(s, Mapping) or not isinstance(s.get("shard"), Mapping) for s in summaries):
        raise VideoActionsValueError(
            "summaries must be the sharded parse's results (parse.output of the mapped task), each with its "
            f"'shard'; got {str(summaries)[:300]!r}."
        )
    counts = {s["shard"]["count"] for s in summaries}
    if len(counts) != 1:
        raise VideoActionsValueError(f"summaries come from parses of different shard counts {sorted(counts)}.")
    (count,) = counts
    seen = Counter(s["shard"]["index"] for s in summaries)
    missing = sorted(set(range(count)) - set(seen))
    repeated = sorted(index for index, times in seen.items() if times > 1)
    if missing or repeated:
        raise VideoActionsValueError(
            f"a {count}-way parse needs one summary per shard: missing {missing}, repeated {repeated}."
        )
    return count


def _check_same_listing(summaries: Sequence[Mapping[str, Any]]) -> None:
    """Refuse shards that were assigned from different listings: files may have been parsed twice or skipped."""
    seen: dict[Any, list[int]] = {}
    for s in summaries:
        seen.setdefault(s["shard"].get("listing_digest"), []).append(s["shard"]["index"])
    if len(seen) > 1:
        groups = "; ".join(
            f"shards {sorted(indexes)} saw listing {digest}"
            for digest, indexes in sorted(seen.items(), key=lambda item: min(item[1]))
        )
        raise VideoActionsValueError(
            f"the shards listed different output files ({groups}): the job's output folder changed while they ran, "
            "so files may have been parsed twice or skipped. Once the output is final, clear every mapped parse "
            "instance and combine again."
        )


def _listing_order(sample: Mapping[str, Any]) -> tuple[bool, str, int]:
    """Where an error sample's line is in an unsharded parse: predictions files, then errors files, by name."""
    file = sample.get("file") or ""
    return os.path.basename(file).startswith("errors"), file, sample.get("line") or 0
