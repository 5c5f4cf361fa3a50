"""Benchmark: N concurrent waits on emulator jobs, this provider's trigger against the Google provider's.

The emulator runs in this process; each case runs the N waits in a fresh interpreter, so its CPU and
memory are its own. The two triggers run side by side (one emulator each) to keep ``make bench``
short; they share the machine's two cores. Both triggers use the same poll interval. The baseline is
``CreateBatchPredictionJobTrigger`` of apache-airflow-providers-google, pointed at the emulator by
giving its async hook a client on an insecure channel (its own code builds a TLS client to Google):
one client per trigger, as it does. Ours goes through ``VERTEX_AI_EMULATOR_HOST`` and its standalone
``run()`` (the process-wide shared poll; on Airflow >= 3.3 the triggerer's shared stream does the same).

Per case, one JSON line: job-service calls per job per minute of waiting, peak RSS per trigger
(above the interpreter's RSS before the triggers start), CPU seconds, event lag after the job ended
(p50/p95) and event-loop lag (p95/max), with the ratios baseline/provider. Goal at N=500: >= 50x
fewer calls, CPU and RSS per trigger no worse, event lag p95 within one poll interval.

Run: ``.venv/bin/python -m tests.benchmarks.bench_polling [--sizes 10 100 500 1000] [--job-seconds 60]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.benchmarks.common import child_result, emit, run_case

POLL_INTERVAL = 10.0
BUCKET = "bench-polling"
IMPLS = ("provider", "google")


# ---------------------------------------------------------------------------------------------
# The child: N waits in one event loop.
# ---------------------------------------------------------------------------------------------


def _provider_waits(names: list[str]) -> list[Any]:
    from airflow_provider_video_actions.triggers.wait import VideoActionBatchPredictionTrigger

    return [VideoActionBatchPredictionTrigger(name, poll_interval=POLL_INTERVAL).run() for name in names]


def _google_waits(names: list[str], host: str) -> list[Any]:
    """The Google provider's trigger, its hook handing out an insecure-channel client per call (per trigger)."""
    import grpc
    from airflow.providers.google.cloud.hooks.vertex_ai.batch_prediction_job import BatchPredictionJobAsyncHook
    from airflow.providers.google.cloud.triggers.vertex_ai import CreateBatchPredictionJobTrigger
    from google.cloud.aiplatform_v1 import JobServiceAsyncClient
    from google.cloud.aiplatform_v1.services.job_service.transports import JobServiceGrpcAsyncIOTransport

    async def emulator_client(self: Any, region: str | None = None) -> JobServiceAsyncClient:
        return JobServiceAsyncClient(transport=JobServiceGrpcAsyncIOTransport(channel=grpc.aio.insecure_channel(host)))

    BatchPredictionJobAsyncHook.get_job_service_client = emulator_client  # harness only: no Google endpoint here
    triggers = []
    for name in names:
        _, project, _, region, _, job_id = name.split("/")
        triggers.append(
            CreateBatchPredictionJobTrigger(
                conn_id="google_cloud_default", project_id=project, location=region, job_id=job_id,
                poll_interval=POLL_INTERVAL,
            ).run()
        )  # fmt: skip
    return triggers


def _end_time(payload: dict[str, Any]) -> datetime:
    """When the job ended, from either trigger's event."""
    job = payload["job"]
    value = job.get("end_time") or job.get("endTime")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    """How late a 50 ms sleep wakes up: the event loop's responsiveness."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.05)
        samples.append(time.perf_counter() - started - 0.05)


async def _first_event(waiting: Any) -> tuple[dict[str, Any], datetime]:
    event = await anext(waiting)
    return event.payload, datetime.now(timezone.utc)


def _current_rss_mb() -> float:
    """This process's resident set size now (VmRSS) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS in /proc/self/status")


async def _wait_all(impl: str, waits: list[Any]) -> dict[str, Any]:
    samples: list[float] = []
    stop = asyncio.Event()
    monitor = asyncio.ensure_future(_loop_lag(samples, stop))
    results = await asyncio.gather(*(_first_event(w) for w in waits))
    stop.set()
    await monitor
    lags = sorted((seen - _end_time(payload)).total_seconds() for payload, seen in results)
    samples.sort()
    return {
        "ok": sum(1 for payload, _ in results if payload["status"] in ("done", "success")),
        "event_lag_p50_s": round(statistics.median(lags), 2),
        "event_lag_p95_s": round(lags[int(0.95 * (len(lags) - 1))], 2),
        "loop_lag_p95_ms": round(1000 * samples[int(0.95 * (len(samples) - 1))], 1),
        "loop_lag_max_ms": round(1000 * samples[-1], 1),
    }


def child(impl: str, jobs_file: str, host: str) -> None:
    """Run the waits and print the measurements."""
    names = json.loads(Path(jobs_file).read_text())
    import google.cloud.aiplatform_v1  # noqa: F401 - both triggers load it on first use; load it before measuring

    waits = _provider_waits(names) if impl == "provider" else _google_waits(names, host)
    base_rss = _current_rss_mb()
    started, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    result = asyncio.run(_wait_all(impl, waits))
    used = resource.getrusage(resource.RUSAGE_SELF)
    result.update(
        wall_s=round(time.monotonic() - started, 1),
        cpu_s=round(used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime, 2),
        base_rss_mb=base_rss,
    )
    child_result(result)


# ---------------------------------------------------------------------------------------------
# The parent: the emulator, the jobs, and the comparison.
# ---------------------------------------------------------------------------------------------


def _create_jobs(emulator: Any, count: int, tag: str) -> list[str]:
    """``count`` labelled jobs whose one instance fails fast (a missing video): they end after the timeline."""
    from airflow_provider_video_actions.job import PROVIDER_LABEL, PROVIDER_LABEL_VALUE, JobSpec

    line = json.dumps({"content": f"gs://{BUCKET}/missing.mp4", "mimeType": "video/mp4"})
    emulator.storage_client().bucket(BUCKET).blob("instances.jsonl").upload_from_string(line + "\n")
    client = emulator.job_client()
    specs = (
        JobSpec(
            project_id="bench", region="us-central1", model="projects/bench/locations/us-central1/models/1234567890",
            display_name=f"{tag}-{i}", instances_uris=(f"gs://{BUCKET}/instances.jsonl",),
            destination_prefix=f"gs://{BUCKET}/out", labels={PROVIDER_LABEL: PROVIDER_LABEL_VALUE},
        )
        for i in range(count)
    )  # fmt: skip
    return [client.create_batch_prediction_job(parent=s.parent, batch_prediction_job=s.to_proto()).name for s in specs]


def measure(impl: str, count: int, job_seconds: float) -> dict[str, Any]:
    """One case on its own emulator: create the jobs, run the waits in a child, count the reads they made."""
    from airflow_provider_video_actions.emulator import Emulator, JobTimeline

    timeline = JobTimeline(queued_seconds=1, pending_seconds=1, running_seconds=job_seconds)
    with tempfile.TemporaryDirectory() as workdir, Emulator(buckets=[BUCKET], timeline=timeline) as emulator:
        jobs_file = Path(workdir) / "jobs.json"
        jobs_file.write_text(json.dumps(_create_jobs(emulator, count, f"{impl}-{count}")))
        reads = ("GetBatchPredictionJob", "ListBatchPredictionJobs")
        before = sum(emulator.calls[m] for m in reads)
        args = ("--child", impl, str(jobs_file), emulator.vertex_host)
        result = run_case("tests.benchmarks.bench_polling", *args, env=emulator.env())
        calls = sum(emulator.calls[m] for m in reads) - before
    return {
        **result,
        "calls": calls,
        "calls_per_job_per_min": round(calls / count / (result["wall_s"] / 60), 3),
        "rss_per_trigger_kb": round(1024 * max(0.0, result["peak_rss_mb"] - result["base_rss_mb"]) / count, 1),
    }


def compare(count: int, job_seconds: float) -> dict[str, Any]:
    """Both triggers at one N, side by side (each in its own process, on its own emulator); ratios."""
    with ThreadPoolExecutor(len(IMPLS)) as pool:
        ours, base = pool.map(lambda impl: measure(impl, count, job_seconds), IMPLS)

    def ratio(key: str) -> float | None:
        return round(base[key] / ours[key], 2) if ours[key] else None

    return {
        "benchmark": "polling",
        "n": count,
        "poll_interval_s": POLL_INTERVAL,
        "job_seconds": job_seconds,
        "provider": ours,
        "google": base,
        "calls_ratio": ratio("calls_per_job_per_min"),
        "cpu_ratio": ratio("cpu_s"),
        "rss_per_trigger_ratio": ratio("rss_per_trigger_kb"),
        "goal_event_lag_p95_within_interval": ours["event_lag_p95_s"] <= POLL_INTERVAL,
    }


def main(argv: list[str] | None = None) -> None:
    """Parse options; run the child or every size."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500, 1000])
    parser.add_argument("--job-seconds", type=float, default=60.0)
    parser.add_argument("--child", nargs=3, metavar=("IMPL", "JOBS_FILE", "HOST"))
    args = parser.parse_args(argv)
    # Quiet logs for both triggers and the emulator alike (Airflow configures logging on import).
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    if args.child:
        child(*args.child)
        return
    for count in args.sizes:
        emit(compare(count, args.job_seconds))


if __name__ == "__main__":
    sys.exit(main())
