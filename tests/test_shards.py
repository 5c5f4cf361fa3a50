"""Sharded parse: 4 mapped instances by dag.test() against the emulator write what one parse writes, and the parts."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, shards
from airflow_provider_video_actions.job import VideoActionsValueError
from tests.conftest import BUCKET, ROOT, dag_bag, fast_timeline, run_dag, task_states, write_dag, xcom_value
from tests.test_lineage import asset_events

DAG_ID = "test_sharded_parse"  # not the docs example's dag id: one serialized DAG per id in the test DB
ALIAS = "video-actions-shards"
SHARDED_DAG = """
from airflow_provider_video_actions import (
    CombineParseShardsOperator, ParseVideoActionPredictionsOperator, ProposeParseShardsOperator,
)

predict = VideoActionBatchPredictionOperator(
    task_id="predict", project_id="test-project", region="us-central1", model="42", gcs_source={instances!r},
    gcs_destination_prefix="gs://{bucket}/sharded-out", job_display_name="sharded", poll_interval=0.1,
    min_poll_interval=0.1, deferrable=True,
)
proposed = ProposeParseShardsOperator(task_id="propose", job=predict.output, target_shard_bytes=1, max_shards=4)
parse = ParseVideoActionPredictionsOperator.partial(
    task_id="parse", job=predict.output, destination="gs://{bucket}/sharded/"
).expand(shard=proposed.output)
CombineParseShardsOperator(task_id="combine", summaries=parse.output, asset_alias={alias!r})
ParseVideoActionPredictionsOperator(
    task_id="parse_whole", job=predict.output, destination="gs://{bucket}/whole/moments.parquet"
)
"""


def upload_instances(client) -> str:
    """16 videos with one or two planted actions (some as segments) and two missing ones: 18 instances."""
    from airflow_provider_video_actions.emulator import ACTIONS, PlantedAction, make_video

    bucket, labels, lines = client.bucket(BUCKET), sorted(ACTIONS), []
    for n in range(16):
        planted = [PlantedAction(labels[n % len(labels)], 1.0)]
        if n % 3 == 0:
            planted.append(PlantedAction(labels[(n + 1) % len(labels)], 2.5))
        bucket.blob(f"sharded-videos/v{n:02d}.mp4").upload_from_string(make_video(planted), content_type="video/mp4")
        line = {"content": f"gs://{BUCKET}/sharded-videos/v{n:02d}.mp4", "mimeType": "video/mp4"}
        if n % 4 == 1:
            line.update(timeSegmentStart="0.5s", timeSegmentEnd="3.5s")
        lines.append(line)
    lines += [{"content": f"gs://{BUCKET}/sharded-videos/missing-{n}.mp4", "mimeType": "video/mp4"} for n in (1, 2)]
    bucket.blob("sharded-instances/videos.jsonl").upload_from_string("".join(json.dumps(x) + "\n" for x in lines))
    return f"gs://{BUCKET}/sharded-instances/videos.jsonl"


@pytest.fixture(scope="module")
def sharded_run(airflow_db, emulator_session):
    """One dag.test() run: the job's output split 2 lines a file, parsed in 4 mapped instances and in one task."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
    from google.cloud import storage

    with pytest.MonkeyPatch.context() as mp:
        for name, value in emulator_session.env().items():
            mp.setenv(name, value)
        instances = upload_instances(storage.Client(project="test"))
        emulator_session.timeline.lines_per_file = 2
        try:
            # Airflow 2's dag.test() cannot flush an alias outlet (see test_lineage): the alias runs on Airflow 3.
            alias = ALIAS if AIRFLOW_V_3_0_PLUS else None
            write_dag(DAG_ID, SHARDED_DAG.format(instances=instances, bucket=BUCKET, alias=alias))
            run = run_dag(DAG_ID)
        finally:
            emulator_session.timeline = fast_timeline()
        yield run


def objects(prefix: str) -> dict[str, bytes]:
    """Name (after the prefix) -> content of the emulator's objects under a prefix."""
    from google.cloud import storage

    client = storage.Client(project="test")
    return {b.name[len(prefix) :]: b.download_as_bytes() for b in client.list_blobs(BUCKET, prefix=prefix)}


def parquet_rows(*contents: bytes) -> Counter:
    """The multiset of rows in Parquet files."""
    import pyarrow.parquet as pq

    rows: Counter = Counter()
    for content in contents:
        rows.update(tuple(sorted(r.items())) for r in pq.read_table(io.BytesIO(content)).to_pylist())
    return rows


def jsonl_rows(*contents: bytes) -> Counter:
    return Counter(line for content in contents for line in content.decode().splitlines())


def test_four_mapped_instances_write_what_one_parse_writes(sharded_run):
    assert sharded_run.state == "success", task_states(sharded_run)
    assert sorted(ti.map_index for ti in sharded_run.get_task_instances() if ti.task_id == "parse") == [0, 1, 2, 3]
    whole = xcom_value(sharded_run, "parse_whole")
    job_files = objects(xcom_value(sharded_run, "predict")["output_directory"].removeprefix(f"gs://{BUCKET}/"))
    assert len(job_files) >= 8, sorted(job_files)
    parts = objects("sharded/")
    assert sorted(name for name in parts if name.endswith(".parquet")) == [
        f"part-0000{i}-of-00004.parquet" for i in range(4)
    ]
    assert parquet_rows(*(c for n, c in parts.items() if n.endswith(".parquet"))) == parquet_rows(
        objects("whole/")["moments.parquet"]
    )
    assert jsonl_rows(*(c for n, c in parts.items() if n.endswith(".errors.jsonl"))) == jsonl_rows(
        objects("whole/")["moments.errors.jsonl"]
    )
    combined = xcom_value(sharded_run, "combine")
    assert {k: combined[k] for k in whole if k not in ("uri", "errors_uri")} == {
        k: v for k, v in whole.items() if k not in ("uri", "errors_uri")
    }
    assert combined["errors"] == 2 and combined["rows"] > 16 and combined["videos"] == 16
    assert combined["uri"] == f"gs://{BUCKET}/sharded/part-*-of-00004.parquet"
    assert combined["errors_uri"] == f"gs://{BUCKET}/sharded/part-*-of-00004.errors.jsonl"


def test_a_retried_shard_replaces_exactly_its_part(sharded_run):
    """A retry runs the same shard again: it rewrites its own part; no part is added, the union is unchanged."""
    from google.cloud import storage

    bucket = storage.Client(project="test").bucket(BUCKET)
    before, generation = objects("sharded/"), bucket.get_blob("sharded/part-00002-of-00004.parquet").generation
    ParseVideoActionPredictionsOperator(
        task_id="parse", job=xcom_value(sharded_run, "predict"), destination=f"gs://{BUCKET}/sharded/", shard="2/4"
    ).execute({})
    after = objects("sharded/")
    assert bucket.get_blob("sharded/part-00002-of-00004.parquet").generation > generation
    assert sorted(after) == sorted(before)
    assert parquet_rows(*(c for n, c in after.items() if n.endswith(".parquet"))) == parquet_rows(
        objects("whole/")["moments.parquet"]
    )


def test_one_asset_event_for_the_dataset(sharded_run):
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        pytest.skip("Airflow 2's dag.test() does not register dataset aliases (see test_lineage)")
    combined = xcom_value(sharded_run, "combine")
    expected = {k: combined[k] for k in ("rows", "videos", "errors", "label_counts", "shards")}
    assert asset_events(sharded_run) == [(f"gs://{BUCKET}/sharded", expected, [ALIAS])]


def test_assignment_is_balanced_by_size_and_deterministic():
    sizes = {f"gs://b/o/predictions_{n:05d}.jsonl": size for n, size in enumerate([90, 10, 50, 50, 40, 30, 20, 10])}
    groups = shards.assign(sizes, 3)
    assert groups == shards.assign(dict(reversed(sizes.items())), 3)
    assert sorted(uri for group in groups for uri in group) == sorted(sizes)
    assert [sum(sizes[uri] for uri in group) for group in groups] == [100, 100, 100]


def test_each_shard_keeps_the_listing_order():
    predictions = [f"gs://b/o/predictions_{n:05d}.jsonl" for n in range(1, 6)]
    errors = ["gs://b/o/errors_00001.jsonl"]
    sizes = dict.fromkeys(predictions + errors, 10)
    mine = [shards.shard_files(shards.Shard(i, 2), predictions, errors, sizes) for i in range(2)]
    assert sorted(p for own, _ in mine for p in own) == predictions
    assert [e for _, own in mine for e in own] == errors
    assert all(own == sorted(own) for own, _ in mine)


@pytest.mark.parametrize(
    ("destination", "part"),
    [
        ("gs://b/moments/", "gs://b/moments/part-00003-of-00008.parquet"),
        ("gs://b/moments/part.jsonl", "gs://b/moments/part-00003-of-00008.jsonl"),
        ("file:///data/m.csv", "file:///data/m-00003-of-00008.csv"),
    ],
)
def test_part_names(destination, part):
    assert shards.plan(destination, "3/8") == (part, shards.Shard(3, 8))
    assert shards.plan(part, {"index": 3, "count": 8})[0] == part  # the same task run again keeps its part


@pytest.mark.parametrize(
    "shard",
    [
        *("4/4", "-1/4", "a/4", "3", {"index": 1}, 7, {"index": True, "count": 2}, "0/" + "9" * 5000),
        *("\u0660/\u0664", "1/\u0664", "\u00b2/4"),  # Arabic-Indic digits, a superscript two
    ],
)
def test_a_bad_shard_is_refused_at_dag_parse_time(shard):
    with pytest.raises(VideoActionsValueError, match="shard must be 'index/count'"):
        ParseVideoActionPredictionsOperator(
            task_id="p", output_directory="gs://b/o/", destination="gs://b/m/", shard=shard
        )


def test_a_folder_needs_a_shard_and_a_shard_needs_a_destination():
    with pytest.raises(VideoActionsValueError, match="is a folder: that is a sharded parse's dataset"):
        ParseVideoActionPredictionsOperator(task_id="p", output_directory="gs://b/o/", destination="gs://b/m/")
    with pytest.raises(VideoActionsValueError, match="shard 1/2 needs a destination"):
        ParseVideoActionPredictionsOperator(task_id="p", output_directory="gs://b/o/", shard="1/2")
    templated = ParseVideoActionPredictionsOperator(
        task_id="p", output_directory="gs://b/o/", destination="gs://b/m/", shard="{{ params.shard }}"
    )
    assert templated.shard == "{{ params.shard }}"


def summary(index: int, count: int, folder: str = "gs://b/m", **fields) -> dict:
    """A shard's summary as the parse returns it: one moment of one video, no errors."""
    from airflow_provider_video_actions.parse.count import ParseStats

    shard = {
        "index": index,
        "count": count,
        "dataset": f"{folder}/part-*-of-{count:05d}.parquet",
        "listing_digest": "d",
    }
    return {
        **ParseStats().summary(), "rows": 1, "instances": 1, "videos": 1, "label_counts": {"wave": 1},
        "uri": f"{folder}/part-{index:05d}-of-{count:05d}.parquet", "errors_uri": None, "shard": shard, **fields,
    }  # fmt: skip


def test_combine_refuses_a_partial_set():
    with pytest.raises(VideoActionsValueError, match=r"missing \[1\], repeated \[0\]"):
        shards.combine([summary(0, 3), summary(0, 3), summary(2, 3)])
    with pytest.raises(VideoActionsValueError, match="different shard counts"):
        shards.combine([summary(0, 2), summary(1, 3)])
    with pytest.raises(VideoActionsValueError, match=r"summaries\[0\] is not a sharded parse's result \(missing"):
        shards.combine([{"rows": 1}])


def test_combined_error_samples_are_the_first_in_listing_order():
    def sample(file: str, line: int) -> dict:
        return {"video": None, "code": 5, "message": "m", "file": f"gs://b/o/{file}", "line": line}

    first = [sample("predictions_00002.jsonl", 1), *(sample("errors_00001.jsonl", n) for n in range(1, 5))]
    second = [sample("predictions_00001.jsonl", n) for n in (3, 9)] + [sample("errors_00002.jsonl", 1)]
    combined = shards.combine([summary(0, 2, error_samples=first), summary(1, 2, error_samples=second)])
    assert combined["error_samples"] == [second[0], second[1], first[0], first[1], first[2]]


def test_propose_shards():
    gib = 1024**3
    assert shards.propose_shards([gib // 2] * 10) == ["0/5", "1/5", "2/5", "3/5", "4/5"]
    assert shards.propose_shards([10, 10], target_shard_bytes=1) == ["0/2", "1/2"]  # at most one per file
    assert shards.propose_shards([gib] * 100, max_shards=8) == [f"{i}/8" for i in range(8)]
    assert shards.propose_shards([0]) == ["0/1"]


def test_bigquery_example_dag_parses(airflow_db):
    bag = dag_bag(ROOT / "dags" / "video_actions_bigquery.py")
    assert bag.import_errors == {}
    dag = bag.get_dag("video_actions_bigquery")
    load = dag.get_task("load_to_bigquery")
    assert load.source_format == "PARQUET" and load.write_disposition == "WRITE_APPEND"
    assert "ti.xcom_pull(task_ids='combine')['uri']" in load.source_objects[0]
    source = (ROOT / "dags" / "video_actions_bigquery.py").read_text()
    assert "run_id" in source and "ts_nodash" not in source and "{{ ds" not in source


def test_combine_refuses_shards_that_listed_different_output_files(tmp_path):
    from tests.test_parse_lines import moment, served

    out = tmp_path / "prediction-model-2026_01_01T00_00_00_000Z"
    out.mkdir()
    for n in (1, 2):
        (out / f"predictions_0000{n}.jsonl").write_text(json.dumps(served(moment())) + "\n")

    def parse_shard(index: int) -> dict:
        return ParseVideoActionPredictionsOperator(
            task_id="p", output_directory=f"file://{out}", destination=f"file://{tmp_path}/parts/", shard=f"{index}/2"
        ).execute({})

    first = parse_shard(0)
    (out / "predictions_00003.jsonl").write_text(json.dumps(served(moment())) + "\n")  # the folder changes
    second = parse_shard(1)
    with pytest.raises(VideoActionsValueError, match=r"listed different output files.*shard \[0\].*\[1\]"):
        shards.combine([first, second])
    assert shards.combine([parse_shard(0), second])["rows"] == 3


def test_the_listing_digest_changes_with_any_name_or_size():
    digest = shards.listing_digest({"gs://b/o/predictions_00001.jsonl": 10, "gs://b/o/errors_00001.jsonl": 3})
    assert digest == shards.listing_digest({"gs://b/o/errors_00001.jsonl": 3, "gs://b/o/predictions_00001.jsonl": 10})
    assert digest != shards.listing_digest({"gs://b/o/predictions_00001.jsonl": 11, "gs://b/o/errors_00001.jsonl": 3})
    assert digest != shards.listing_digest({"gs://b/o/predictions_00001.jsonl": 10})


def test_shards_of_a_failed_job_are_proposed_only_with_allow_partial(tmp_path):
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_video_actions import ProposeParseShardsOperator
    from tests.test_parse_lines import moment, served

    (tmp_path / "predictions_00001.jsonl").write_text(json.dumps(served(moment())) + "\n")
    job = {"name": "projects/p/locations/l/batchPredictionJobs/7", "state": "JOB_STATE_FAILED"}
    job["output_directory"] = f"file://{tmp_path}"
    with pytest.raises(AirflowFailException, match="ended in JOB_STATE_FAILED; set allow_partial=True"):
        ProposeParseShardsOperator(task_id="propose", job=job).execute({})
    assert ProposeParseShardsOperator(task_id="propose", job=job, allow_partial=True).execute({}) == ["0/1"]


def test_a_huge_shard_count_is_refused_naming_max_shards():
    with pytest.raises(VideoActionsValueError, match=r"shard 0/2000000 .* more than max_shards=1024"):
        ParseVideoActionPredictionsOperator(
            task_id="p", output_directory="gs://b/o/", destination="gs://b/m/", shard="0/2000000"
        )
    with pytest.raises(VideoActionsValueError, match="more than max_shards=8"):
        shards.plan("gs://b/m/", {"index": 0, "count": 9}, max_shards=8)
    accepted = ParseVideoActionPredictionsOperator(
        task_id="p", output_directory="gs://b/o/", destination="gs://b/m/", shard="0/2000000", max_shards=2_000_000
    )
    assert accepted.max_shards == 2_000_000


@pytest.mark.parametrize("index", [0, 3, 1_999_999])
def test_memory_follows_the_files_not_the_shard_count(index):
    """A 2,000,000-way shard of four files: the assignment holds the four files, never a list per shard."""
    import tracemalloc

    predictions = [f"gs://b/o/predictions_{n:05d}.jsonl" for n in range(1, 5)]
    sizes = dict(zip(predictions, [40, 30, 20, 10], strict=True))
    tracemalloc.start()
    try:
        mine, _ = shards.shard_files(shards.Shard(index, 2_000_000), predictions, [], sizes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000, peak
    assert mine == ([predictions[index]] if index < 4 else [])


def test_the_lazy_assignment_is_the_balanced_one():
    """Files of equal and zero sizes, more shards than files: the same groups as a heap over every shard."""
    sizes = {f"gs://b/o/predictions_{n:05d}.jsonl": size for n, size in enumerate([7, 7, 0, 0, 5, 3, 3])}
    assert shards.assign(sizes, 10) == [
        ["gs://b/o/predictions_00000.jsonl"],
        ["gs://b/o/predictions_00001.jsonl"],
        ["gs://b/o/predictions_00004.jsonl"],
        ["gs://b/o/predictions_00005.jsonl"],
        ["gs://b/o/predictions_00006.jsonl"],
        ["gs://b/o/predictions_00002.jsonl", "gs://b/o/predictions_00003.jsonl"],
    ]


def test_combine_refuses_shards_written_to_two_folders():
    with pytest.raises(VideoActionsValueError, match=r"wrote 2 different datasets .*gs://b/m/.*gs://b/other/"):
        shards.combine([summary(0, 2), summary(1, 2, folder="gs://b/other")])


@pytest.mark.parametrize(
    ("summaries", "message"),
    [
        (None, r"summaries must be the mapped parse task's results; got NoneType"),
        ([None], r"summaries\[0\] must be a sharded parse's result"),
        ([summary(0, 1, shard=None)], r"summaries\[0\]\['shard'\] must be \{'index'"),
        ([{k: v for k, v in summary(0, 1).items() if k != "shard"}], r"missing \['shard'\]"),
        ([summary(0, 1, rows="12")], r"summaries\[0\]\['rows'\] must be a count .*got str: '12'"),
        ([summary(0, 1, rows=True)], r"\['rows'\] must be a count"),
        ([summary(0, 1, junk=[1] * 100_000)], r"unexpected \['junk'\]"),
        ([summary(0, 1, label_counts={"wave": "1"})], r"\['label_counts'\] must be a mapping of label -> count"),
        ([summary(0, 1, error_samples=[{"file": 3}])], r"\['error_samples'\] must be a list of error samples"),
        ([summary(0, 2), "junk"], r"summaries\[1\] must be a sharded parse's result .*; got str: 'junk'"),
        ([], "summaries is empty"),
    ],
)
def test_combine_refuses_malformed_summaries(summaries, message):
    with pytest.raises(VideoActionsValueError, match=message):
        shards.combine(summaries)


def test_a_forged_huge_count_makes_a_short_message_and_no_allocation():
    import tracemalloc

    forged = [summary(0, 10**12), summary(1, 10**12)]
    tracemalloc.start()
    try:
        with pytest.raises(VideoActionsValueError) as refused:
            shards.combine(forged)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak
    assert "a 1000000000000-way parse needs one summary per shard, got 2: missing [2, 3" in str(refused.value)
    assert "and 999999999988 more" in str(refused.value) and len(str(refused.value)) < 400


def test_combine_reads_the_mapped_results_without_an_xcom_not_found_error(airflow_db, tmp_path, capfd):
    """Iterating Airflow 3's lazy sequence of the mapped results asked for one past the end: an error in the log."""
    from tests.test_parse_lines import moment, served

    (tmp_path / "out").mkdir()
    for n in (1, 2):
        (tmp_path / "out" / f"predictions_0000{n}.jsonl").write_text(json.dumps(served(moment())) + "\n")
    write_dag(
        "video_actions_combine_log",
        f"""
from airflow_provider_video_actions import CombineParseShardsOperator, ParseVideoActionPredictionsOperator
parse = ParseVideoActionPredictionsOperator.partial(
    task_id="parse", output_directory="file://{tmp_path}/out/", destination="file://{tmp_path}/parts/"
).expand(shard=["0/2", "1/2"])
CombineParseShardsOperator(task_id="combine", summaries=parse.output)
""",
    )
    run = run_dag("video_actions_combine_log")
    captured = capfd.readouterr()
    assert run.state == "success", task_states(run)
    assert xcom_value(run, "combine")["rows"] == 2
    assert "XCom not found" not in captured.out + captured.err
