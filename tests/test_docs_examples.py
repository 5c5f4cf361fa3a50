"""Every code example of the docs (docs/examples/*.py, included into the pages) imports and runs.

Each DAG runs with ``dag.test()`` against the emulator, on videos uploaded to a bucket of its own,
and its results are checked.
"""

from __future__ import annotations

import json
import re
import runpy
import shlex
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import DAGS_FOLDER, ROOT, dag_bag, dag_test_dates, only_dag_file, task_states, xcom_value

EXAMPLES = ROOT / "docs" / "examples"
#: The DAG files (scripts/ holds the examples that are not DAGs).
EXAMPLE_FILES = sorted(path.name for path in EXAMPLES.glob("*.py"))
#: The videos each run predicts: a wave at 1.25 s in one, a jump at 2.25 s in the other (the emulator's model).
VIDEOS = {"videos/kitchen.mp4": ("wave", 1.0), "videos/playground.mp4": ("jump", 2.0)}


@pytest.fixture
def bucket(emulator, storage_client) -> str:
    """A new bucket holding the two videos, passed to the example as its ``bucket`` param."""
    from airflow_provider_video_actions.emulator import PlantedAction, make_video

    name = f"docs-{uuid.uuid4().hex[:12]}"
    target = storage_client.create_bucket(name)
    for path, (label, start) in VIDEOS.items():
        target.blob(path).upload_from_string(make_video([PlantedAction(label, start)]), content_type="video/mp4")
    return name


def run_example(example: str, dag_id: str, at: datetime | None = None, **conf: str):
    """Run ``dag_id`` of ``docs/examples/<example>`` with ``dag.test()`` and these params."""
    only_dag_file(f"{dag_id}.py", (EXAMPLES / example).read_text())
    return dag_bag(DAGS_FOLDER / f"{dag_id}.py").get_dag(dag_id).test(run_conf=conf, **dag_test_dates(at))


def airflow_3() -> bool:
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    return AIRFLOW_V_3_0_PLUS


@pytest.mark.parametrize("example", EXAMPLE_FILES)
def test_example_imports_with_no_errors(airflow_db, example, monkeypatch):
    # Importing the Google provider's Vertex AI operators (google_provider_dag.py) can take Airflow's 30 s on a busy machine.
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "300")
    bag = dag_bag(EXAMPLES / example)
    assert bag.import_errors == {}
    assert bag.dags


def test_quickstart_prints_the_moments_of_the_uploaded_videos(airflow_db, bucket, capsys):
    run = run_example("quickstart.py", "video_actions_quickstart", bucket=bucket)
    assert set(task_states(run).values()) == {"success"}
    parsed = xcom_value(run, "parse")
    assert sorted((p["label"], p["time_start"]) for p in parsed["predictions"]) == [("jump", 2.25), ("wave", 1.25)]
    assert "moments: 2, videos: 2, errors: 0" in capsys.readouterr().out


def test_parse_writes_parquet_and_draws_a_timeline(airflow_db, bucket):
    pytest.importorskip("matplotlib", reason="the timeline extra is not installed")
    run = run_example("parse.py", "video_actions_parse", bucket=bucket)
    assert set(task_states(run).values()) == {"success"}
    assert xcom_value(run, "parse_to_parquet")["uri"].endswith("/moments.parquet")
    assert Path(xcom_value(run, "draw_timeline")).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_emulator_control_script_holds_and_releases(emulator_session, monkeypatch, capsys):
    from airflow_provider_video_actions.emulator.control import ControlServer

    control = ControlServer(emulator_session, 0).start()
    try:
        for name, value in control.env().items():  # as the env file exports them: URL and token
            monkeypatch.setenv(name, value)
        runpy.run_path(str(EXAMPLES / "scripts" / "emulator_control.py"))
    finally:
        control.stop()
    assert capsys.readouterr().out.startswith("{")


def page_commands(page: str, prefix: str) -> list[list[str]]:
    """The arguments after ``prefix`` of each command in the page's bash blocks (comments and ``&`` dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "docs" / page).read_text(), re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith(prefix)]
    return [[word for word in shlex.split(line[len(prefix) :], comments=True) if word != "&"] for line in lines]


def test_emulator_page_control_commands_run_against_an_emulator(capsys):
    """Every ``$CONTROL ...`` line of the emulator page, run by the control CLI against a fresh emulator.

    A refused command exits (SystemExit 2), failing the test.
    """
    from airflow_provider_video_actions.emulator import Emulator
    from airflow_provider_video_actions.emulator.control import ControlServer, main

    commands = page_commands("emulator.md", "$CONTROL ")
    assert len(commands) >= 10
    with Emulator() as emulator:
        control = ControlServer(emulator).start()
        try:
            url, token = control.env().values()
            for arguments in commands:
                main(["--url", url, "--token", token, *arguments])
        finally:
            control.stop()
    assert '"list_filters"' in capsys.readouterr().out  # the state command's answer


def test_emulator_page_serve_commands_parse():
    """Each ``python -m ...emulator --options`` line of the emulator page is accepted by the emulator's parser."""
    from airflow_provider_video_actions.emulator.__main__ import parse_args

    commands = page_commands("emulator.md", "python -m airflow_provider_video_actions.emulator --")
    assert any("--allow-remote" in arguments for arguments in commands)
    for arguments in commands:
        parse_args(["--" + arguments[0], *arguments[1:]])


def test_submit_predicts_a_whole_video_and_a_segment(airflow_db, bucket):
    run = run_example("submit.py", "video_actions_submit", bucket=bucket)
    assert set(task_states(run).values()) == {"success"}
    assert xcom_value(run, "predict")["completion_stats"]["successful_count"] == 2
    parsed = xcom_value(run, "parse")
    assert {(p["label"], p["segment_start"], p["segment_end"]) for p in parsed["predictions"]} == {
        ("wave", 0.0, None),
        ("jump", 1.0, 4.5),
    }


def test_sensor_waits_on_a_job_submitted_elsewhere(airflow_db, submit_job):
    name = submit_job("submitted-elsewhere")
    run = run_example("sensor.py", "video_actions_sensor", job_name=name)
    assert set(task_states(run).values()) == {"success"}
    assert xcom_value(run, "wait")["name"] == name
    assert xcom_value(run, "parse")["instances"] == 1


def test_google_provider_dag_creates_with_googles_operator_and_parses(
    airflow_db, bucket, emulator, storage_client, monkeypatch
):
    from tests.test_google_clients import point_google_clients_at

    point_google_clients_at(emulator, monkeypatch)
    monkeypatch.setenv("VIDEO_ACTIONS_BUCKET", bucket)  # the example's GCS paths are plain strings (see there)
    lines = [json.dumps({"content": f"gs://{bucket}/{path}", "mimeType": "video/mp4"}) for path in VIDEOS]
    storage_client.bucket(bucket).blob("instances.jsonl").upload_from_string("\n".join(lines) + "\n")
    run = run_example("google_provider_dag.py", "google_provider_dag")
    assert set(task_states(run).values()) == {"success"}
    parsed = xcom_value(run, "parse")
    assert sorted((p["label"], p["time_start"]) for p in parsed["predictions"]) == [("jump", 2.25), ("wave", 1.25)]


def test_failed_job_fails_predict_and_parses_what_it_wrote(airflow_db, bucket, emulator):
    emulator.force_outcome("JOB_STATE_FAILED")
    run = run_example("failed_job.py", "video_actions_failed_job", bucket=bucket)
    assert task_states(run) == {"predict": "failed", "parse_partial": "success"}
    assert xcom_value(run, "predict", key="failed_job")["state"] == "JOB_STATE_FAILED"


def test_sharded_parse_combines_into_one_summary(airflow_db, bucket):
    if not airflow_3():
        pytest.skip("Airflow 2's dag.test() does not register asset aliases (the DAG processor does)")
    run = run_example("sharded.py", "video_actions_sharded", bucket=bucket)
    assert set(task_states(run).values()) == {"success"}
    summary = xcom_value(run, "combine")
    assert summary["rows"] == 2
    assert re.fullmatch(rf"gs://{bucket}/moments/[^/]+/part-\*-of-\d{{5}}\.parquet", summary["uri"])


def test_hourly_predicts_the_videos_of_its_hour_and_skips_an_empty_one(airflow_db, bucket):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    run = run_example("hourly.py", "video_actions_every_hour", at=now + timedelta(minutes=30), bucket=bucket)
    assert set(task_states(run).values()) == {"success"}
    assert xcom_value(run, "parse")["videos"] == 2
    earlier = run_example("hourly.py", "video_actions_every_hour", at=now - timedelta(hours=2), bucket=bucket)
    assert set(task_states(earlier).values()) == {"skipped"}


def test_lineage_producer_emits_its_file_and_the_consumer_runs(airflow_db, bucket):
    if not airflow_3():
        pytest.skip("Airflow 2's dag.test() does not register asset aliases (the DAG processor does)")
    run = run_example("lineage.py", "video_actions_producer", bucket=bucket)
    assert set(task_states(run).values()) == {"success"}
    assert xcom_value(run, "parse")["uri"].startswith(f"gs://{bucket}/moments/")
    consumer = run_example("lineage.py", "video_actions_consumer")
    assert task_states(consumer) == {"report": "success"}


def test_gemini_predicts_with_a_label_set(airflow_db, bucket):
    run = run_example("gemini.py", "video_actions_gemini", bucket=bucket)
    assert set(task_states(run).values()) == {"success"}
    assert {p["label"] for p in xcom_value(run, "parse")["predictions"]} == {"wave", "jump"}
