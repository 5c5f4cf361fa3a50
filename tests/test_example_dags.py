"""The example DAGs run however they are triggered: no template needs a logical date; per-run timeline paths."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import jinja2.meta
import pytest

from tests.conftest import ROOT, dag_bag

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
        env = dag.get_template_env()
        for task in dag.tasks:
            allowed = {"data_interval_start", "data_interval_end"} if after_a_window(task) else set()
            for field in task.template_fields:
                for text in template_strings(getattr(task, field, None)):
                    used = jinja2.meta.find_undeclared_variables(env.parse(text)) & (LOGICAL_DATE_KEYS - allowed)
                    needing_a_date += [f"{dag.dag_id}.{task.task_id}.{field}: {text!r} uses {sorted(used)}"] * bool(
                        used
                    )
    assert needing_a_date == []


@pytest.mark.parametrize(
    ("example", "dag_id"),
    [
        ("video_action_recognition.py", "video_action_recognition"),
        ("video_actions_lineage.py", "video_actions_lineage_producer"),
        ("video_actions_bigquery.py", "video_actions_bigquery"),
    ],
)
def test_run_paths_are_one_safe_segment(airflow_db, example, dag_id):
    dag = dag_bag(ROOT / "dags" / example).get_dag(dag_id)
    destinations = [
        getattr(t, "partial_kwargs", {}).get("destination") or getattr(t, "destination", None) for t in dag.tasks
    ]
    per_run = [d for d in destinations if d and "run_id" in d]
    assert per_run and all("{{ run_id | path_segment }}" in d for d in per_run), per_run
    template = dag.get_template_env().from_string("parsed/{{ run_id | path_segment }}/moments.parquet")
    assert template.render(run_id="manual__2026-01-02T03:04:05.123+00:00") == (
        "parsed/manual__2026-01-02T03_04_05_123_00_00/moments.parquet"
    )
    assert template.render(run_id="..") == "parsed/__/moments.parquet"


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
