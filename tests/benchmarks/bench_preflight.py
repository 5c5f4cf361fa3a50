"""Benchmark: checking that 100,000 listed videos exist, against the emulator's GCS, before a job is created.

The videos are planted straight into the emulator's in-memory store (uploading 100,000 objects over
HTTP would measure the upload). They lie in ``--folders`` folders, plus ``--sparse`` folders holding one
listed video each (one GET each). One JSON line: the seconds of :func:`gcs.missing_objects` and the
missing videos it found (the first listed video is left unplanted).

Run: ``.venv/bin/python -m tests.benchmarks.bench_preflight [--videos 100000] [--folders 100] [--sparse 50]``.
"""

from __future__ import annotations

import argparse
import copy
import time

from airflow_provider_video_actions import gcs
from airflow_provider_video_actions.emulator import Emulator
from tests.benchmarks.common import emit

BUCKET = "bench-preflight"


def plant(emulator: Emulator, names: list[str]) -> None:
    """Objects of one byte at ``names``, written into the emulator's store (the resource copied from a real upload)."""
    client = emulator.storage_client()
    client.bucket(BUCKET).blob("template.mp4").upload_from_string(b"x")
    storage = emulator._storage_server._api._storage
    template = storage.objects[BUCKET]["template.mp4"]
    for name in names:
        storage.objects[BUCKET][name] = {**copy.deepcopy(template), "name": name, "id": f"{BUCKET}/{name}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--folders", type=int, default=100)
    parser.add_argument("--sparse", type=int, default=50)
    args = parser.parse_args()
    crowded = args.videos - args.sparse
    names = [f"cam{n % args.folders:03}/clip{n:07}.mp4" for n in range(crowded)]
    names += [f"sparse{n:03}/clip.mp4" for n in range(args.sparse)]
    with Emulator(buckets=[BUCKET]) as emulator:
        plant(emulator, names[1:])  # the first listed video is missing
        client = emulator.storage_client()
        started = time.perf_counter()
        missing = gcs.missing_objects(client, [f"gs://{BUCKET}/{name}" for name in names])
        seconds = time.perf_counter() - started
    emit(
        {
            "videos": len(names),
            "crowded_folders": args.folders,
            "sparse_folders": args.sparse,
            "seconds": round(seconds, 2),
            "missing": missing,
        }
    )


if __name__ == "__main__":
    main()
