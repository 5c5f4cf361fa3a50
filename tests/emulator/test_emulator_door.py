"""The door for one's own videos: ``make-video``, ``upload`` and ``ls`` against a running emulator's GCS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_video_actions.emulator import Emulator
from airflow_provider_video_actions.emulator.__main__ import main
from airflow_provider_video_actions.emulator.model import predict

from .test_emulator_cli import REPO

EMULATOR = [sys.executable, "-m", "airflow_provider_video_actions.emulator"]


@pytest.fixture
def sourced(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator's environment set, as after sourcing its env file."""
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    return emulator


def test_the_newcomer_commands_as_documented(sourced: Emulator, tmp_path: Path) -> None:
    """make-video, upload of a folder to a new bucket, and ls, each as its own ``python -m`` process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}

    def run(*arguments: str) -> str:
        done = subprocess.run([*EMULATOR, *arguments], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    made = run("make-video", str(tmp_path / "x" / "wave.mp4"))
    uploaded = run("upload", str(tmp_path / "x"), "gs://my-videos/in/")
    listed = run("ls", "gs://my-videos/in/")

    assert made == f"{tmp_path / 'x' / 'wave.mp4'}: wave at 0.750000s\n"
    assert uploaded == "gs://my-videos/in/wave.mp4\n"
    size = (tmp_path / "x" / "wave.mp4").stat().st_size
    assert listed == f"{size:>12}  gs://my-videos/in/wave.mp4\n"
    blob = sourced.storage_client().bucket("my-videos").get_blob("in/wave.mp4")
    assert blob.content_type == "video/mp4"
    assert [p["displayName"] for p in predict(blob.download_as_bytes(), 0.0, None, 0.0, 10)] == ["wave"]


def test_upload_keeps_folder_layout_and_names_single_objects(
    sourced: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a" / "sub").mkdir(parents=True)
    (tmp_path / "a" / "one.mp4").write_bytes(b"1")
    (tmp_path / "a" / "sub" / "two.mov").write_bytes(b"22")
    (tmp_path / "three.mp4").write_bytes(b"333")

    main(["upload", str(tmp_path / "a"), str(tmp_path / "three.mp4"), "gs://mine/videos/"])
    main(["upload", str(tmp_path / "three.mp4"), "gs://mine/exact/name.mp4"])
    main(["ls", "gs://mine"])

    # Under Airflow 2's logging the in-process GCS server's access log ("[2026-...] ... GET ...") shares stdout.
    out = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("[")]
    assert out[:4] == [
        "gs://mine/videos/one.mp4",
        "gs://mine/videos/sub/two.mov",
        "gs://mine/videos/three.mp4",
        "gs://mine/exact/name.mp4",
    ]
    assert [line.split() for line in out[4:]] == [
        ["3", "gs://mine/exact/name.mp4"],
        ["1", "gs://mine/videos/one.mp4"],
        ["2", "gs://mine/videos/sub/two.mov"],
        ["3", "gs://mine/videos/three.mp4"],
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["upload", "{tmp}/nothing-here", "gs://mine/"], "is neither a file nor a folder"),
        (["upload", "{tmp}", "mine/videos/"], "is not a gs:// URI"),
        (["upload", "{tmp}/f1", "{tmp}/f2", "gs://mine/one-name"], "names one object but 2 files were given"),
        (["ls", "gs://no-such-bucket/"], "bucket 'no-such-bucket' does not exist"),
        (["ls", "gs:///x"], "is not a gs:// URI"),
        (["make-video", "{tmp}/v.mp4", "--seconds", "1", "--label", "wave", "--label", "jump"], "need --seconds 2"),
        (["make-video", "{tmp}/v.mp4", "--seconds", "0"], "--seconds must be a positive number"),
        (["make-video", "{tmp}/v.mp4", "--label", "dance"], "invalid choice: 'dance'"),
    ],
)
def test_mistakes_exit_2_with_a_clear_message(
    sourced: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments, message
) -> None:
    (tmp_path / "f1").write_bytes(b"1")
    (tmp_path / "f2").write_bytes(b"2")
    with pytest.raises(SystemExit) as exited:
        main([argument.format(tmp=tmp_path) for argument in arguments])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", [["ls", "gs://mine/"], ["upload", "README.md", "gs://mine/"]])
def test_without_the_emulator_environment_gcs_commands_refuse(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command
) -> None:
    """Never real GCS: without STORAGE_EMULATOR_HOST the command stops before making any client."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exited:
        main(command)
    assert exited.value.code == 2
    assert "STORAGE_EMULATOR_HOST is not set" in capsys.readouterr().err


def test_the_console_script_is_declared() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert 'video-actions-emulator = "airflow_provider_video_actions.emulator.__main__:main"' in text
