"""A real multi-process Airflow and the emulator, started from the project's environment in a throwaway home.

Scheduler, DAG processor, triggerer and API server run as separate processes (LocalExecutor, SQLite, which
Airflow 3 allows with LocalExecutor: ``airflow standalone`` runs that pair), plus the emulator as its own
process. Each process gets its own process group, recorded in ``<home>/pgids``, and a random token in its
environment (``TOKEN_ENV``, recorded in ``<home>/token``), which task runners inherit, so that ``make
test-deployment`` can kill leftovers whatever happened to the test process, and only those. The test drives
Airflow only through the REST API (simple auth manager, a generated password) and the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from airflow_provider_video_actions.emulator.control import CONTROL_ENV, EmulatorControl
from airflow_provider_video_actions.emulator.control import TOKEN_ENV as CONTROL_TOKEN_ENV

#: Times a trigger POST is sent when the API server answers 500 (a locked SQLite database).
TRIGGER_ATTEMPTS = 3


class ApiError(AssertionError):
    """An HTTP error answer of the API server, with its status code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


REPO = Path(__file__).resolve().parents[2]
HOME = REPO / ".deployment"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
BUCKETS = ("video-actions-demo", "video-actions-deployment")
#: How long an emulated job runs (see _start_emulator).
JOB_RUNNING_SECONDS = 10.0
#: Environment variable carrying this deployment's token in every process it starts (and their children).
TOKEN_ENV = "VIDEO_ACTIONS_DEPLOYMENT"
T = TypeVar("T")


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check: Callable[[], T], timeout: float, what: str, every: float = 0.5) -> T:
    """``check()``'s first truthy value; AssertionError naming ``what`` after ``timeout`` seconds (a deadline)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)
    return value


class Deployment:
    """The running deployment: start, REST calls, triggerer restarts, stop (every process it started)."""

    def __init__(self, home: Path = HOME) -> None:
        """Nothing runs until ``start()``."""
        self.home, self.airflow_home, self.logs = home, home / "airflow", home / "logs"
        self.processes: dict[str, subprocess.Popen] = {}
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.token = secrets.token_hex(16)
        self._token = ""
        self.env: dict[str, str] = {}
        self.control: EmulatorControl | None = None

    # ----- lifecycle -----

    def start(self) -> Deployment:
        """A fresh home, the emulator, the metadata DB, then the four Airflow components; wait until healthy."""
        shutil.rmtree(self.home, ignore_errors=True)
        self.logs.mkdir(parents=True)
        (self.home / "token").write_text(self.token)
        emulator_env = self._start_emulator()
        self.control = EmulatorControl(emulator_env[CONTROL_ENV], token=emulator_env[CONTROL_TOKEN_ENV])
        self.env = self._airflow_env(emulator_env)
        migrate = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], env=self.env, capture_output=True, text=True
        )
        assert migrate.returncode == 0, f"airflow db migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}"
        for component in COMPONENTS:
            self._spawn(component, [sys.executable, "-m", "airflow", component])
        wait_until(self._healthy, 240, "scheduler, DAG processor and triggerer to report healthy")
        self._token = self._login()
        return self

    def stop(self) -> None:
        """SIGTERM every process group started, then SIGKILL what is still there after 20 s; forget their ids."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(process, signal.SIGKILL)  # the group's children (task runners, API workers) too
            process.wait()
        self.processes.clear()
        kill_strays(self.token)
        (self.home / "pgids").unlink(missing_ok=True)  # all stopped: nothing for make to kill (no stale ids)
        (self.home / "token").unlink(missing_ok=True)

    def restart_triggerer(self, signum: signal.Signals) -> float:
        """Stop the triggerer with ``signum`` (its whole process group), start a new one; return the downtime (s)."""
        old = self.processes.pop("triggerer")
        began = time.monotonic()
        _signal_group(old, signum)
        try:
            old.wait(timeout=60)
        finally:
            _signal_group(old, signal.SIGKILL)  # anything the triggerer left behind in its group, or itself if stuck
            old.wait()
        self._spawn("triggerer", [sys.executable, "-m", "airflow", "triggerer"])
        return time.monotonic() - began

    def _start_emulator(self) -> dict[str, str]:
        """The emulator as its own process; its announced environment."""
        env_file = self.home / "emulator.env"
        buckets = [arg for bucket in BUCKETS for arg in ("--bucket", bucket)]
        # Jobs run 10 s, not the CLI's 1 s: a trigger that fires within a second or two of the deferral can
        # beat the scheduler to the worker's defer-exit "success", which Airflow 3.3.2 then takes for a
        # task changed externally and fails (apache/airflow#72716, fix open in #72767). Real jobs run minutes.
        timing = ["--running-seconds", str(JOB_RUNNING_SECONDS)]
        self._spawn(
            "emulator",
            [
                sys.executable,
                "-m",
                "airflow_provider_video_actions.emulator",
                *buckets,
                *timing,
                "--env-file",
                str(env_file),
            ],
        )
        wait_until(env_file.exists, 60, "the emulator's env file", every=0.1)
        return dict(line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines())

    def _airflow_env(self, emulator_env: dict[str, str]) -> dict[str, str]:
        """Environment of every Airflow process: the emulator, two DAG bundles, LocalExecutor, simple auth."""
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({"admin": self.password}))
        bundles = [
            {"name": "examples", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": str(REPO / "dags"), "refresh_interval": 5}},
            {"name": "deployment-tests", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": str(REPO / "tests" / "deployment" / "dags"), "refresh_interval": 5}},
        ]  # fmt: skip
        base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and not k.endswith("EMULATOR_HOST")}
        return {
            **base,
            **emulator_env,
            TOKEN_ENV: self.token,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # A SIGKILLed triggerer's triggers move to the new one once it has missed heartbeats this long.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }

    def _spawn(self, name: str, command: list[str]) -> None:
        """Start a process in its own group with the token, logging to ``logs/<name>.log``; record the group id.

        ``SPT_NOENV`` keeps ``setproctitle`` (Airflow's workers, task runners, API server) from overwriting
        ``/proc/<pid>/environ``, where ``kill_strays`` looks for the token.
        """
        with (self.logs / f"{name}.log").open("a") as log:
            process = subprocess.Popen(
                command,
                env={**(self.env or os.environ), TOKEN_ENV: self.token, "SPT_NOENV": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.home,
            )
        self.processes[name] = process
        with (self.home / "pgids").open("a") as pgids:
            pgids.write(f"{process.pid}\n")

    def _healthy(self) -> bool:
        """Whether the API answers and the scheduler, DAG processor and triggerer heartbeat."""
        try:
            health = self.rest("GET", "/api/v2/monitor/health", auth=False)
        except (OSError, urllib.error.URLError, json.JSONDecodeError):
            return False
        return all(
            health.get(part, {}).get("status") == "healthy" for part in ("scheduler", "triggerer", "dag_processor")
        )

    def _login(self) -> str:
        """A JWT from the simple auth manager, as the UI and ``airflowctl`` get one."""
        return self.rest("POST", "/auth/token", {"username": "admin", "password": self.password}, auth=False)[
            "access_token"
        ]

    # ----- REST -----

    def rest(self, method: str, path: str, body: dict[str, Any] | None = None, auth: bool = True) -> Any:
        """One JSON call to the API server; AssertionError with the answer on an HTTP error."""
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, f"{method} {path} -> {exc.code}: {exc.read().decode()[:2000]}") from None

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 180) -> None:
        """Until the DAG processor has parsed every DAG (the REST API knows them)."""

        def known() -> bool:
            found = {d["dag_id"] for d in self.rest("GET", "/api/v2/dags?limit=100")["dags"]}
            return set(dag_ids) <= found

        wait_until(known, timeout, f"DAGs {dag_ids} to be parsed (import errors: {self.import_errors()})")

    def import_errors(self) -> list[str]:
        """Import errors the DAG processor reported."""
        errors = self.rest("GET", "/api/v2/importErrors")["import_errors"]
        return [f"{e['filename']}: {e['stack_trace'][-500:]}" for e in errors]

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run without a logical date (and with ``conf``), as the UI's trigger button does; its run id.

        The run id is chosen here, so a POST answered 500 can be sent again: on SQLite a busy machine can keep the
        database locked past its 5 s timeout ("database is locked"); a 409 then says the first POST made the run.
        """
        run_id, path = f"manual__{secrets.token_hex(6)}", f"/api/v2/dags/{dag_id}/dagRuns"
        for attempt in range(1, TRIGGER_ATTEMPTS + 1):
            try:
                body = {"logical_date": None, "dag_run_id": run_id, "conf": conf or {}}
                return self.rest("POST", path, body)["dag_run_id"]
            except ApiError as exc:
                if exc.code == 409 and attempt > 1:
                    return run_id
                if exc.code != 500 or attempt == TRIGGER_ATTEMPTS:
                    raise

    def run_state(self, dag_id: str, run_id: str) -> str:
        """The DAG run's state."""
        return self.rest("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 240) -> str:
        """The run's final state (success or failed)."""
        return wait_until(
            lambda: (state := self.run_state(dag_id, run_id)) in ("success", "failed") and state,
            timeout,
            f"{dag_id} {run_id} to finish (task states {self.task_states(dag_id, run_id)})",
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, mapped ones included."""
        return self.rest("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]

    def task_states(self, dag_id: str, run_id: str, task_id: str | None = None) -> dict[str, str]:
        """``task_id`` (``task_id[map_index]`` when mapped) -> state."""
        return {
            (ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"): ti["state"]
            for ti in self.task_instances(dag_id, run_id)
            if task_id in (None, ti["task_id"])
        }

    def mapped(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """The mapped instances of a task (map index >= 0)."""
        return [ti for ti in self.task_instances(dag_id, run_id) if ti["task_id"] == task_id and ti["map_index"] >= 0]

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, map_index: int, state: str) -> None:
        """Mark a (mapped) task instance ``state``, as the UI's "mark failed/success" does."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}"
        self.rest("PATCH", path, {"new_state": state})

    def clear(self, dag_id: str, run_id: str, task_id: str) -> None:
        """Clear a task (every map index) so that it runs again, as the UI's "clear" does."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": [task_id],
            "only_failed": False,
            "reset_dag_runs": True,
        }
        self.rest("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", body)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of a DAG."""
        return self.rest("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, try_number: int = 1) -> str:
        """A task's log file (for failure reports)."""
        path = self._log_folder(dag_id, run_id, task_id, map_index) / f"attempt={try_number}.log"
        return path.read_text() if path.exists() else f"(no log at {path})"

    def trigger_logs(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, try_number: int = 1) -> str:
        """What the triggerer logged for a try's trigger (``attempt=N.log.trigger.<triggerer id>.log``), joined."""
        folder = self._log_folder(dag_id, run_id, task_id, map_index)
        return "".join(path.read_text() for path in sorted(folder.glob(f"attempt={try_number}.log.trigger.*.log")))

    def _log_folder(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> Path:
        folder = self.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return folder / f"map_index={map_index}" if map_index >= 0 else folder


def kill_strays(token: str) -> list[int]:
    """SIGKILL every process whose environment carries the deployment's ``token`` (Linux ``/proc``); their ids.

    Task runners start their own session, so a task still running when its supervisor is killed leaves
    its group; they inherit the token, which no process the deployment did not start has (a shell in its home
    neither).
    """
    marker = f"{TOKEN_ENV}={token}".encode()
    strays = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if marker in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                strays.append(int(entry.name))
    return strays


def stop_leftovers(home: Path = HOME) -> None:
    """What ``make test-deployment`` runs afterwards: kill the recorded process groups, then any stray."""
    pgids = home / "pgids"
    for pgid in pgids.read_text().split() if pgids.exists() else ():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pgid), signal.SIGKILL)
    pgids.unlink(missing_ok=True)
    token = home / "token"
    if token.exists() and (strays := kill_strays(token.read_text())):
        print(f"killed {len(strays)} leftover deployment processes: {strays}")
    token.unlink(missing_ok=True)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    """Signal the process's whole group (it leads one: ``start_new_session``); gone already is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


if __name__ == "__main__":
    stop_leftovers()
