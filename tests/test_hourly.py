"""Scheduled runs take only the videos that arrived in their interval, each exactly once.

Objects get their ``timeCreated`` from the GCS emulator when they are uploaded; the tests read those
times back and choose window bounds from them, so what each window must hold follows from the
objects' own times, whatever the machine's pace.
"""

from __future__ import annotations

import itertools
import runpy
import time
import uuid
from datetime import datetime, timedelta, timezone
from functools import cache
from types import SimpleNamespace

import pytest

from airflow_provider_video_actions import gcs
from airflow_provider_video_actions.job import VideoActionsValueError
from airflow_provider_video_actions.operators.submit import VideoActionBatchPredictionOperator
from airflow_provider_video_actions.window import CreationWindow, NoDataIntervalError, creation_window
from tests.conftest import (
    BUCKET,
    DAGS_FOLDER,
    ROOT,
    dag_bag,
    only_dag_file,
    run_dag,
    task_states,
    xcom_value,
)

MP4 = frozenset({".mp4", ".mov", ".avi"})
#: Length of each interval of the backfilled test DAG (uploads of one batch take milliseconds).
INTERVAL = timedelta(seconds=2)


@cache
def video_bytes() -> bytes:
    """A short clip with a planted wave, encoded once for the module."""
    from airflow_provider_video_actions.emulator import PlantedAction, make_video

    return make_video([PlantedAction("wave", 1.0)])


def land(storage_client, prefix: str, names: list[str]) -> dict[str, datetime]:
    """Upload videos one after another under ``gs://BUCKET/<prefix>``; their URI -> GCS's ``timeCreated``."""
    bucket = storage_client.bucket(BUCKET)
    for name in names:
        bucket.blob(f"{prefix}{name}").upload_from_string(video_bytes(), content_type="video/mp4")
    listed = {blob.name: blob.time_created for blob in storage_client.list_blobs(BUCKET, prefix=prefix)}
    return {f"gs://{BUCKET}/{prefix}{name}": listed[f"{prefix}{name}"] for name in names}


def land_together(storage_client, prefix: str, names: list[str]) -> dict[str, datetime]:
    """``land`` the videos again until GCS dates them all within one INTERVAL (a stalled upload is redone), for 60 s."""
    deadline = time.monotonic() + 60
    while True:
        times = land(storage_client, prefix, names)
        if max(times.values()) - min(times.values()) < INTERVAL:
            return times
        assert time.monotonic() < deadline, f"uploads never landed within {INTERVAL} of each other: {times}"


def unique_prefix() -> str:
    return f"landing-{uuid.uuid4().hex[:8]}/"


def wait_until(moment: datetime) -> None:
    """Let the clock pass ``moment`` (the GCS emulator stamps uploads with this machine's clock)."""
    while (left := (moment - datetime.now(timezone.utc)).total_seconds()) > 0:
        time.sleep(left)


# -- selection by creation time ---------------------------------------------------------------------


def test_back_to_back_windows_take_every_video_exactly_once(emulator, storage_client):
    """Three consecutive windows select disjoint sets whose union is every video under the prefix."""
    prefix = unique_prefix()
    times = land(storage_client, prefix, [f"v{i}.mp4" for i in range(6)])
    stamps = sorted(times.values())
    bounds = [stamps[0], stamps[2], stamps[4], stamps[-1] + timedelta(microseconds=1)]
    windows = [CreationWindow(start, end) for start, end in itertools.pairwise(bounds)]
    selections = [set(gcs.list_videos(storage_client, f"gs://{BUCKET}/{prefix}", MP4, w)) for w in windows]
    assert all(selections)
    assert sum(len(s) for s in selections) == len(set().union(*selections)) == len(times) == 6
    for window, selected in zip(windows, selections, strict=True):
        assert selected == {uri for uri, created in times.items() if created in window}


def test_a_video_created_at_a_boundary_lands_in_the_later_window_only(emulator, storage_client):
    prefix = unique_prefix()
    times = land(storage_client, prefix, ["a.mp4", "b.mp4", "c.mp4"])
    boundary_uri = f"gs://{BUCKET}/{prefix}b.mp4"
    boundary = times[boundary_uri]
    first = CreationWindow(boundary - timedelta(hours=1), boundary)
    second = CreationWindow(boundary, boundary + timedelta(hours=1))
    listed = [set(gcs.list_videos(storage_client, f"gs://{BUCKET}/{prefix}", MP4, w)) for w in (first, second)]
    assert boundary_uri not in listed[0] and boundary_uri in listed[1]
    assert listed[0] | listed[1] == set(times) and not listed[0] & listed[1]


def test_window_bounds_in_any_time_zone_select_the_same_videos(emulator, storage_client):
    """ISO strings with another offset name the same instants as UTC datetimes."""
    prefix = unique_prefix()
    times = land(storage_client, prefix, ["a.mp4", "b.mp4"])
    start = times[f"gs://{BUCKET}/{prefix}b.mp4"]
    india = timezone(timedelta(hours=5, minutes=30))
    window = creation_window((start.astimezone(india).isoformat(), str(start + timedelta(hours=1))))
    assert gcs.list_videos(storage_client, f"gs://{BUCKET}/{prefix}", MP4, window) == [f"gs://{BUCKET}/{prefix}b.mp4"]


# -- bad bounds fail naming the parameter -------------------------------------------------------------------


def operator(**kwargs: object) -> VideoActionBatchPredictionOperator:
    args = {
        "task_id": "predict",
        "project_id": "test-project",
        "region": "us-central1",
        "model": "42",
        "videos_prefix": f"gs://{BUCKET}/landing/",
        "gcs_destination_prefix": f"gs://{BUCKET}/out",
    }
    return VideoActionBatchPredictionOperator(**{**args, **kwargs})


UTC_NOON = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)

BAD_WINDOWS = {
    "naive datetime": ((datetime(2026, 12, 1, 12), UTC_NOON), r"videos_created_in start .* has no time zone"),
    "naive ISO string": ((UTC_NOON, "2026-12-01T13:00:00"), r"videos_created_in end .* has no time zone"),
    "not a time": (("yesterday", UTC_NOON), r"videos_created_in start 'yesterday' is not an ISO 8601 time"),
    "end before start": ((UTC_NOON, UTC_NOON - timedelta(hours=1)), r"is empty: its start must be before its end"),
    "zero length": ((UTC_NOON, UTC_NOON), r"is empty.*create_cron_data_intervals"),
    "one bound": ((UTC_NOON,), r"videos_created_in must be 'data_interval' or a \(start, end\) pair"),
    "other word": ("today", r"videos_created_in must be 'data_interval' or a \(start, end\) pair"),
    "rendered None": (("None", "None"), r"videos_created_in start rendered to 'None'.*logical date"),
}


@pytest.mark.parametrize(("window", "message"), BAD_WINDOWS.values(), ids=BAD_WINDOWS.keys())
def test_bad_windows_are_refused_naming_the_parameter(window: object, message: str):
    with pytest.raises(VideoActionsValueError, match=message):
        operator(videos_created_in=window)


def test_a_window_needs_videos_prefix():
    with pytest.raises(VideoActionsValueError, match="videos_created_in selects among the videos under videos_prefix"):
        operator(videos_prefix=None, videos=[f"gs://{BUCKET}/a.mp4"], videos_created_in="data_interval")


def test_templated_bounds_are_checked_once_rendered():
    operator(videos_created_in=("{{ data_interval_start }}", "{{ data_interval_end }}"))
    operator(videos_created_in="{{ params.window }}")  # a whole window from a template (native rendering)


def test_a_run_without_data_interval_is_refused_saying_what_to_do():
    """Airflow 3: a run triggered without a logical date has no data interval in its context."""
    with pytest.raises(NoDataIntervalError, match=r"videos_created_in='data_interval': This run has no data"):
        creation_window("data_interval", {"ti": None})


# -- scheduled runs through dag.test() ------------------------------------------------------------------


def interval_dag(dag_id: str, prefix: str, window: object = "data_interval") -> None:
    """A DAG whose runs each take the videos created in their data interval (INTERVAL long), then parse."""
    only_dag_file(
        f"{dag_id}.py",
        f"""
from datetime import datetime, timedelta, timezone
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, VideoActionBatchPredictionOperator
try:
    from airflow.sdk import DeltaDataIntervalTimetable
except ImportError:  # Airflow < 3.2
    from airflow.timetables.interval import DeltaDataIntervalTimetable

with DAG(
    {dag_id!r},
    schedule=DeltaDataIntervalTimetable(timedelta(seconds={INTERVAL.total_seconds()})),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
) as dag:
    predict = VideoActionBatchPredictionOperator(
        task_id="predict", project_id="test-project", region="us-central1", model="42",
        videos_prefix="gs://{BUCKET}/{prefix}", videos_created_in={window!r},
        gcs_destination_prefix="gs://{BUCKET}/out", poll_interval=0.1, min_poll_interval=0.1,
    )
    ParseVideoActionPredictionsOperator(task_id="parse", job=predict.output)
""",
    )


def instance_videos(storage_client, summary: dict) -> set[str]:
    """The videos a job was asked for, read from its instances file."""
    import json

    bucket, name = summary["instances_uri"].removeprefix("gs://").split("/", 1)
    text = storage_client.bucket(bucket).blob(name).download_as_text()
    return {json.loads(line)["content"] for line in text.splitlines()}


def jobs_of(emulator, dag_id: str) -> list[str]:
    return [name for name in emulator.created if emulator.job(name).display_name.startswith(f"{dag_id}.")]


def test_backfill_of_three_intervals_makes_one_job_each_and_a_rerun_reattaches(airflow_db, emulator, storage_client):
    """Each interval's run predicts exactly the videos created in it; running one again re-attaches to its job."""
    dag_id, prefix = "hourly_backfill", unique_prefix()
    interval_dag(dag_id, prefix)
    batches: list[set[str]] = []
    ends: list[datetime] = []  # interval k is [first upload of batch k, + INTERVAL): it holds batch k only
    for k in range(3):  # two videos per interval, the next batch once the clock has left this interval
        times = land_together(storage_client, prefix, [f"{k}-a.mp4", f"{k}-b.mp4"])
        ends.append(min(times.values()) + INTERVAL)
        batches.append(set(times))
        wait_until(ends[-1])

    # dag.test() with a logical date L runs the interval [L - INTERVAL, L), as a manual run of that date does.
    runs = [run_dag(dag_id, at=end) for end in ends]
    summaries = [xcom_value(run, "predict") for run in runs]
    assert [task_states(run) for run in runs] == [{"predict": "success", "parse": "success"}] * 3
    assert [instance_videos(storage_client, s) for s in summaries] == batches
    assert len(jobs_of(emulator, dag_id)) == 3

    again = run_dag(dag_id, at=ends[1])
    assert xcom_value(again, "predict")["name"] == summaries[1]["name"]
    assert len(jobs_of(emulator, dag_id)) == 3


def test_templated_bounds_select_the_videos_of_the_runs_interval(airflow_db, emulator, storage_client):
    """``("{{ data_interval_start }}", "{{ data_interval_end }}")`` renders to the same window as "data_interval"."""
    dag_id, prefix = "hourly_templated_bounds", unique_prefix()
    interval_dag(dag_id, prefix, ("{{ data_interval_start }}", "{{ data_interval_end }}"))
    times = land(storage_client, prefix, ["one.mp4", "two.mp4"])
    created = times[f"gs://{BUCKET}/{prefix}two.mp4"]
    run = run_dag(dag_id, at=created + INTERVAL)  # [created, created + INTERVAL): "two" is at its start
    assert task_states(run) == {"predict": "success", "parse": "success"}
    expected = {uri for uri, at in times.items() if created <= at}
    assert instance_videos(storage_client, xcom_value(run, "predict")) == expected


def test_an_interval_with_no_new_videos_skips_predict_and_parse(airflow_db, emulator, storage_client, capfd):
    dag_id, prefix = "hourly_nothing_new", unique_prefix()
    interval_dag(dag_id, prefix)
    times = land(storage_client, prefix, ["late.mp4"])
    first = min(times.values())
    run = run_dag(dag_id, at=first)  # the interval just before the only video
    assert task_states(run) == {"predict": "skipped", "parse": "skipped"}
    assert run.state == "success"
    assert not jobs_of(emulator, dag_id)
    window = CreationWindow(first - INTERVAL, first)
    assert f"No new videos under gs://{BUCKET}/{prefix} created in {window}" in capfd.readouterr().out


def test_without_a_window_an_empty_prefix_still_fails(airflow_db, emulator):
    dag_id = "hourly_whole_prefix_empty"
    only_dag_file(
        f"{dag_id}.py",
        f"""
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_video_actions import VideoActionBatchPredictionOperator

with DAG({dag_id!r}, schedule=None) as dag:
    VideoActionBatchPredictionOperator(
        task_id="predict", project_id="test-project", region="us-central1", model="42",
        videos_prefix="gs://{BUCKET}/{unique_prefix()}", gcs_destination_prefix="gs://{BUCKET}/out",
    )
""",
    )
    assert task_states(run_dag(dag_id)) == {"predict": "failed"}


# -- the example DAG -------------------------------------------------------------------------------------


def test_example_hourly_dag_loads(airflow_db):
    bag = dag_bag(ROOT / "dags" / "video_actions_hourly.py")
    assert bag.import_errors == {}
    assert {t.task_id for t in bag.get_dag("video_actions_hourly").tasks} == {"land_samples", "predict", "parse"}


@pytest.fixture
def example_env(emulator_session, monkeypatch: pytest.MonkeyPatch):
    """The example DAG against the emulator, in a bucket of its own (the samples are its only videos)."""
    bucket = f"hourly-{uuid.uuid4().hex[:8]}"
    for name, value in {**emulator_session.env(), "VIDEO_ACTIONS_BUCKET": bucket}.items():
        monkeypatch.setenv(name, value)
    only_dag_file("video_actions_hourly.py", (ROOT / "dags" / "video_actions_hourly.py").read_text())
    return bucket


def test_example_hourly_dag_predicts_the_hour_its_samples_landed_in(airflow_db, example_env, storage_client):
    """With a logical date after the landing, the run's hour holds the samples: one job, one Parquet file."""
    logical_date = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=30)
    run = run_dag("video_actions_hourly", at=logical_date)
    assert task_states(run) == {"land_samples": "success", "predict": "success", "parse": "success"}
    from airflow_provider_video_actions.emulator.samples import SAMPLE_VIDEOS

    assert instance_videos(storage_client, xcom_value(run, "predict")) == {
        f"gs://{example_env}/{name}" for name in SAMPLE_VIDEOS
    }
    start = (logical_date - timedelta(hours=1)).strftime("%Y%m%dT%H%M%S")
    assert xcom_value(run, "parse")["uri"] == f"gs://{example_env}/parsed/hourly/{start}/moments.parquet"


def test_example_hourly_dag_run_without_interval_skips_naming_the_parameter(airflow_db, example_env, capfd):
    """Airflow 3: a run triggered without a logical date has no data interval; predict skips saying so, no job."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        pytest.skip("every Airflow 2 run has a logical date and a data interval")
    dag = dag_bag(DAGS_FOLDER / "video_actions_hourly.py").get_dag("video_actions_hourly")
    run = dag.test(logical_date=None)
    assert task_states(run) == {"land_samples": "success", "predict": "skipped", "parse": "skipped"}
    assert run.state == "success"
    assert "videos_created_in='data_interval': This run has no data interval" in capfd.readouterr().out


# -- the event-driven example ----------------------------------------------------------------------------


def test_event_driven_example_watches_pubsub_through_an_asset(airflow_db):
    """Airflow 3: the Google provider's Pub/Sub trigger is a BaseEventTrigger, usable by an AssetWatcher."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    bag = dag_bag(ROOT / "dags" / "video_actions_on_arrival.py")
    assert bag.import_errors == {}
    if not AIRFLOW_V_3_0_PLUS:
        assert not bag.dags  # no asset watchers on Airflow 2
        return
    dag = bag.get_dag("video_actions_on_arrival")
    assert {t.task_id for t in dag.tasks} == {"new_videos", "predict", "parse"}
    from airflow.providers.google.cloud.triggers.pubsub import PubsubPullTrigger

    [watcher] = runpy.run_path(str(ROOT / "dags" / "video_actions_on_arrival.py"))["video_arrivals"].watchers
    assert isinstance(watcher.trigger, PubsubPullTrigger)


def notification(object_id: str, event_type: str = "OBJECT_FINALIZE") -> dict:
    """A GCS notification as PubsubPullTrigger puts it in its event (``ReceivedMessage.to_dict``)."""
    from google.cloud.pubsub_v1.types import ReceivedMessage

    attributes = {"bucketId": "landing", "objectId": object_id, "eventType": event_type, "payloadFormat": "JSON_API_V1"}
    return ReceivedMessage.to_dict(ReceivedMessage(ack_id="a", message={"data": b"{}", "attributes": attributes}))


def test_event_driven_example_takes_each_notified_video_once():
    notified_videos = runpy.run_path(str(ROOT / "dags" / "video_actions_on_arrival.py"))["notified_videos"]
    events = [
        SimpleNamespace(extra={"from_trigger": True, "payload": {"status": "success", "message": messages}})
        for messages in (
            [notification("videos/b.mp4"), notification("videos/a.MOV"), notification("videos/notes.txt")],
            [notification("videos/b.mp4"), notification("videos/c.mp4", "OBJECT_DELETE")],  # redelivered, deleted
        )
    ]
    assert notified_videos({"video_arrivals": events}, bucket="landing") == [
        "gs://landing/videos/a.MOV",
        "gs://landing/videos/b.mp4",
    ]
