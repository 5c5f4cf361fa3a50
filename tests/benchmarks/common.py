"""Helpers shared by the benchmarks: run one case in a fresh interpreter, read its peak RSS, print JSON lines.

Each case runs in its own subprocess so that one case's memory and imports never colour another's.
A case prints one JSON object on its last stdout line; the parent adds nothing to it but reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


class Stopwatch:
    """Wall and CPU seconds (all threads) summed over the blocks it times.

    CPU time shows the work done whatever else runs on the machine; wall time is what a task waits.
    """

    def __init__(self) -> None:
        self.seconds = self.cpu_seconds = 0.0

    @contextmanager
    def running(self) -> Iterator[None]:
        """Time one block."""
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - wall
            self.cpu_seconds += time.process_time() - cpu


def run_case(module: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh interpreter and return the JSON object it prints last."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"case {module} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def emit(result: dict[str, Any]) -> None:
    """Print one case's result as a single JSON line (flushed, so progress shows as it goes)."""
    print(json.dumps(result), flush=True)


def child_result(result: dict[str, Any]) -> None:
    """Print a subprocess case's measurements, with its peak RSS, for :func:`run_case` to read."""
    print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}), flush=True)
