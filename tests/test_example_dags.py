"""The example DAGs run however they are triggered: no template needs a logical date; per-run timeline paths."""

from __future__ import annotations

import logging
import os
import re
import runpy
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import jinja2.meta
import pytest

from airflow_provider_video_actions.paths import PathSegmentFilterMixin, with_path_segment_filter
from tests.conftest import ROOT, dag_bag
from tests.test_hourly import notification

#: Context keys Airflow 3 sets only for runs with a logical date (``task_runner.get_template_context``):
#: a run triggered from the UI, the REST API or ``airflow dags trigger`` has none, and rendering fails.
LOGICAL_DATE_KEYS = frozenset(
    {
        "logical_date",
        "execution_date",
        "ds",
        "ds_nodash",
        "ts",
        "ts_nodash",
        "ts_nodash_with_tz",
        "task_instance_key_str",
        "data_interval_start",
        "data_interval_end",
        "prev_data_interval_start_success",
        "prev_data_interval_end_success",
    }
)
EXAMPLE_DAGS = sorted(path.name for path in (ROOT / "dags").glob("*.py"))


def template_strings(value: object) -> Iterator[str]:
    """Every string inside a templated field's value (lists and dicts included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from template_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from template_strings(item)


def after_a_window(task) -> bool:
    """Whether a task runs only after a predict that selects by the run's data interval.

    That predict skips a run without a data interval (and so its downstream tasks, which are never
    rendered there): those tasks may name the interval, as the hourly example's per-interval path does.
    """
    return any(
        getattr(upstream, "videos_created_in", None) == "data_interval"
        for upstream in task.get_flat_relatives(upstream=True)
    )


@pytest.mark.parametrize("example", EXAMPLE_DAGS)
def test_no_template_needs_a_logical_date(airflow_db, example):
    bag = dag_bag(ROOT / "dags" / example)
    assert bag.import_errors == {}
    needing_a_date = []
    for dag in bag.dags.values():
        env = with_path_segment_filter(dag.get_template_env())  # the package's operators render with it
        for task in dag.tasks:
            allowed = {"data_interval_start", "data_interval_end"} if after_a_window(task) else set()
            for field in task.template_fields:
                for text in template_strings(getattr(task, field, None)):
                    used = jinja2.meta.find_undeclared_variables(env.parse(text)) & (LOGICAL_DATE_KEYS - allowed)
                    needing_a_date += [f"{dag.dag_id}.{task.task_id}.{field}: {text!r} uses {sorted(used)}"] * bool(
                        used
                    )
    assert needing_a_date == []


#: Run ids two runs might have: ordinary ones, ones the old helper merged, and path syntax.
RUN_IDS = [
    "manual__2026-01-02T03:04:05.123+00:00",
    "manual__2026-01-02T03_04_05_123_00_00",
    "scheduled__2026-01-02T03:00:00+00:00",
    "asset_triggered__2026-01-02T03:04:05+00:00",
    "a:b",
    "a+b",
    "a_b",
    "..",
    ".",
    "__",
    "a/../b",
    "~2E",
    "Run",
    "run",
]
#: The one way a template may name the run id in a path: through the package's filter.
FILTERED_RUN_ID = re.compile(r"\{\{\s*run_id\s*\|\s*path_segment\s*\}\}")


def per_run_paths(dag) -> list[tuple[object, str, str]]:
    """(task, field, text) for every templated string of the DAG's tasks (mapped ones' too) naming ``run_id``."""
    found = []
    for task in dag.tasks:
        fields = {field: getattr(task, field, None) for field in task.template_fields}
        fields.update({k: v for k, v in getattr(task, "partial_kwargs", {}).items() if k in task.template_fields})
        for field, value in fields.items():
            found += [(task, field, text) for text in template_strings(value) if "run_id" in text]
    return found


def rendered_path(task, text: str, run_id: str) -> str:
    """The path as the task's operator renders it: the DAG's environment with the package's filter."""
    operator_class = getattr(task, "operator_class", type(task))  # a mapped task's operator
    assert issubclass(operator_class, PathSegmentFilterMixin), f"{task.task_id} has no path_segment filter"
    return with_path_segment_filter(task.dag.get_template_env()).from_string(text).render(run_id=run_id)


@pytest.mark.parametrize("example", EXAMPLE_DAGS)
def test_per_run_paths_are_one_safe_segment_distinct_per_run(airflow_db, example):
    """Each path naming the run id does so through ``path_segment``: one segment, never '.' or '..', distinct."""
    bag = dag_bag(ROOT / "dags" / example)
    for dag in bag.dags.values():
        for task, field, text in per_run_paths(dag):
            where = f"{dag.dag_id}.{task.task_id}.{field}: {text!r}"
            assert "run_id" not in FILTERED_RUN_ID.sub("", text), f"{where} uses the raw run id"
            depth = rendered_path(task, text, "x").count("/")
            paths = {run_id: rendered_path(task, text, run_id) for run_id in RUN_IDS}
            for run_id, path in paths.items():
                assert path.count("/") == depth, f"{where}: run id {run_id!r} adds a folder level: {path}"
                assert not {".", ".."} & set(path.split("/")), f"{where}: run id {run_id!r} gives {path}"
            assert len(set(paths.values())) == len(RUN_IDS), f"{where}: two runs share a folder: {paths}"


@pytest.mark.parametrize("example", EXAMPLE_DAGS)
def test_every_parse_destination_is_per_run(airflow_db, example):
    """A fixed destination would make each run overwrite the last: each names its run, or (hourly) its interval."""
    for dag in dag_bag(ROOT / "dags" / example).dags.values():
        for task in dag.tasks:
            destination = getattr(task, "partial_kwargs", {}).get("destination") or getattr(task, "destination", None)
            if destination is not None:
                assert FILTERED_RUN_ID.search(destination) or "data_interval_start" in destination, (
                    f"{dag.dag_id}.{task.task_id} writes every run to {destination!r}"
                )


def test_timeline_goes_to_a_fresh_private_folder_not_through_a_planted_link(
    airflow_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A symlink planted where the timeline used to go (``$TMPDIR/video_actions.png``) is never written through."""
    pytest.importorskip("matplotlib", reason="the timeline extra is not installed")
    monkeypatch.delenv("VIDEO_ACTIONS_TIMELINE", raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    victim = tmp_path / "victim"
    (tmp_path / "video_actions.png").symlink_to(victim)
    dag = dag_bag(ROOT / "dags" / "video_action_recognition.py").get_dag("video_action_recognition")
    parsed = {
        "predictions": [{"video_uri": "gs://b/v.mp4", "label": "wave", "time_start": 1.0, "confidence": 0.9}],
        "error_records": [],
    }
    draw = dag.get_task("draw_timeline").python_callable

    first, second = Path(draw(parsed)), Path(draw(parsed))

    assert not victim.exists()
    assert first.parent != second.parent  # one folder per run
    for path in (first, second):
        assert path.parent.parent == tmp_path and not path.parent.is_symlink()
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def hostile_notification(object_id: str = "videos/x.mp4", **attributes: object) -> dict:
    """A GCS notification of the landing bucket with attributes replaced (None removes one)."""
    received = notification(object_id)
    received["message"]["attributes"].update(attributes)
    received["message"]["attributes"] = {k: v for k, v in received["message"]["attributes"].items() if v is not None}
    return received


def test_on_arrival_predicts_only_its_own_videos_and_skips_malformed_messages(caplog):
    """Other buckets and folders are ignored; no malformed message raises: the rest of the batch is predicted."""
    notified_videos = runpy.run_path(str(ROOT / "dags" / "video_actions_on_arrival.py"))["notified_videos"]
    messages = [
        notification("videos/a.mp4"),
        hostile_notification("videos/b.mp4", bucketId="someone-elses-bucket"),
        hostile_notification("uploads/c.mp4"),
        hostile_notification("videos-old/d.mp4"),
        hostile_notification(bucketId=None),
        hostile_notification(objectId=None),
        hostile_notification(objectId=7),
        hostile_notification(bucketId=["landing"]),
        hostile_notification(eventType=None),
        hostile_notification("videos/" + "n" * 1100 + ".mp4"),
        {"ack_id": "a", "message": {"data": "e30="}},
        {"ack_id": "a", "message": {"attributes": None}},
        {"ack_id": "a", "message": {"attributes": ["bucketId", "landing"]}},
        {"ack_id": "a", "message": "text"},
        {"ack_id": "a"},
        "junk",
        None,
        42,
        notification("videos/z.MOV"),
    ]
    events = [
        SimpleNamespace(extra={"payload": {"status": "success", "message": messages}}),
        SimpleNamespace(extra={"payload": {"status": "success", "message": "not a list"}}),
        SimpleNamespace(extra={"payload": {"status": "error"}}),
        SimpleNamespace(extra={"payload": "text"}),
        SimpleNamespace(extra=None),
        SimpleNamespace(),
    ]
    with caplog.at_level(logging.INFO):
        assert notified_videos({"video_arrivals": events}, bucket="landing") == [
            "gs://landing/videos/a.mp4",
            "gs://landing/videos/z.MOV",
        ]
    log = caplog.text
    only_ours = "this DAG predicts only videos under gs://landing/videos/"
    assert f"Skipping 'gs://someone-elses-bucket/videos/b.mp4': {only_ours}" in log
    assert f"Skipping 'gs://landing/uploads/c.mp4': {only_ours}" in log
    assert log.count("whose bucketId or objectId is not text") == 4
    assert log.count("Skipping a message without attributes, not a GCS notification") == 8
    assert "Skipping None event of 'videos/x.mp4': only new objects are predicted." in log
    assert "GCS allows at most 1024 bytes" in log
    assert log.count("Skipping an asset event that carries no list of Pub/Sub messages") == 5
