"""The emulator's door for one's own videos: ``upload``, ``ls`` and ``make-video`` subcommands.

``upload`` and ``ls`` talk to the GCS named by ``STORAGE_EMULATOR_HOST`` (the emulator's env file sets it)
with the real google-cloud-storage client, and refuse to run without it, so they never touch real GCS.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_video_actions.emulator.videos import ACTIONS, PlantedAction, make_video
from airflow_provider_video_actions.hooks.storage import STORAGE_EMULATOR_ENV

if TYPE_CHECKING:
    from google.cloud import storage

T = TypeVar("T")

PROG = "python -m airflow_provider_video_actions.emulator"
#: Where ``make-video`` plants its actions: the first at this second, each next one a second later.
FIRST_ACTION_SECONDS = 0.5
ACTION_SECONDS = 0.5


class CommandError(Exception):
    """A refusal the command prints as ``error: ...`` before exiting with status 2."""


def split_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/prefix`` -> (bucket, prefix); CommandError for anything else."""
    if not uri.startswith("gs://") or not uri[5:].split("/", 1)[0]:
        raise CommandError(f"{uri!r} is not a gs:// URI: write gs://BUCKET/ or gs://BUCKET/PREFIX/")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix


def emulated_storage_client() -> storage.Client:
    """A storage client for the emulator's GCS; CommandError when STORAGE_EMULATOR_HOST is unset."""
    endpoint = os.environ.get(STORAGE_EMULATOR_ENV)
    if not endpoint:
        raise CommandError(
            f"{STORAGE_EMULATOR_ENV} is not set, so this command would talk to real Google Cloud Storage: it refuses. "
            "Start the emulator with --env-file FILE and run `. FILE` (or `source FILE`) in this shell first."
        )
    from airflow_provider_video_actions.emulator.runner import storage_client

    return storage_client(endpoint)


def local_files(sources: Sequence[str]) -> Iterator[tuple[Path, str]]:
    """Each file to upload with its object name below the prefix: a file's own name, a folder's relative paths."""
    for source in map(Path, sources):
        if source.is_file():
            yield source, source.name
        elif source.is_dir():
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                yield path, path.relative_to(source).as_posix()
        else:
            raise CommandError(f"{str(source)!r} is neither a file nor a folder")


def upload(sources: Sequence[str], destination: str) -> list[str]:
    """Upload files and folders below ``gs://BUCKET/PREFIX/`` (creating the bucket if missing); return the URIs.

    One file to a destination not ending in ``/`` becomes exactly that object.
    """
    bucket_name, prefix = split_uri(destination)
    files = list(local_files(sources))
    if not files:
        raise CommandError(f"nothing to upload: {', '.join(sources)} holds no files")
    if prefix and not prefix.endswith("/") and len(files) > 1:
        raise CommandError(f"{destination!r} names one object but {len(files)} files were given: end it with /")
    client = emulated_storage_client()
    bucket = client.bucket(bucket_name)
    if not bucket.exists():
        bucket = client.create_bucket(bucket_name)
    uris = []
    for path, relative in files:
        name = prefix + relative if not prefix or prefix.endswith("/") else prefix
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        bucket.blob(name).upload_from_filename(str(path), content_type=content_type)
        uris.append(f"gs://{bucket_name}/{name}")
    return uris


def list_objects(uri: str) -> list[tuple[str, int]]:
    """(URI, size in bytes) of every object under ``gs://BUCKET[/PREFIX]``; CommandError for a missing bucket."""
    bucket_name, prefix = split_uri(uri)
    client = emulated_storage_client()
    if not client.bucket(bucket_name).exists():
        raise CommandError(f"bucket {bucket_name!r} does not exist (upload creates it)")
    blobs = client.list_blobs(bucket_name, prefix=prefix)
    return [(f"gs://{bucket_name}/{blob.name}", blob.size or 0) for blob in blobs]


def planted(labels: Sequence[str], seconds: float) -> list[PlantedAction]:
    """One action per label, a second apart from 0.5 s; CommandError if they do not fit in ``seconds``."""
    if not seconds > 0:
        raise CommandError(f"--seconds must be a positive number, got {seconds}")
    actions = [PlantedAction(label, FIRST_ACTION_SECONDS + index, ACTION_SECONDS) for index, label in enumerate(labels)]
    if actions and (end := actions[-1].start + actions[-1].duration) > seconds:
        raise CommandError(f"{len(actions)} actions need --seconds {end:g} or more, got {seconds:g}")
    return actions


def write_video(path: Path, labels: Sequence[str], seconds: float) -> list[PlantedAction]:
    """Encode a synthetic video with the labels planted and write it (creating folders); return the actions."""
    actions = planted(labels, seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make_video(actions, duration=seconds))
    return actions


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    """A parser named as the user typed the command."""
    return argparse.ArgumentParser(prog=f"{PROG} {command}", description=description)


def upload_main(argv: Sequence[str]) -> None:
    """``upload LOCAL_FILE_OR_DIR... gs://BUCKET/PREFIX/``: print each uploaded object's URI."""
    parser = _parser("upload", "Upload files or folders to the emulator's GCS (the bucket is created if missing).")
    parser.add_argument("sources", nargs="+", metavar="LOCAL_FILE_OR_DIR")
    parser.add_argument("destination", metavar="gs://BUCKET/PREFIX/")
    args = parser.parse_args(argv)
    for uri in _run(parser, upload, args.sources, args.destination):
        print(uri)


def ls_main(argv: Sequence[str]) -> None:
    """``ls gs://BUCKET[/PREFIX]``: print each object's size in bytes and URI."""
    parser = _parser("ls", "List objects of the emulator's GCS with their sizes in bytes.")
    parser.add_argument("uri", metavar="gs://BUCKET[/PREFIX]")
    args = parser.parse_args(argv)
    for uri, size in _run(parser, list_objects, args.uri):
        print(f"{size:>12}  {uri}")


def make_video_main(argv: Sequence[str]) -> None:
    """``make-video PATH [--seconds N] [--label wave]...``: write a video the emulator's model reads exactly."""
    parser = _parser(
        "make-video",
        "Write a synthetic MP4 with actions the emulator's model finds: each --label is shown for 0.5 s, "
        "the first from 0.5 s, the next a second later, and reported at the middle of its showing.",
    )
    parser.add_argument("path", type=Path, metavar="PATH")
    parser.add_argument("--seconds", type=float, default=4.0, help="video length (default 4)")
    parser.add_argument("--label", action="append", choices=list(ACTIONS), help="action to plant (repeatable; wave)")
    args = parser.parse_args(argv)
    for action in _run(parser, write_video, args.path, args.label or ["wave"], args.seconds):
        print(f"{args.path}: {action.label} at {action.start + action.duration / 2:.6f}s")


def _run(parser: argparse.ArgumentParser, command: Callable[..., T], *args: Any) -> T:
    """Run a command; a CommandError (or a storage error) exits 2 with its message, as a usage error does."""
    from google.api_core.exceptions import GoogleAPICallError

    try:
        return command(*args)
    except (CommandError, GoogleAPICallError, OSError) as exc:
        parser.exit(2, f"error: {exc}\n")


#: Subcommand -> its main, taking the arguments after the subcommand's name.
COMMANDS: dict[str, Callable[[Sequence[str]], None]] = {
    "upload": upload_main,
    "ls": ls_main,
    "make-video": make_video_main,
}
