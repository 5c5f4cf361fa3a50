"""``python -m airflow_provider_video_actions.emulator [serve]``: serve the emulator until SIGINT/SIGTERM.

Besides the JobService and GCS, it serves the control API (``control.py``) on 127.0.0.1, guarded by a
per-run token, and logs every JobService call at INFO. Other subcommands (``upload``, ``ls``,
``make-video``; see ``commands.py``) put one's own videos into a running emulator's GCS.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from airflow_provider_video_actions.emulator.commands import COMMANDS
from airflow_provider_video_actions.emulator.control import ControlServer
from airflow_provider_video_actions.emulator.job_service import JobTimeline
from airflow_provider_video_actions.emulator.server import Emulator
from airflow_provider_video_actions.hooks.storage import ALLOW_REMOTE_EMULATOR_ENV

#: What a client in a Docker container calls the machine the emulator runs on (default ``--advertise-host``).
DOCKER_HOST_NAME = "host.docker.internal"
_WILDCARDS = ("0.0.0.0", "::")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options: addresses, buckets, models, timeline and where to write the env file."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_video_actions.emulator",
        description=__doc__,
        epilog=f"Other subcommands: {', '.join(COMMANDS)} (each takes --help).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; off loopback only with --allow-remote")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="serve a non-loopback --host (e.g. 0.0.0.0 for Airflow in Docker): gRPC and GCS have NO authentication",
    )
    parser.add_argument(
        "--advertise-host",
        help=f"host name clients use in the env file's addresses (default: --host, or {DOCKER_HOST_NAME} for 0.0.0.0)",
    )
    parser.add_argument("--vertex-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--storage-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--control-port", type=int, default=0, help="control API (token-guarded); 0 picks a free port")
    parser.add_argument("--bucket", action="append", default=[], help="bucket to create (repeatable)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="ID_OR_NAME",
        help="serve this model too (repeatable): an ID, projects/P/locations/L/models/ID or gemini-<version>; "
        "the demo's 1234567890 and Google's Gemini models are served without it",
    )
    for setting in dataclasses.fields(JobTimeline):  # --queued-seconds ... --lines-per-file
        option = "--" + setting.name.replace("_", "-")
        parser.add_argument(option, type=type(setting.default), default=setting.default, help="job timeline")
    parser.add_argument("--env-file", type=Path, help="write the export lines here once ready (removed on exit)")
    parser.add_argument("--log-level", default="INFO", help="INFO logs every JobService call")
    args = parser.parse_args(argv)
    if not is_loopback(args.host) and not args.allow_remote:
        parser.error(
            f"--host {args.host} is not a loopback address: anyone who reaches it can create jobs and read or "
            "write the emulated GCS without credentials. Add --allow-remote if you mean to serve another "
            "machine or a Docker container (e.g. --host 0.0.0.0 --allow-remote)."
        )
    return args


def is_loopback(host: str) -> bool:
    """Whether a bind address is on this machine only (localhost, 127.0.0.0/8, ::1)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def advertised_host(args: argparse.Namespace) -> str:
    """The host name the env file's addresses use."""
    if args.advertise_host:
        return args.advertise_host
    return DOCKER_HOST_NAME if args.host in _WILDCARDS else args.host


def export_lines(emulator: Emulator, control: ControlServer, host: str) -> str:
    """Shell ``export`` lines for the emulator's environment (control URL and token included), naming ``host``."""
    env = {**emulator.env(host), **control.env(host)}
    if not is_loopback(host):
        env[ALLOW_REMOTE_EMULATOR_ENV] = "1"
    return "".join(f"export {key}={value}\n" for key, value in env.items())


def write_atomically(path: Path, text: str) -> None:
    """Write via a new private file in the same folder and rename, so no watcher reads half a file.

    The temporary file gets a fresh random name opened with O_EXCL (``mkstemp``): a symlink planted at a
    predictable temporary path cannot redirect the write; the rename replaces ``path`` itself, never a
    file a symlink there points to. Mode 0600: the file holds the control API's token.
    """
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "w") as stream:
            stream.write(text)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def serve(argv: Sequence[str]) -> None:
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
        models=args.model,
    )
    host = advertised_host(args)
    with emulator:
        control_host = args.host if args.allow_remote else "127.0.0.1"
        control = ControlServer(emulator, args.control_port, host=control_host, names={host, args.host}).start()
        print(export_lines(emulator, control, host), end="", flush=True)
        if args.env_file:
            write_atomically(args.env_file, export_lines(emulator, control, host))
        try:
            stop.wait()
        finally:
            control.stop()
            if args.env_file:
                args.env_file.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Dispatch: ``upload``, ``ls`` or ``make-video``; otherwise (``serve`` or no subcommand) serve."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        COMMANDS[argv[0]](argv[1:])
    else:
        serve(argv[1:] if argv[:1] == ["serve"] else argv)


if __name__ == "__main__":
    main()
