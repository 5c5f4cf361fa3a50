"""Benchmark: the cost of parsing a DAG that uses the provider, against importing ``airflow.sdk`` alone.

Airflow parses DAG files again and again, so the example DAG's import must stay close to the bare
SDK's. Each import runs in a fresh interpreter (same environment, its own throwaway AIRFLOW_HOME),
alternating the two, ``ROUNDS`` times each; the JSON line gives the median wall time of the import
statement, the median peak RSS, and their ratios (goal: at most 1.2), plus whether any heavy module
(google-cloud clients, gRPC, pyarrow, pandas) was loaded.

Run: ``.venv/bin/python -m tests.benchmarks.bench_import`` (``make bench`` runs every benchmark).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import statistics
import sys
import tempfile
import time
from typing import Any

from tests.benchmarks.common import ROOT, child_result, emit, run_case

ROUNDS = 5
DAG_FILE = ROOT / "dags" / "video_action_recognition.py"
#: Packages a DAG file must not load at parse time (``google`` and ``google.cloud`` alone are namespace packages).
HEAVY = (
    "google.cloud.storage",
    "google.cloud.aiplatform",
    "google.cloud.aiplatform_v1",
    "google.api_core",
    "grpc",
    "pyarrow",
    "pandas",
)


def case_sdk() -> dict[str, Any]:
    """Import the bare Task SDK, as every DAG file does."""
    started = time.perf_counter()
    importlib.import_module("airflow.sdk")
    return {"seconds": time.perf_counter() - started, "heavy": _heavy()}


def case_dag() -> dict[str, Any]:
    """Import the example DAG file as the DAG processor would: run it as a module, building the DAG."""
    started = time.perf_counter()
    spec = importlib.util.spec_from_file_location("video_action_recognition", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"seconds": time.perf_counter() - started, "heavy": _heavy()}


def _heavy() -> list[str]:
    """The heavy packages that the import loaded."""
    return sorted(
        {prefix for prefix in HEAVY for name in sys.modules if name == prefix or name.startswith(prefix + ".")}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["sdk", "dag"])
    options = parser.parse_args()
    if options.case:
        child_result(globals()[f"case_{options.case}"]())
        return
    runs: dict[str, list[dict[str, Any]]] = {"sdk": [], "dag": []}
    with tempfile.TemporaryDirectory(prefix="bench-import-") as home:
        env = {"AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        for _ in range(ROUNDS):
            for case in runs:
                runs[case].append(run_case("tests.benchmarks.bench_import", "--case", case, env=env))
    sdk, dag = (_medians(runs[case]) for case in ("sdk", "dag"))
    emit(
        {
            "benchmark": "dag_import",
            "case": "dags/video_action_recognition.py vs airflow.sdk",
            "rounds": ROUNDS,
            "sdk_seconds": sdk["seconds"],
            "sdk_peak_rss_mb": sdk["peak_rss_mb"],
            "dag_seconds": dag["seconds"],
            "dag_peak_rss_mb": dag["peak_rss_mb"],
            "time_ratio": round(dag["seconds"] / sdk["seconds"], 3),
            "rss_ratio": round(dag["peak_rss_mb"] / sdk["peak_rss_mb"], 3),
            "dag_heavy_modules": runs["dag"][0]["heavy"],
            "sdk_heavy_modules": runs["sdk"][0]["heavy"],
        }
    )


def _medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Median import time (s) and peak RSS (MB) over the rounds."""
    return {key: round(statistics.median(r[key] for r in runs), 3) for key in ("seconds", "peak_rss_mb")}


if __name__ == "__main__":
    main()
