"""Lineage: the asset event of the lineage example DAG, OpenLineage datasets, the console link after deferral."""

from __future__ import annotations

import json

import pytest

from airflow_provider_video_actions import (
    ParseVideoActionPredictionsOperator,
    VideoActionBatchPredictionOperator,
    path_segment,
)
from airflow_provider_video_actions.job import VideoActionsValueError, console_url
from airflow_provider_video_actions.links import VideoActionBatchPredictionJobLink
from tests.conftest import BUCKET, ROOT, dag_bag, example_dag_run, run_dag, task_states, write_dag, xcom_value

EXAMPLE_BUCKET = "video-actions-example"


@pytest.fixture(scope="module")
def producer_run(airflow_db, emulator_session):
    """One run of the lineage example's producer DAG against the emulator."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        pytest.skip(
            "Airflow 2's dag.test() does not register dataset aliases (the DAG processor does), so the alias "
            "outlet fails to flush ('None value found in collection DatasetModel.aliases'); runs on Airflow 3"
        )
    with example_dag_run(
        emulator_session,
        "video_actions_lineage.py",
        "video_actions_lineage_producer",
        VIDEO_ACTIONS_BUCKET=EXAMPLE_BUCKET,
    ) as run:
        yield run


def asset_events(run) -> list[tuple[str, dict, list[str]]]:
    """(asset URI, extra, alias names) of the asset events a DAG run's tasks emitted."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        from airflow.models.asset import AssetEvent

        asset_of = "asset"
    except ImportError:  # Airflow 2: datasets
        from airflow.models.dataset import DatasetEvent as AssetEvent

        asset_of = "dataset"
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).where(AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id)
        ).all()
        return [(getattr(e, asset_of).uri, _decoded(e.extra), [a.name for a in e.source_aliases]) for e in events]


def _decoded(extra: dict) -> dict:
    """The event's extra with Airflow 2's JSON-text nested values decoded (Airflow 2 hashes extra values)."""
    return {k: json.loads(v) if isinstance(v, str) and v[:1] in "{[" else v for k, v in extra.items()}


def test_producer_emits_the_parsed_file_through_the_alias(producer_run):
    assert producer_run.state == "success", task_states(producer_run)
    parsed = xcom_value(producer_run, "parse")
    assert parsed["uri"] == f"gs://{EXAMPLE_BUCKET}/moments/{path_segment(producer_run.run_id)}/moments.jsonl"
    events = asset_events(producer_run)
    print("asset events:", events)
    assert events == [
        (
            parsed["uri"],
            {"rows": 4, "videos": 3, "errors": 1, "label_counts": {"clap": 1, "jump": 1, "run": 1, "wave": 1}},
            ["video-actions-moments"],
        )
    ]


def test_consumer_is_scheduled_on_the_alias(airflow_db):
    bag = dag_bag(ROOT / "dags" / "video_actions_lineage.py")
    assert bag.import_errors == {}
    timetable = bag.get_dag("video_actions_lineage_consumer").timetable
    condition = getattr(timetable, "asset_condition", None) or timetable.dataset_condition  # Airflow 2: datasets
    assert "video-actions-moments" in _names(condition)


def _names(condition) -> set[str]:
    """Names in a schedule condition tree (asset/alias names, on Airflow 2 and 3)."""
    names = {getattr(condition, "name", None)} - {None}
    for child in getattr(condition, "objects", ()):
        names |= _names(child)
    return names


def test_asset_alias_needs_a_destination():
    with pytest.raises(VideoActionsValueError, match="asset_alias needs a destination"):
        ParseVideoActionPredictionsOperator(task_id="parse", output_directory="gs://b/out/", asset_alias="moments")


class FinishedTask:
    """The task instance the OpenLineage listener passes: only the submit task's XCom is read."""

    map_index = -1

    def __init__(self, summary: dict) -> None:
        self.summary = summary

    def xcom_pull(self, task_ids: str, map_indexes: int) -> dict:
        return self.summary


def test_openlineage_datasets_of_submit_and_parse(producer_run):
    pytest.importorskip("airflow.providers.openlineage", reason="the openlineage extra is not installed")
    summary = xcom_value(producer_run, "predict")
    videos = [f"gs://{EXAMPLE_BUCKET}/videos/kitchen.mp4", {"content": f"gs://{EXAMPLE_BUCKET}/videos/park.mov"}]
    submit = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="demo-project",
        region="us-central1",
        model="1234567890",
        videos=videos,
        gcs_destination_prefix=f"gs://{EXAMPLE_BUCKET}/predictions",
    )
    got = submit.get_openlineage_facets_on_complete(FinishedTask(summary))
    output_path = summary["output_directory"].removeprefix(f"gs://{EXAMPLE_BUCKET}/").rstrip("/")
    assert [(d.namespace, d.name) for d in got.inputs] == [
        (f"gs://{EXAMPLE_BUCKET}", "videos/kitchen.mp4"),
        (f"gs://{EXAMPLE_BUCKET}", "videos/park.mov"),
        (
            "https://us-central1-aiplatform.googleapis.com",
            "projects/demo-project/locations/us-central1/models/1234567890",
        ),
    ]
    assert [(d.namespace, d.name) for d in got.outputs] == [(f"gs://{EXAMPLE_BUCKET}", output_path)]

    parsed = xcom_value(producer_run, "parse")
    parse = ParseVideoActionPredictionsOperator(task_id="parse", job=summary, destination=parsed["uri"])
    got = parse.get_openlineage_facets_on_complete(FinishedTask(summary))
    assert [(d.namespace, d.name) for d in got.inputs] == [(f"gs://{EXAMPLE_BUCKET}", output_path)]
    assert [(d.namespace, d.name) for d in got.outputs] == [
        (f"gs://{EXAMPLE_BUCKET}", parsed["uri"].removeprefix(f"gs://{EXAMPLE_BUCKET}/"))
    ]


def test_openlineage_datasets_of_instances_files_and_local_paths():
    pytest.importorskip("airflow.providers.openlineage", reason="the openlineage extra is not installed")
    submit = VideoActionBatchPredictionOperator(
        task_id="predict",
        project_id="my-project",
        region="europe-west4",
        model="projects/p/locations/europe-west4/models/7@2",
        gcs_source=["gs://bkt/in/a.jsonl", "gs://bkt/in/a.jsonl"],
        gcs_destination_prefix="gs://bkt/out",
    )
    summary = {
        "name": "projects/p/locations/europe-west4/batchPredictionJobs/1",
        "model": "projects/p/locations/europe-west4/models/7@2",
        "output_directory": "gs://bkt/out/prediction-x/",
    }
    got = submit.get_openlineage_facets_on_complete(FinishedTask(summary))
    assert [(d.namespace, d.name) for d in got.inputs] == [
        ("gs://bkt", "in/a.jsonl"),
        ("https://europe-west4-aiplatform.googleapis.com", "projects/p/locations/europe-west4/models/7@2"),
    ]
    parse = ParseVideoActionPredictionsOperator(task_id="parse", output_directory="file:///tmp/out/")
    got = parse.get_openlineage_facets_on_complete(FinishedTask(summary))
    assert [(d.namespace, d.name) for d in got.inputs] == [("file", "/tmp/out")]
    assert got.outputs == []  # XCom is not a dataset


def test_console_link_is_stored_after_deferral(airflow_db, emulator, instances_uri):
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    write_dag(
        "link_after_deferral",
        f"""
        VideoActionBatchPredictionOperator(
            task_id="predict", project_id="test-project", region="us-central1", model="42",
            gcs_source={instances_uri!r}, gcs_destination_prefix="gs://{BUCKET}/out", poll_interval=0.1, min_poll_interval=0.1,
            deferrable=True,
        )
        """,
    )
    run = run_dag("link_after_deferral")
    assert run.state == "success", task_states(run)
    job_name = xcom_value(run, "predict")["name"]
    link = VideoActionBatchPredictionJobLink()
    if AIRFLOW_V_3_0_PLUS:  # the worker stores the URL at the end of the resumed run
        url = xcom_value(run, "predict", key=link.xcom_key)
    else:  # Airflow 2: the webserver calls get_link, which reads the job name from XCom
        [ti] = [ti for ti in run.get_task_instances() if ti.task_id == "predict"]
        url = link.get_link(None, ti_key=ti.key)
    assert url == console_url(job_name)
