"""``python -m airflow_provider_video_actions.emulator``: serve the emulator until SIGINT/SIGTERM.

Besides the JobService and GCS, it serves the control API (``control.py``) on 127.0.0.1 and logs every
JobService call at INFO.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import threading
from pathlib import Path

from airflow_provider_video_actions.emulator.control import CONTROL_ENV, ControlServer
from airflow_provider_video_actions.emulator.job_service import JobTimeline
from airflow_provider_video_actions.emulator.server import Emulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options: addresses, buckets, timeline and where to write the env file."""
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_video_actions.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--vertex-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--storage-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--control-port", type=int, default=0, help="control API on 127.0.0.1; 0 picks a free port")
    parser.add_argument("--bucket", action="append", default=[], help="bucket to create (repeatable)")
    for setting in dataclasses.fields(JobTimeline):  # --queued-seconds ... --lines-per-file
        option = "--" + setting.name.replace("_", "-")
        parser.add_argument(option, type=type(setting.default), default=setting.default, help="job timeline")
    parser.add_argument("--env-file", type=Path, help="write the export lines here once ready (removed on exit)")
    parser.add_argument("--log-level", default="INFO", help="INFO logs every JobService call")
    return parser.parse_args(argv)


def export_lines(emulator: Emulator, control: ControlServer) -> str:
    """Shell ``export`` lines for the emulator's environment, the control API's URL included."""
    env = {**emulator.env(), CONTROL_ENV: control.url}
    return "".join(f"export {key}={value}\n" for key, value in env.items())


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a watcher never reads a half-written file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def main(argv: list[str] | None = None) -> None:
    """Start the emulator, announce it, and serve until SIGINT or SIGTERM."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    emulator = Emulator(
        host=args.host,
        vertex_port=args.vertex_port,
        storage_port=args.storage_port,
        buckets=args.bucket,
        timeline=JobTimeline(**{f.name: getattr(args, f.name) for f in dataclasses.fields(JobTimeline)}),
    )
    with emulator:
        control = ControlServer(emulator, args.control_port).start()
        print(export_lines(emulator, control), end="", flush=True)
        if args.env_file:
            write_atomically(args.env_file, export_lines(emulator, control))
        try:
            stop.wait()
        finally:
            control.stop()
            if args.env_file:
                args.env_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
