"""The per-video moment digest behind the UI's Moments tab: bounded, errors kept with reasons, shards combined."""

from __future__ import annotations

import json

import msgspec
import pyarrow as pa
import pytest

from airflow_provider_video_actions.job import VideoActionsValueError
from airflow_provider_video_actions.operators.parse import ParseVideoActionPredictionsOperator
from airflow_provider_video_actions.predictions import ErrorRecord, PredictionRecord, error_columns
from airflow_provider_video_actions.ui import digest
from airflow_provider_video_actions.writers import arrow_schema
from tests.conftest import run_dag, task_states, write_dag, xcom_value
from tests.test_parse import instance, moment


def columns(records: list[PredictionRecord]) -> tuple[list, ...]:
    """Prediction records as the parse's sinks get them: one list per field."""
    return tuple(list(column) for column in zip(*map(msgspec.structs.astuple, records), strict=True))


def record(video: str, label: str, at: float, confidence: float) -> PredictionRecord:
    return PredictionRecord(video, 0.0, None, "1", label, at, at + 0.5, confidence)


def error(video: str | None, message: str, code: int | None = 5) -> ErrorRecord:
    return ErrorRecord(video, None, None, code, message, "gs://b/out/errors_00001.jsonl", 1, "job_error")


def test_a_digest_stays_bounded_and_keeps_each_videos_most_confident_moments():
    built = digest.MomentDigest()
    long = "x" * 5000  # hostile lengths: labels and URIs are cut, the file stays under the read limit
    for v in range(digest.MAX_VIDEOS + 30):
        video = f"gs://b/{long}/v{v:04d}.mp4"
        rows = [record(video, f"{m % 70}{long}", m, (m % 997) / 1000) for m in range(digest.MAX_MOMENTS + 40)]
        built.add_moments(columns(rows))
    built.add_errors(error_columns([error(f"gs://b/missing-{n}.mp4", long) for n in range(digest.MAX_ERRORS + 7)]))
    result = built.digest(videos_total=digest.MAX_VIDEOS + 30)
    assert len(result.videos) == digest.MAX_VIDEOS and result.more_videos == 30
    first = result.videos[0]
    assert len(first.moments) == digest.MAX_MOMENTS and first.more_moments == 40
    assert first.moment_count == digest.MAX_MOMENTS + 40
    assert min(m[3] for m in first.moments) == pytest.approx(0.04)  # the 40 least confident (0.0..0.039) left out
    assert [m[0] for m in first.moments] == sorted(m[0] for m in first.moments)  # by time
    assert len(first.label_counts) == digest.MAX_LABELS and first.labels_omitted == 20
    assert len(result.errors) == digest.MAX_ERRORS and result.more_errors == 7
    assert result.moments == (digest.MAX_VIDEOS + 30) * (digest.MAX_MOMENTS + 40)
    assert result.errors_total == digest.MAX_ERRORS + 7
    encoded = digest.encode(result)
    assert len(encoded) < digest.MAX_DIGEST_BYTES, len(encoded)
    assert digest.decode(encoded, "test") == result


def test_errors_are_kept_with_their_reasons_and_an_errored_video_is_listed():
    built = digest.MomentDigest()
    built.add_moments(columns([record("gs://b/a.mp4", "wave", 1.0, 0.9)]))
    built.add_errors(error_columns([error("gs://b/missing.mp4", "not found"), error(None, "line 3 is not JSON", None)]))
    result = built.digest(videos_total=1)
    by_uri = {video.video_uri: video for video in result.videos}
    assert by_uri["gs://b/missing.mp4"].error_count == 1 and by_uri["gs://b/missing.mp4"].moments == []
    assert by_uri["gs://b/a.mp4"].console_url == "https://console.cloud.google.com/storage/browser/_details/b/a.mp4"
    assert [(e.video_uri, e.message, e.code) for e in result.errors] == [
        ("gs://b/missing.mp4", "not found", 5),
        (None, "line 3 is not JSON", None),
    ]
    assert result.more_videos == 0  # the digest was never full


def test_an_arrow_table_feeds_the_digest_as_its_records_do():
    rows = [record(f"gs://b/v{n % 7}.mp4", f"l{n % 3}", n / 10, (n % 10) / 10) for n in range(200)]
    from_columns, from_table = digest.MomentDigest(max_videos=4), digest.MomentDigest(max_videos=4)
    from_columns.add_moments(columns(rows))
    schema = arrow_schema(PredictionRecord)
    from_table.add_table(pa.Table.from_pydict(dict(zip(schema.names, columns(rows), strict=True)), schema=schema))
    assert from_table.digest() == from_columns.digest()
    assert from_table.digest().moments == 200


def test_combining_shards_adds_their_counts_and_pools_their_moments(tmp_path):
    parts = [f"file://{tmp_path}/part-0000{i}-of-00004.parquet" for i in range(4)]
    for index, part in enumerate(parts[:2]):
        built = digest.MomentDigest(max_moments=2)
        rows = [record("gs://b/shared.mp4", "wave", index * 10 + m, 0.5 + index * 0.3 + m / 100) for m in range(3)]
        built.add_moments(columns([*rows, record(f"gs://b/only-{index}.mp4", "run", 1.0, 0.7)]))
        built.add_errors(error_columns([error(f"gs://b/missing-{index}.mp4", f"reason {index}")]))
        digest.publish({}, built.digest(), uri=digest.digest_uri(part), client=None)
    (tmp_path / "part-00003-of-00004.moments.json").write_text('{"videos": "not a digest"}')
    combined = digest.merge(None, parts)  # the third shard wrote no digest, the fourth a bad one: counted
    assert combined.shards == 4 and combined.shards_without_digest == 2
    assert combined.moments == 8 and combined.errors_total == 2
    shared = next(video for video in combined.videos if video.video_uri == "gs://b/shared.mp4")
    assert shared.moment_count == 6 and shared.label_counts == {"wave": 6}
    assert [m[3] for m in shared.moments] == [0.51, 0.52, 0.81, 0.82]  # each shard's two most confident
    assert [m[0] for m in shared.moments] == [1.0, 2.0, 11.0, 12.0] and shared.more_moments == 2
    assert sorted(e.message for e in combined.errors) == ["reason 0", "reason 1"]


def test_a_combined_digest_goes_beside_the_dataset():
    assert (
        digest.combined_digest_uri("gs://b/moments/part-*-of-00008.parquet")
        == "gs://b/moments/part-all-of-00008.moments.json"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "is not a moment digest"),
        (b'{"videos": "all of them"}', "is not a moment digest"),
        (b" " * (digest.MAX_DIGEST_BYTES + 1), "is larger than"),
    ],
)
def test_a_file_that_is_not_a_digest_is_refused_clearly(data, message):
    with pytest.raises(VideoActionsValueError, match=message):
        digest.decode(data, "gs://b/x.moments.json")


def test_a_parse_writes_its_digest_beside_its_destination(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions_00001.jsonl").write_text(
        json.dumps({"instance": instance("gs://b/a.mp4"), "prediction": [moment("wave", 1.5, 0.9)]}) + "\n"
    )
    (out / "errors_00001.jsonl").write_text(
        json.dumps({"instance": instance("gs://b/gone.mp4"), "error": {"code": 5, "message": "not found"}}) + "\n"
    )
    destination = f"file://{tmp_path}/parsed/moments.parquet"
    ParseVideoActionPredictionsOperator(
        task_id="parse", output_directory=f"file://{out}", destination=destination
    ).execute({})
    written = digest.read(None, digest.digest_uri(destination))
    assert [(v.video_uri, [m[2] for m in v.moments], v.error_count) for v in written.videos] == [
        ("gs://b/a.mp4", ["wave"], 0),
        ("gs://b/gone.mp4", [], 1),
    ]
    assert written.errors[0].message == "not found"


def test_parse_and_combine_tasks_say_where_their_digest_is(airflow_db, tmp_path):
    """In a real run: XCom ``video_actions_moments`` holds the digest (records in XCom) or names its file."""
    out = tmp_path / "out"
    out.mkdir()
    for n, label in ((1, "wave"), (2, "run")):
        line = {"instance": instance(f"gs://b/v{n}.mp4"), "prediction": [moment(label, n, 0.8)]}
        (out / f"predictions_0000{n}.jsonl").write_text(json.dumps(line) + "\n")
    write_dag(
        "video_actions_ui_digest",
        f"""
from airflow_provider_video_actions import CombineParseShardsOperator, ParseVideoActionPredictionsOperator
parse = ParseVideoActionPredictionsOperator.partial(
    task_id="parse", output_directory="file://{out}/", destination="file://{tmp_path}/parts/"
).expand(shard=["0/2", "1/2"])
CombineParseShardsOperator(task_id="combine", summaries=parse.output)
ParseVideoActionPredictionsOperator(task_id="parse_to_xcom", output_directory="file://{out}/")
""",
    )
    run = run_dag("video_actions_ui_digest")
    assert run.state == "success", task_states(run)
    in_xcom = digest.from_xcom(xcom_value(run, "parse_to_xcom", digest.DIGEST_XCOM_KEY)["digest"], "test")
    assert sorted(v.video_uri for v in in_xcom.videos) == ["gs://b/v1.mp4", "gs://b/v2.mp4"]
    pointer = xcom_value(run, "combine", digest.DIGEST_XCOM_KEY)
    assert pointer == {
        "uri": f"file://{tmp_path}/parts/part-all-of-00002.moments.json",
        "gcp_conn_id": "google_cloud_default",
        "impersonation_chain": None,
    }
    combined = digest.read(None, pointer["uri"])
    assert combined.shards == 2 and combined.moments == 2
    assert {v.video_uri: list(v.label_counts) for v in combined.videos} == {
        "gs://b/v1.mp4": ["wave"],
        "gs://b/v2.mp4": ["run"],
    }


@pytest.mark.parametrize(
    "pointer",
    [
        {"uri": "file:///etc/secrets.moments.json", "gcp_conn_id": "google_cloud_default"},
        {"uri": "gs://b/moments.parquet", "gcp_conn_id": "google_cloud_default"},
        {"uri": ["gs://b/x.moments.json"], "gcp_conn_id": "google_cloud_default"},
        {"uri": "gs://b/x.moments.json"},
    ],
    ids=["local file", "not a digest file", "not a string", "no connection"],
)
def test_the_api_server_reads_no_file_a_digest_xcom_names_but_a_digest_on_gcs(pointer):
    """Whoever can write a task's XCom cannot make the API server read its local files (or any non-digest)."""
    from airflow_provider_video_actions.ui.plugin import has_task_instance_views

    if not has_task_instance_views():
        pytest.skip("the Moments tab's API needs Airflow 3.1+")
    from airflow_provider_video_actions.ui import api

    with pytest.raises(VideoActionsValueError, match=r"names no digest file|reads only gs:// digests"):
        api._read_digest(pointer, "dag/run/parse[-1]")


@pytest.mark.parametrize(
    ("version", "shown"), [("2.11.1", False), ("3.0.6", False), ("3.1.0", True), ("3.1.0rc1", True), ("3.3.2", True)]
)
def test_the_tab_is_registered_from_airflow_3_1(version, shown):
    from airflow_provider_video_actions.ui.plugin import has_task_instance_views

    assert has_task_instance_views(version) is shown


PARSE_WITHOUT_PANDAS = """
import pathlib, sys, tempfile
from tests.benchmarks.bench_parse import generate
from airflow_provider_video_actions.operators.parse import ParseVideoActionPredictionsOperator

folder = pathlib.Path(tempfile.mkdtemp())
generate(folder / "in", 1)
ParseVideoActionPredictionsOperator(
    task_id="parse", output_directory=f"file://{folder}/in/", destination=f"file://{folder}/out.parquet"
).execute({})
assert (folder / "out.moments.json").exists()
print("pandas" in sys.modules)
"""


def test_the_digest_does_not_import_pandas():
    """A Python value handed to pyarrow (``pa.array``, a scalar in a kernel) imports pandas: 0.8 CPU s a parse."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PARSE_WITHOUT_PANDAS], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
