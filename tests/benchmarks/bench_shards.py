"""Benchmark: one job's output parsed by one task, and by 4 shard instances running at once.

The output is bench_parse's realistic generator's (``predictions_<n>.jsonl`` files of 25 MB and an
``errors_00001.jsonl``), read from and written to ``file://``. Each parse runs in its own fresh
interpreter, as a worker runs a task instance: first the unsharded parse alone, then the 4 shards'
parses started together (as 4 mapped task instances on 4 workers; here they share this machine's
cores). One JSON line: parse wall and CPU seconds and peak RSS of the one task and of each instance;
the wall time of each run from its interpreters' start (imports included) to the last end; the
speedups (whole runs, and parse alone: the one task against the slowest instance); whether the
combined counts are the one task's.

Run: ``.venv/bin/python -m tests.benchmarks.bench_shards [--size-mb 1000] [--shards 4]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.bench_parse import MB, generate
from tests.benchmarks.common import ROOT, Stopwatch, child_result, emit

HERE = "tests.benchmarks.bench_shards"
SIZE_MB = 1000
SHARDS = 4
SUMMED = ("rows", "instances", "videos", "errors")


def case_parse(source: str, destination: str, shard: str = "") -> dict[str, Any]:
    """The parse operator as one task instance runs it (imports done before the clock starts)."""
    from airflow_provider_video_actions.operators.parse import ParseVideoActionPredictionsOperator

    operator = ParseVideoActionPredictionsOperator(
        task_id="parse", output_directory=source, destination=destination, shard=shard or None
    )
    clock = Stopwatch()
    with clock.running():
        result = operator.execute({})
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "summary": result}


def run_together(cases: list[list[str]]) -> tuple[float, list[dict[str, Any]]]:
    """Start every case in its own interpreter at once; the wall time until the last ends, and each result."""
    start = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, "-m", HERE, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args in cases
    ]
    outputs = [child.communicate() for child in children]
    wall = time.perf_counter() - start
    for child, (_, stderr) in zip(children, outputs, strict=True):
        if child.returncode != 0:
            raise RuntimeError(f"a shard's parse failed:\n{stderr[-3000:]}")
    return wall, [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]


def figures(measured: dict[str, Any]) -> dict[str, Any]:
    return {
        "seconds": round(measured["seconds"], 2),
        "cpu_s": round(measured["cpu_seconds"], 2),
        "peak_rss_mb": measured["peak_rss_mb"],
    }


def compare(root: Path, size_mb: int, count: int) -> None:
    """One unsharded parse, then ``count`` shard parses at once; one JSON line."""
    from airflow_provider_video_actions import shards

    source = root / "output"
    input_bytes = generate(source, size_mb)
    files = len(list(source.iterdir()))
    one_wall, (one,) = run_together([["--case", f"file://{source}", f"file://{root}/whole/moments.parquet"]])
    wall, parts = run_together(
        [["--case", f"file://{source}", f"file://{root}/sharded/", shard] for shard in shards.shard_list(count)]
    )
    combined = shards.combine(part["summary"] for part in parts)
    result: dict[str, Any] = {
        "benchmark": "shards",
        "input_mb": round(input_bytes / MB, 1),
        "files": files,
        "cores": os.cpu_count(),
        "one_task": figures(one),
        f"{count}_instances": [figures(part) for part in parts],
        "instance_input_mb": [round(sum(_sizes(part["summary"], source)) / MB, 1) for part in parts],
        "one_task_wall_s": round(one_wall, 2),
        f"{count}_instances_wall_s": round(wall, 2),
        "wall_speedup": round(one_wall / wall, 2),
        "parse_speedup": round(one["seconds"] / max(part["seconds"] for part in parts), 2),
        "counts_match": {k: combined[k] for k in SUMMED} == {k: one["summary"][k] for k in SUMMED},
        "rows": combined["rows"],
    }
    emit(result)


def _sizes(summary: dict[str, Any], source: Path) -> list[int]:
    """Sizes of the files a shard parsed (recomputed from the same assignment)."""
    from airflow_provider_video_actions import shards
    from airflow_provider_video_actions.parse.source import output_files

    predictions, errors, sizes = output_files(None, f"file://{source}")
    shard = shards.Shard.of({"index": summary["shard"]["index"], "count": summary["shard"]["count"]})
    mine = shards.shard_files(shard, predictions, errors, sizes)
    return [sizes[uri] for uri in mine[0] + mine[1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", metavar="ARG", help="source destination [shard]: one parse")
    parser.add_argument("--size-mb", type=int, default=SIZE_MB)
    parser.add_argument("--shards", type=int, default=SHARDS)
    options = parser.parse_args()
    if options.case:
        child_result(case_parse(*options.case))
        return
    root = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    try:
        compare(root, options.size_mb, options.shards)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
