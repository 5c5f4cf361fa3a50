"""Shared fixtures: a throwaway Airflow home and one emulator (Vertex AI job service + GCS) per session.

Airflow reads its configuration on first import, so the environment is set here, before any test
module imports Airflow. DAG files run by ``dag.test()`` must live in the configured DAGs folder:
tests write theirs with :func:`write_dag`, or run an example from `dags/` with :func:`example_dag_run`.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Test modules import helpers from ``tests.conftest``, a second import of this file: keep one home per
# process. The home is keyed by pid, so each pytest-xdist worker (which inherits the controller's
# environment) gets its own Airflow home, metadata database and DAGs folder.
_HOME_KEY = f"VIDEO_ACTIONS_TEST_HOME_{os.getpid()}"
if _HOME_KEY not in os.environ:
    os.environ[_HOME_KEY] = tempfile.mkdtemp(prefix="video-actions-airflow-")
    atexit.register(shutil.rmtree, os.environ[_HOME_KEY], ignore_errors=True)
AIRFLOW_HOME = Path(os.environ[_HOME_KEY])
DAGS_FOLDER = AIRFLOW_HOME / "dags"
DAGS_FOLDER.mkdir(exist_ok=True)
os.environ.update(
    AIRFLOW_HOME=str(AIRFLOW_HOME),
    AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__UNIT_TEST_MODE="False",
    # dag.test()'s in-process execution API signs task tokens; Airflow 3.2 refuses to start it without one.
    AIRFLOW__API_AUTH__JWT_SECRET="video-actions-tests-only",
    AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
)
for name in ("VERTEX_AI_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
    os.environ.pop(name, None)

BUCKET = "video-actions-test"
#: Seconds a test waits for a condition that a quiet machine meets in one or two: generous, so a loaded
#: machine (CI, or xdist workers beside other work) is slow rather than failing; waits end on the condition.
PATIENCE = 300.0
#: Models the tests name, served by the session emulator besides the demo's and Gemini's (others are NOT_FOUND).
TEST_MODELS = ("42", "7", "1234", "projects/my-project/locations/us-central1/models/gemini-tuned-7")


#: Fixtures that start a service or need Airflow's metadata database: a test using any of them is not a unit test.
SERVICE_FIXTURES = frozenset({"airflow_db", "emulator", "emulator_session"})
#: Folders whose tests start processes or servers themselves (the emulator's own tests, a real deployment).
SERVICE_FOLDERS = ("emulator", "deployment", "ui")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test ``unit`` (no emulator, no Airflow DB: ``pytest -m unit``) or ``dag`` (runs ``dag.test()``)."""
    tests = Path(__file__).parent
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        folder = item.path.relative_to(tests).parts[0] if item.path.is_relative_to(tests) else ""
        if "airflow_db" in uses:
            item.add_marker(pytest.mark.dag)
        elif not uses & SERVICE_FIXTURES and folder not in SERVICE_FOLDERS:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """A migrated SQLite metadata database in the throwaway Airflow home."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    yield AIRFLOW_HOME


def fast_timeline() -> object:
    """Short job timings for tests: about half a second from create to done."""
    from airflow_provider_video_actions.emulator import JobTimeline

    return JobTimeline(queued_seconds=0.05, pending_seconds=0.05, running_seconds=0.3, cancelling_seconds=0.1)


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[object]:
    """One emulator for the session, with short job timings."""
    from airflow_provider_video_actions.emulator import Emulator

    with Emulator(buckets=[BUCKET], timeline=fast_timeline(), models=TEST_MODELS) as emulator:
        yield emulator


@pytest.fixture
def emulator(emulator_session, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The session emulator, pointed at by the environment, with knobs reset after the test."""
    for name, value in emulator_session.env().items():
        monkeypatch.setenv(name, value)
    yield emulator_session
    emulator_session.reset_knobs()
    emulator_session.timeline = fast_timeline()


@pytest.fixture
def storage_client(emulator):
    """A real GCS client against the emulator."""
    from google.cloud import storage

    return storage.Client(project="test")


def write_dag(dag_id: str, body: str) -> str:
    """Write a DAG file into the DAGs folder; ``body`` is the code inside ``with DAG(...)``."""
    source = f"""
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_video_actions import VideoActionBatchPredictionOperator, VideoActionBatchPredictionSensor

with DAG({dag_id!r}, schedule=None, catchup=False) as dag:
{textwrap.indent(textwrap.dedent(body), "    ")}
"""
    only_dag_file(f"{dag_id}.py", source)
    return dag_id


def only_dag_file(file_name: str, source: str) -> None:
    """Make this the one file in the DAGs folder (dag.test() parses the whole folder)."""
    for old in DAGS_FOLDER.glob("*.py"):
        old.unlink()
    (DAGS_FOLDER / file_name).write_text(source)


@contextmanager
def example_dag_run(emulator_session, example: str, dag_id: str, **env: str) -> Iterator[object]:
    """Run ``dags/<example>`` as ``dag_id`` against the emulator, with ``env`` set until the block ends."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**emulator_session.env(), **env}.items():
            mp.setenv(name, value)
        only_dag_file(f"{dag_id}.py", (ROOT / "dags" / example).read_text())
        yield run_dag(dag_id)


@contextmanager
def run_when(condition: Callable[[], bool], action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` once ``condition`` holds (checked on a thread every 50 ms) while the block runs.

    Tests act on a state they can observe (a task's try ended, a list call made), never after a timer.
    """
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            if condition():
                action()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def job_cancelled(emulator, name: str) -> bool:
    """Whether the emulator's job was cancelled (CANCELLING counts: the cancel was accepted)."""
    return emulator.job(name).state.name in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")


def running_job(submit_job, emulator, display_name: str) -> str:
    """A job the emulator keeps RUNNING for the rest of the test (its running time is ten minutes), once RUNNING."""
    emulator.timeline.running_seconds = 600.0
    name = submit_job(display_name)
    deadline = time.monotonic() + PATIENCE
    while (state := emulator.job(name).state.name) != "JOB_STATE_RUNNING":
        assert time.monotonic() < deadline, f"{name} never started running (still {state})"
        time.sleep(0.02)
    return name


def dag_bag_class() -> type:
    """``DagBag`` (``airflow.dag_processing.dagbag`` since 3.2, ``airflow.models.dagbag`` before)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag
    return DagBag


def dag_bag(dag_folder: Path):
    """A ``DagBag`` of a folder or file."""
    return dag_bag_class()(dag_folder=str(dag_folder))


def dag_test_dates(at: datetime | None) -> dict[str, datetime]:
    """``dag.test()`` arguments pinning the run's date (``execution_date`` on Airflow 2)."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if at is None:
        return {}
    return {"logical_date": at, "run_after": at} if AIRFLOW_V_3_0_PLUS else {"execution_date": at}


def run_dag(dag_id: str, at: datetime | None = None):
    """Run a DAG from the DAGs folder with ``dag.test()`` (triggers run inline), at ``at`` if given."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if at is not None and not AIRFLOW_V_3_0_PLUS:
        # Airflow 2's dag.test() deletes an earlier run of that date; its note's foreign key names FAB's ab_user.
        import airflow.providers.fab.auth_manager.models  # noqa: F401
    return dag_bag(DAGS_FOLDER / f"{dag_id}.py").get_dag(dag_id).test(**dag_test_dates(at))


def run_dag_script(dag_id: str, at: datetime) -> str:
    """Python source running :func:`run_dag` in another process (no conftest import: it resets the emulator env)."""
    dates = ", ".join(
        f"{name}=datetime.fromisoformat({value.isoformat()!r})" for name, value in dag_test_dates(at).items()
    )
    return (
        f"from datetime import datetime\nfrom {dag_bag_class().__module__} import DagBag\n"
        f"DagBag(dag_folder={str(DAGS_FOLDER / f'{dag_id}.py')!r}).get_dag({dag_id!r}).test({dates})\n"
    )


def xcom_value(run, task_id: str, key: str = "return_value"):
    """A task's XCom from the metadata database, after ``dag.test()``."""
    from airflow.utils.session import create_session

    try:
        from airflow.models.xcom import XComModel
    except ImportError:  # Airflow 2: the model is XCom and reads deserialize
        from airflow.models.xcom import XCom

        return XCom.get_one(run_id=run.run_id, dag_id=run.dag_id, task_id=task_id, key=key)
    with create_session() as session:
        query = XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key=key)
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)


def task_states(run) -> dict[str, str]:
    """task id -> final state of a DAG run."""
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


@pytest.fixture
def instances_uri(storage_client) -> str:
    """An instances file naming one sample video with a planted 'wave' at 1.25 s."""
    from airflow_provider_video_actions.emulator import PlantedAction, make_video

    bucket = storage_client.bucket(BUCKET)
    bucket.blob("videos/wave.mp4").upload_from_string(
        make_video([PlantedAction("wave", 1.0)]), content_type="video/mp4"
    )
    line = json.dumps({"content": f"gs://{BUCKET}/videos/wave.mp4", "mimeType": "video/mp4"}) + "\n"
    bucket.blob("instances/wave.jsonl").upload_from_string(line)
    return f"gs://{BUCKET}/instances/wave.jsonl"


@pytest.fixture
def submit_job(emulator, instances_uri):
    """Create a job through the real hook: ``submit_job(display_name) -> job name``."""
    from airflow_provider_video_actions.hooks.batch_prediction import VideoActionBatchPredictionHook
    from airflow_provider_video_actions.job import PROVIDER_LABEL, PROVIDER_LABEL_VALUE, JobSpec

    def submit(display_name: str = "test-job", labels: dict[str, str] | None = None) -> str:
        """Labels default to the provider's own, so shared polls see the job in their list."""
        spec = JobSpec(
            project_id="test-project",
            region="us-central1",
            model="projects/test-project/locations/us-central1/models/42",
            display_name=display_name,
            instances_uris=(instances_uri,),
            destination_prefix=f"gs://{BUCKET}/out",
            labels={PROVIDER_LABEL: PROVIDER_LABEL_VALUE} if labels is None else labels,
        )
        return VideoActionBatchPredictionHook().create_job(spec).name

    return submit
