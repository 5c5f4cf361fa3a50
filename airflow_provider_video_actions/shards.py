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
import itertools
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_video_actions.errors import VideoActionsValueError
from airflow_provider_video_actions.parse.count import ERROR_SAMPLES, SUMMARY_LABELS, ParseStats, shorten
from airflow_provider_video_actions.validators import is_template

#: Parquet unless the destination names another format (``.../part.jsonl``).
DEFAULT_PART_EXTENSION = ".parquet"
#: Bytes of job output one shard aims at: about 7 CPU seconds of parsing (README "Big outputs").
DEFAULT_TARGET_SHARD_BYTES = 1024**3
#: Airflow's default ``[core] max_map_length`` is 1024; a parse rarely gains from more than a few dozen workers.
DEFAULT_MAX_SHARDS = 64
#: The parse refuses a shard count above its ``max_shards`` (by default this, Airflow's default max_map_length).
MAX_SHARD_COUNT = 1024
#: ``"index/count"``: ASCII digits only (``int`` would also read other scripts' digits), at most 18 of each.
_SHARD_TEXT = re.compile(r"\s*([0-9]{1,18})\s*/\s*([0-9]{1,18})\s*")
#: How many shard indexes (missing, repeated) or folders a refusal lists.
_LISTED = 10
#: The summary's integer fields that do not add up across shards (the others are counts, summed).
_NOT_SUMMED = frozenset({"labels_omitted"})


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 0) of ``count``."""

    index: int
    count: int

    @classmethod
    def of(cls, value: Any, param: str = "shard", max_shards: int = MAX_SHARD_COUNT) -> Shard:
        """A shard from ``"i/n"``, ``{"index": i, "count": n}`` or a Shard, or raise naming the parameter.

        A count above ``max_shards`` is refused: a typo such as ``0/2000000`` must not plan two million parts.
        """
        index, count = _index_and_count(value)
        if index is None or count is None or not 0 <= index < count:
            raise VideoActionsValueError(
                f"{param} must be 'index/count' with 0 <= index < count, in ASCII digits (e.g. '3/8'), or "
                f"{{'index': 3, 'count': 8}}; got {shorten(repr(value), 200)}. Expand over propose_shards(...) or "
                "ProposeParseShardsOperator's result."
            )
        if count > max_shards:
            raise VideoActionsValueError(
                f"{param} {index}/{count} splits the parse into {count} shards, more than max_shards={max_shards}: "
                "check the shard list (propose it with ProposeParseShardsOperator), or raise the parse operator's "
                "max_shards (and Airflow's [core] max_map_length) if you mean that many."
            )
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _index_and_count(value: Any) -> tuple[int | None, int | None]:
    """The index and count a shard value gives (None where it gives none)."""
    if isinstance(value, Shard):
        return value.index, value.count
    if isinstance(value, str) and (match := _SHARD_TEXT.fullmatch(value)):
        return int(match[1]), int(match[2])
    if isinstance(value, Mapping) and set(value) == {"index", "count"}:
        index, count = value["index"], value["count"]
        if all(type(number) is int for number in (index, count)):
            return index, count
    return None, None


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
    """Files to at most ``count`` shards, balanced by size; the same for every instance given the same listing.

    Largest file first to the least loaded shard (ties: smaller index); files of equal size by name.
    Shards that get no file are left out (they are the last ones), so memory follows the files, not ``count``.
    Each shard's files are returned sorted by name.
    """
    shards: list[list[str]] = []
    loads: list[tuple[int, int]] = []  # (load, index) of the shards given a file so far
    for uri, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        fresh = (0, len(shards))  # the first shard without a file: the least loaded of those without one
        if len(shards) < count and (not loads or fresh < loads[0]):
            load, index = fresh
            shards.append([])
        else:
            load, index = heapq.heappop(loads)
        shards[index].append(uri)
        heapq.heappush(loads, (load + size, index))
    return [sorted(files) for files in shards]


def shard_files(
    shard: Shard, predictions: list[str], errors: list[str], sizes: Mapping[str, int]
) -> tuple[list[str], list[str]]:
    """This shard's predictions and errors files, each in the listing's order (so samples merge back in order).

    ``sizes`` holds the size of each of those files, from the same listing (``parse.source.output_files``).
    """
    assigned = assign(sizes, shard.count)
    mine = set(assigned[shard.index]) if shard.index < len(assigned) else set()
    return [uri for uri in predictions if uri in mine], [uri for uri in errors if uri in mine]


def listing_digest(files: Mapping[str, int]) -> str:
    """A digest of a listing's names and sizes: every shard of one parse must have assigned from the same one."""
    return hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()[:16]


def plan(destination: str | None, shard: Any, max_shards: int = MAX_SHARD_COUNT) -> tuple[str | None, Shard | None]:
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
    current = Shard.of(shard, max_shards=max_shards)
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


def literal_part(destination: Any, shard: Any, max_shards: int = MAX_SHARD_COUNT) -> str | None:
    """The part a literal destination names (None for a template, an XComArg or XCom), refusing a bad literal shard.

    Lets the parse operator fail at DAG parse time; a templated shard is checked when it is rendered.
    """
    if is_template(shard):
        shard = "0/1"  # a template or an XComArg, known later; every shard's part has the same format
    if destination is None or (isinstance(destination, str) and "{{" not in destination):
        return plan(destination, shard, max_shards)[0]
    if shard is not None:
        Shard.of(shard, max_shards=max_shards)
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
    """One summary, shaped as an unsharded parse's, from every shard's (each shard exactly once, one dataset).

    ``uri`` is the wildcard of the dataset's parts (``gs://b/moments/part-*-of-00008.parquet``) and
    ``errors_uri`` of their errors files (None without errors), with the ``parts`` and ``errors_uris`` listed.

    Counts add up. ``videos`` is exact when each video's instances fall in one shard's files (a video
    split over shards counts once per shard). Label counts are exact unless a shard had more than
    ``SUMMARY_LABELS`` labels; error samples are the first in the listing's order, as unsharded.
    """
    if isinstance(summaries, (str, bytes)) or not isinstance(summaries, Iterable):
        raise VideoActionsValueError(f"summaries must be the mapped parse task's results; {_got(summaries)}.")
    summaries = list(summaries)
    for position, summary in enumerate(summaries):
        _check_summary(position, summary)
    count = _check_complete(summaries)
    _check_one_dataset(summaries)
    _check_same_listing(summaries)
    summaries.sort(key=lambda s: s["shard"]["index"])
    combined: dict[str, Any] = {key: sum(s[key] for s in summaries) for key in _COUNTS}
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


def _is_count(value: Any) -> bool:
    """An integer >= 0 (not a bool, not text)."""
    return type(value) is int and value >= 0


def _is_error_sample(sample: Any) -> bool:
    """A summary's error sample: a mapping whose file and line (if any) are a name and a number."""
    return (
        isinstance(sample, Mapping)
        and isinstance(sample.get("file"), (str, type(None)))
        and (sample.get("line") is None or _is_count(sample["line"]))
    )


def _is_shard_field(shard: Any) -> bool:
    """A summary's ``shard``: :func:`shard_summary`'s fields, with 0 <= index < count."""
    return (
        isinstance(shard, Mapping)
        and set(shard) == {"index", "count", "dataset", "listing_digest"}
        and _is_count(shard["index"])
        and _is_count(shard["count"])
        and shard["index"] < shard["count"]
        and isinstance(shard["dataset"], str)
        and isinstance(shard["listing_digest"], str)
    )


#: A shard summary's fields that are not counts, each with its check and what it must be.
_FIELD_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "label_counts": (
        lambda v: isinstance(v, Mapping) and all(isinstance(k, str) and _is_count(n) for k, n in v.items()),
        "a mapping of label -> count",
    ),
    "error_samples": (lambda v: isinstance(v, list) and all(map(_is_error_sample, v)), "a list of error samples"),
    "uri": (lambda v: isinstance(v, str), "the part's URI"),
    "errors_uri": (lambda v: v is None or isinstance(v, str), "the errors file's URI or None"),
    "shard": (_is_shard_field, "{'index': i, 'count': n, 'dataset': ..., 'listing_digest': ...} with 0 <= i < n"),
}
#: A shard summary's fields: a parse's counts and samples, where its part is, and which shard it was.
_SUMMARY_FIELDS = frozenset(ParseStats().summary()) | set(_FIELD_RULES)
#: The counts (``rows``, ``errors``, ...), summed across shards; ``labels_omitted`` is a count but not summed.
_COUNTS = sorted(_SUMMARY_FIELDS - set(_FIELD_RULES) - _NOT_SUMMED)


def _check_summary(position: int, summary: Any) -> None:
    """Refuse anything but a sharded parse's result: each field present, of its type, and no other."""
    where = f"summaries[{position}]"
    if not isinstance(summary, Mapping):
        raise VideoActionsValueError(
            f"{where} must be a sharded parse's result (parse.output of the mapped task); {_got(summary)}."
        )
    missing = sorted(_SUMMARY_FIELDS - set(summary))
    extra = sorted(map(str, set(summary) - _SUMMARY_FIELDS))
    if missing or extra:
        wrong = [f"missing {_listed(missing)}"] * bool(missing) + [f"unexpected {_listed(extra)}"] * bool(extra)
        raise VideoActionsValueError(
            f"{where} is not a sharded parse's result ({shorten('; '.join(wrong), 500)}): pass the mapped parse "
            "task's output (parse.output) as summaries."
        )
    for key in sorted(_SUMMARY_FIELDS):
        check, meaning = _FIELD_RULES.get(key, (_is_count, "a count (an integer >= 0)"))
        if not check(summary[key]):
            raise VideoActionsValueError(f"{where}[{key!r}] must be {meaning}; {_got(summary[key])}.")


def _got(value: Any) -> str:
    """What a refused value was, in bounded length."""
    return f"got {type(value).__name__}: {shorten(repr(value), 200)}"


def _listed(items: Sequence[Any], total: int | None = None) -> str:
    """At most ``_LISTED`` items, saying how many more there are (``total`` of them in all)."""
    total = len(items) if total is None else total
    more = f" and {total - _LISTED} more" if total > _LISTED else ""
    return f"{list(items[:_LISTED])}{more}"


def _check_complete(summaries: Sequence[Mapping[str, Any]]) -> int:
    """The shard count, after checking there is one summary per shard, each once (a partial dataset is refused).

    Bounded by the summaries, whatever count they claim: indexes are listed, never ``range(count)``.
    """
    if not summaries:
        raise VideoActionsValueError("summaries is empty: pass the mapped parse task's output (parse.output).")
    counts = sorted({s["shard"]["count"] for s in summaries})
    if len(counts) != 1:
        raise VideoActionsValueError(f"summaries come from parses of different shard counts {_listed(counts)}.")
    (count,) = counts
    seen = Counter(s["shard"]["index"] for s in summaries)
    repeated = sorted(index for index, times in seen.items() if times > 1)
    if len(seen) < count or repeated:
        missing = list(itertools.islice((i for i in range(count) if i not in seen), _LISTED))
        raise VideoActionsValueError(
            f"a {count}-way parse needs one summary per shard, got {len(summaries)}: missing "
            f"{_listed(missing, count - len(seen))}, repeated {_listed(repeated)}."
        )
    return count


def _check_one_dataset(summaries: Sequence[Mapping[str, Any]]) -> None:
    """Refuse shards that wrote to different datasets: the combined ``uri`` names one, a loader would miss rows."""
    datasets = sorted({s["shard"]["dataset"] for s in summaries})
    if len(datasets) > 1:
        named = ", ".join(repr(shorten(dataset, 200)) for dataset in datasets[:_LISTED])
        more = f" and {len(datasets) - _LISTED} more" if len(datasets) > _LISTED else ""
        raise VideoActionsValueError(
            f"the shards wrote {len(datasets)} different datasets ({named}{more}), but the combined uri names one "
            "and a loader reading it would miss rows: give every mapped parse instance the same destination (in "
            ".partial(...)), then clear them and combine again."
        )


def _check_same_listing(summaries: Sequence[Mapping[str, Any]]) -> None:
    """Refuse shards that were assigned from different listings: files may have been parsed twice or skipped."""
    seen: dict[Any, list[int]] = {}
    for s in summaries:
        seen.setdefault(s["shard"]["listing_digest"], []).append(s["shard"]["index"])
    if len(seen) > 1:
        groups = "; ".join(
            f"{'shard' if len(indexes) == 1 else 'shards'} {_listed(sorted(indexes))} saw listing {digest}"
            for digest, indexes in sorted(seen.items(), key=lambda item: min(item[1]))
        )
        raise VideoActionsValueError(
            f"the shards listed different output files ({shorten(groups, 1000)}): the job's output folder changed "
            "while they ran, so files may have been parsed twice or skipped. Once the output is final, clear every "
            "mapped parse instance and combine again."
        )


def _listing_order(sample: Mapping[str, Any]) -> tuple[bool, str, int]:
    """Where an error sample's line is in an unsharded parse: predictions files, then errors files, by name."""
    file = sample.get("file") or ""
    return os.path.basename(file).startswith("errors"), file, sample.get("line") or 0
