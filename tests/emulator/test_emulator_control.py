"""The control API: another process reads the counters and call log and turns the knobs of a running emulator."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.api_core import exceptions
from google.cloud import aiplatform_v1
from google.cloud.aiplatform_v1.services.job_service.transports import JobServiceGrpcTransport

from airflow_provider_video_actions.emulator import Emulator
from airflow_provider_video_actions.emulator.control import (
    CONTROL_ENV,
    TOKEN_ENV,
    ControlServer,
    EmulatorControl,
    EmulatorControlError,
)
from airflow_provider_video_actions.emulator.runner import storage_client

from .conftest import BUCKET, MODEL, PARENT, poll
from .test_emulator_cli import REPO, wait_for_file


def child_env() -> dict[str, str]:
    """This environment with the repository importable."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[dict[str, str], subprocess.Popen, Path]]:
    """The emulator as its own process (the CLI): its announced environment, the process and its log file."""
    env_file, log = tmp_path / "emulator.env", tmp_path / "emulator.log"
    command = [sys.executable, "-m", "airflow_provider_video_actions.emulator", "--bucket", BUCKET, "--model", MODEL]
    timings = ["--queued-seconds", "0.05", "--pending-seconds", "0.05", "--running-seconds", "0.1"]
    with log.open("w") as log_file:  # a file, not a pipe: a full pipe would block the emulator's logging
        process = subprocess.Popen(
            [*command, *timings, "--env-file", str(env_file)], env=child_env(), stdout=log_file, stderr=log_file
        )
    try:
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in wait_for_file(env_file, process).splitlines()
        )
        storage_client(exports["STORAGE_EMULATOR_HOST"]).bucket(BUCKET).blob("empty.jsonl").upload_from_string("")
        yield exports, process, log
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def job_client(exports: dict[str, str]) -> aiplatform_v1.JobServiceClient:
    """A real JobService client to the served emulator."""
    channel = grpc.insecure_channel(exports["VERTEX_AI_EMULATOR_HOST"])
    return aiplatform_v1.JobServiceClient(transport=JobServiceGrpcTransport(channel=channel))


def create(client: aiplatform_v1.JobServiceClient, display_name: str) -> str:
    """Create a job over an empty instances file (it succeeds unless told otherwise); return its name."""
    job = aiplatform_v1.BatchPredictionJob(
        display_name=display_name,
        model=MODEL,
        input_config={"instances_format": "jsonl", "gcs_source": {"uris": [f"gs://{BUCKET}/empty.jsonl"]}},
        output_config={"predictions_format": "jsonl", "gcs_destination": {"output_uri_prefix": f"gs://{BUCKET}/out"}},
    )
    return client.create_batch_prediction_job(parent=PARENT, batch_prediction_job=job).name


def test_counters_and_call_log_reach_another_process(served):
    exports, process, log = served
    control = EmulatorControl(exports[CONTROL_ENV], token=exports[TOKEN_ENV])
    client = job_client(exports)
    started = time.time()
    name = create(client, "counted")
    list(client.list_batch_prediction_jobs(request={"parent": PARENT, "filter": 'labels.k="v"'}))
    with pytest.raises(exceptions.NotFound):
        client.get_batch_prediction_job(name=f"{PARENT}/batchPredictionJobs/1")

    state = control.state()
    assert state["calls"] == {"CreateBatchPredictionJob": 1, "ListBatchPredictionJobs": 1, "GetBatchPredictionJob": 1}
    assert state["created"] == [name]
    assert state["list_filters"] == {'labels.k="v"': 1}
    assert [(j["name"], j["display_name"]) for j in state["jobs"]] == [(name, "counted")]
    calls = control.calls(since=started)
    assert [(c["method"], c["target"], c["outcome"]) for c in calls] == [
        ("CreateBatchPredictionJob", "display_name=counted", "OK"),
        ("ListBatchPredictionJobs", 'filter=labels.k="v"', "OK"),
        ("GetBatchPredictionJob", f"{PARENT}/batchPredictionJobs/1", "NOT_FOUND"),
    ]
    assert calls[0]["job"] == name and started <= calls[0]["time"] <= calls[-1]["time"]
    assert control.calls(since=calls[-1]["time"] + 1) == []

    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    logged = log.read_text()
    assert f"CreateBatchPredictionJob display_name=counted -> OK ({name})" in logged
    assert f"GetBatchPredictionJob {PARENT}/batchPredictionJobs/1 -> NOT_FOUND" in logged


def test_hold_release_faults_and_timeline_from_another_process(served):
    exports, _, _ = served
    control = EmulatorControl(exports[CONTROL_ENV], token=exports[TOKEN_ENV])
    client = job_client(exports)

    control.hold("held")
    held = create(client, "held")
    poll(client, held, {"JOB_STATE_PAUSED"})
    control.release("held")
    poll(client, held, {"JOB_STATE_SUCCEEDED"})

    assert control.set_timeline(cancelling_seconds=600)["cancelling_seconds"] == 600
    cancelled = create(client, "cancelled")
    client.cancel_batch_prediction_job(name=cancelled)
    assert client.get_batch_prediction_job(name=cancelled).state.name == "JOB_STATE_CANCELLING"
    control.set_timeline(cancelling_seconds=0)
    poll(client, cancelled, {"JOB_STATE_CANCELLED"})

    control.fail_next("ListBatchPredictionJobs", code="RESOURCE_EXHAUSTED")
    with pytest.raises(exceptions.ResourceExhausted):
        list(client.list_batch_prediction_jobs(parent=PARENT))
    control.force_outcome("JOB_STATE_FAILED")
    poll(client, create(client, "forced"), {"JOB_STATE_FAILED"})
    control.reset_knobs()
    poll(client, create(client, "natural"), {"JOB_STATE_SUCCEEDED"})
    assert control.state()["faults"] == {"ListBatchPredictionJobs": 1}


def test_cli_client_reads_and_turns_knobs(served):
    exports, _, _ = served
    env = {**child_env(), CONTROL_ENV: exports[CONTROL_ENV], TOKEN_ENV: exports[TOKEN_ENV]}
    command = [sys.executable, "-m", "airflow_provider_video_actions.emulator.control"]

    timeline = subprocess.run(
        [*command, "timeline", "running_seconds=2.5"], env=env, capture_output=True, text=True, check=True
    )
    state = subprocess.run([*command, "state"], env=env, capture_output=True, text=True, check=True)
    refused = subprocess.run([*command, "fail_next", "method=Nope"], env=env, capture_output=True, text=True)

    assert json.loads(timeline.stdout)["running_seconds"] == 2.5
    assert json.loads(state.stdout)["timeline"]["running_seconds"] == 2.5
    assert refused.returncode == 2
    assert "unknown JobService methods ['Nope']" in refused.stderr


@pytest.mark.parametrize(
    ("knob", "body", "message"),
    [
        ("timeline", {"cancelling_seconds": -1}, "timeline.cancelling_seconds must be a finite number >= 0, got -1"),
        ("timeline", {"cancel_seconds": 1}, "unknown timeline fields ['cancel_seconds']"),
        ("fail_next", {"method": "ListBatchPredictionJobs", "code": "SLOW"}, "unknown gRPC status code 'SLOW'"),
        ("force_outcome", {"state": "JOB_STATE_RUNNING"}, "cannot force 'JOB_STATE_RUNNING'"),
        ("hold", {}, "missing 1 required positional argument: 'display_name'"),
        ("nothing", {}, "no route '/nothing'"),
    ],
)
def test_bad_requests_say_what_is_wrong(emulator: Emulator, knob, body, message):
    server = ControlServer(emulator).start()
    try:
        with pytest.raises(EmulatorControlError) as refused:
            EmulatorControl.of(server).knob(knob, **body)
    finally:
        server.stop()
    assert message in str(refused.value)


def test_client_without_url_names_the_variable(monkeypatch):
    monkeypatch.delenv(CONTROL_ENV, raising=False)
    with pytest.raises(ValueError, match=CONTROL_ENV):
        EmulatorControl()


def raw_request(
    server: ControlServer, method: str = "GET", path: str = "/state", body: bytes | None = None, **headers: str
) -> tuple[int, dict]:
    """Send one request with exactly these headers (``Host`` included) and return status and JSON answer."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(len(body or b""))}.items():
            connection.putheader(name.replace("_", "-"), value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.fixture
def control_server(emulator: Emulator) -> Iterator[ControlServer]:
    """An in-process control server that also answers to ``host.docker.internal`` (as --allow-remote does)."""
    server = ControlServer(emulator, names={"host.docker.internal"}).start()
    yield server
    server.stop()


def proper_headers(server: ControlServer) -> dict[str, str]:
    """The headers EmulatorControl sends."""
    return {
        "Host": f"127.0.0.1:{server.server_address[1]}",
        "Authorization": f"Bearer {server.token}",
        "Content_Type": "application/json",
    }


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"Authorization": None}, 401, "missing or wrong token"),
        ({"Authorization": "Bearer guess"}, 401, "missing or wrong token"),
        ({"Host": "evil.example:80"}, 403, "Host 'evil.example:80' is not this server"),
        ({"Host": "127.0.0.1:1"}, 403, "is not this server"),
        ({"Origin": "http://evil.example"}, 403, "cross-origin request from 'http://evil.example' refused"),
        ({"Content_Type": "text/plain"}, 415, "the body must be application/json"),
        ({"Content_Type": None}, 415, "the body must be application/json"),
    ],
)
def test_a_request_that_is_not_ours_is_refused_and_changes_nothing(emulator, control_server, change, status, message):
    headers = {key: value for key, value in {**proper_headers(control_server), **change}.items() if value is not None}

    answer = raw_request(control_server, "POST", "/force_outcome", b'{"state": "JOB_STATE_FAILED"}', **headers)

    assert answer[0] == status and message in answer[1]["error"]
    assert emulator.service._forced == {}


def test_reads_need_the_token_too(control_server):
    headers = proper_headers(control_server)
    del headers["Authorization"]
    assert raw_request(control_server, **headers)[0] == 401


def test_our_own_requests_and_opted_in_names_are_served(emulator, control_server):
    port = control_server.server_address[1]
    headers = proper_headers(control_server)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"host.docker.internal:{port}"):
        answer = raw_request(control_server, **{**headers, "Host": host, "Origin": f"http://{host}"})
        assert answer[0] == 200, answer
    answer = raw_request(control_server, "POST", "/force_outcome", b'{"state": "JOB_STATE_FAILED"}', **headers)
    assert answer == (200, {"ok": True, "result": None})
    assert emulator.service._forced == {None: aiplatform_v1.JobState.JOB_STATE_FAILED}


def test_the_client_reads_url_and_token_from_the_environment(emulator, control_server, monkeypatch):
    for name, value in control_server.env().items():
        monkeypatch.setenv(name, value)
    assert EmulatorControl().state()["models"][0] == "1234567890"
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(ValueError, match=TOKEN_ENV):
        EmulatorControl()
    with pytest.raises(EmulatorControlError, match="missing or wrong token"):
        EmulatorControl(token="guess").state()
