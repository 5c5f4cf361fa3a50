"""``python -m airflow_provider_video_actions.emulator`` announces itself, serves, and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from google.cloud import aiplatform_v1, storage
from google.cloud.aiplatform_v1.services.job_service.transports import JobServiceGrpcTransport

from airflow_provider_video_actions.emulator import Emulator
from airflow_provider_video_actions.emulator.__main__ import advertised_host, export_lines, parse_args, write_atomically
from airflow_provider_video_actions.emulator.control import CONTROL_ENV, TOKEN_ENV, ControlServer, main, new_token
from airflow_provider_video_actions.emulator.runner import storage_client
from airflow_provider_video_actions.hooks.storage import ALLOW_REMOTE_EMULATOR_ENV
from tests.conftest import PATIENCE

from .conftest import BUCKET, PARENT

REPO = Path(__file__).resolve().parents[2]


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float = PATIENCE) -> str:
    """The file's text once it exists; fail if the process dies or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"emulator exited early: {process.communicate()}"
        assert time.monotonic() < deadline, "emulator did not write its env file in time"
        time.sleep(0.05)
    return path.read_text()


def test_control_tokens_pass_as_the_token_argument() -> None:
    """A token starting with ``-`` is read by ``--token TOKEN`` as an option: the docs' commands failed one time in 64."""
    tokens = [new_token() for _ in range(2000)]
    assert not [token for token in tokens if token.startswith("-")]
    with pytest.raises(SystemExit) as refused:  # what such a token did: "--token: expected one argument"
        main(["--url", "http://127.0.0.1:1", "--token", "-x" + tokens[0], "reset_knobs"])
    assert refused.value.code == 2


def test_cli_writes_env_file_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The CLI announces working addresses, creates buckets, and exits 0 on SIGTERM, removing its env file."""
    env_file = tmp_path / "emulator.env"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "airflow_provider_video_actions.emulator", "--bucket", "cli-bucket"]
    process = subprocess.Popen(
        [*command, "--env-file", str(env_file), "--queued-seconds", "0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in wait_for_file(env_file, process).splitlines()
        )
        channel = grpc.insecure_channel(exports["VERTEX_AI_EMULATOR_HOST"])
        client = aiplatform_v1.JobServiceClient(transport=JobServiceGrpcTransport(channel=channel))
        assert list(client.list_batch_prediction_jobs(parent=PARENT)) == []
        assert storage_client(exports["STORAGE_EMULATOR_HOST"]).bucket("cli-bucket").exists()
        channel.close()
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 0, stderr
    assert "export VERTEX_AI_EMULATOR_HOST=127.0.0.1:" in stdout
    assert "export STORAGE_EMULATOR_HOST=http://127.0.0.1:" in stdout
    assert not env_file.exists()


def test_env_follows_the_client_conventions(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """STORAGE_EMULATOR_HOST works as-is with google-cloud-storage; the Vertex host takes a plain channel."""
    for key, value in emulator.env().items():
        monkeypatch.setenv(key, value)

    assert storage.Client().bucket(BUCKET).exists()
    channel = grpc.insecure_channel(os.environ["VERTEX_AI_EMULATOR_HOST"])
    client = aiplatform_v1.JobServiceClient(transport=JobServiceGrpcTransport(channel=channel))
    assert list(client.list_batch_prediction_jobs(parent=PARENT)) == []
    channel.close()


def test_taken_ports_fail_fast(emulator: Emulator) -> None:
    """Asking for a port in use raises instead of hanging or silently sharing the port."""
    storage_port = int(emulator.storage_host.rsplit(":", 1)[1])
    vertex_port = int(emulator.vertex_host.rsplit(":", 1)[1])

    with pytest.raises(OSError, match="in use"):
        Emulator(storage_port=storage_port).start()
    with pytest.raises(RuntimeError, match="bind"):
        Emulator(vertex_port=vertex_port).start()


def test_env_file_never_writes_through_a_planted_symlink(tmp_path: Path) -> None:
    """A symlink planted where the old code put its temporary file (or anywhere) cannot redirect the write."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    env_file = tmp_path / "emulator.env"
    (tmp_path / "emulator.env.partial").symlink_to(victim)

    write_atomically(env_file, "export X=1\n")

    assert victim.read_text() == "precious"
    assert env_file.read_text() == "export X=1\n" and not env_file.is_symlink()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # it holds the control token
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emulator.env", "emulator.env.partial", "victim"]


def test_a_symlink_at_the_env_file_itself_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    env_file = tmp_path / "emulator.env"
    env_file.symlink_to(victim)

    write_atomically(env_file, "export X=1\n")

    assert victim.read_text() == "precious" and env_file.read_text() == "export X=1\n"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.com"])
def test_a_non_loopback_host_needs_the_opt_in(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--host", host])
    assert exited.value.code == 2
    assert f"--host {host} is not a loopback address" in capsys.readouterr().err
    assert parse_args(["--host", host, "--allow-remote"]).allow_remote


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_hosts_need_no_opt_in(host: str) -> None:
    assert parse_args(["--host", host]).host == host


def test_the_env_file_for_docker_names_the_advertised_host(emulator: Emulator) -> None:
    """With --allow-remote the addresses name the host the containers reach, and the hooks are told to accept it."""
    assert advertised_host(parse_args(["--host", "0.0.0.0", "--allow-remote"])) == "host.docker.internal"
    assert advertised_host(parse_args(["--host", "0.0.0.0", "--allow-remote", "--advertise-host", "10.0.0.5"])) == (
        "10.0.0.5"
    )
    control = ControlServer(emulator)
    try:
        lines = export_lines(emulator, control, "host.docker.internal")
        local = export_lines(emulator, control, "127.0.0.1")
    finally:
        control.stop()
    vertex_port = emulator.vertex_host.rsplit(":", 1)[1]
    assert f"export VERTEX_AI_EMULATOR_HOST=host.docker.internal:{vertex_port}\n" in lines
    assert f"export {CONTROL_ENV}=http://host.docker.internal:{control.server_address[1]}\n" in lines
    assert f"export {TOKEN_ENV}={control.token}\n" in lines
    assert f"export {ALLOW_REMOTE_EMULATOR_ENV}=1\n" in lines  # the name the hooks read
    assert "ALLOW_REMOTE" not in local and "127.0.0.1" in local
