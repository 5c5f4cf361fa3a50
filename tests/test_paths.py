"""The per-run path helper: one safe, distinct path segment per run id, and a Jinja filter in every operator."""

from __future__ import annotations

import random
import re
import sys
from urllib.parse import unquote_to_bytes

import pytest

from airflow_provider_video_actions import (
    CombineParseShardsOperator,
    ParseVideoActionPredictionsOperator,
    ProposeParseShardsOperator,
    VideoActionBatchPredictionOperator,
    VideoActionBatchPredictionSensor,
    path_segment,
)
from airflow_provider_video_actions.job import VideoActionsValueError
from airflow_provider_video_actions.paths import MAX_SEGMENT_LENGTH
from tests.conftest import BUCKET, run_dag, task_states, write_dag, xcom_value

#: What a segment may be: no '/', no control or non-ASCII character, never '.', '..' or a hidden name.
SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")
#: Pieces hostile run ids are made of: path syntax, the escape and its look-alikes, case variants.
HOSTILE_PIECES = [
    ".", "..", "/", "\\", "%", "%7E", "%2F", "~", "~7E", "~7e", "~2F", "~2f", "~~", "~G1", "_", "__", "-", "+",
    ":", " ", "\t", "\n", "\r", "\x00", "\x7f", "\u0085", "\u2028", "\u202e", "\ufeff", "*", "?", "[", "]", "#",
    "$", "{{", "}}", "'", '"', "é", "e\u0301", "ﬁ", "Run", "run", "RUN", "rUn", "ß", "SS", "İ", "\U0001f3ac",
    "\ud800", "\udfff", "manual__2026-12-05T20:11:45.123456+00:00",
]  # fmt: skip


def decoded(segment: str) -> str:
    """The run id back from its segment: percent-decoding with '~' for '%' (the helper's documented inverse)."""
    return unquote_to_bytes(segment.replace("~", "%")).decode("utf-8", "surrogatepass")


def hostile_run_ids(count: int, seed: int = 18) -> set[str]:
    """Random run ids of hostile pieces and random code points (surrogates and controls included)."""
    rng = random.Random(seed)
    ids = set(HOSTILE_PIECES)
    while len(ids) < count:
        parts = [
            rng.choice(HOSTILE_PIECES) if rng.random() < 0.6 else chr(rng.randrange(sys.maxunicode + 1))
            for _ in range(rng.randrange(1, 12))
        ]
        ids.add("".join(parts))
    return ids


@pytest.mark.parametrize(
    ("run_id", "segment"),
    [
        ("manual__2026-12-05T20:11:45.123456+00:00", "manual__2026-12-05T20~3A11~3A45.123456~2B00~3A00"),
        ("scheduled__2026-12-05T20:00:00+00:00", "scheduled__2026-12-05T20~3A00~3A00~2B00~3A00"),
        ("asset_triggered__2026-12-05T20:11:45+00:00", "asset_triggered__2026-12-05T20~3A11~3A45~2B00~3A00"),
        ("manual__2026-12-05T20:11:45+00:00_Ab3xYz9Q", "manual__2026-12-05T20~3A11~3A45~2B00~3A00_Ab3xYz9Q"),
        ("my-run.v2", "my-run.v2"),
        ("..", "~2E."),
        (".hidden", "~2Ehidden"),
        ("a/../b", "a~2F..~2Fb"),
        ("~3A", "~7E3A"),
        ("café", "caf~C3~A9"),
    ],
)
def test_ordinary_run_ids_stay_readable_and_odd_ones_are_escaped(run_id, segment):
    assert path_segment(run_id) == segment
    assert decoded(segment) == run_id


def test_hostile_run_ids_map_to_distinct_safe_segments():
    """20,000 run ids: each segment is safe, bounded and decodes back to its run id, so no two are equal."""
    run_ids = hostile_run_ids(20_000)
    segments = {}
    for run_id in run_ids:
        try:
            segment = path_segment(run_id)
        except VideoActionsValueError:
            assert len(run_id.encode("utf-8", "surrogatepass")) * 3 > MAX_SEGMENT_LENGTH, repr(run_id)
            continue
        assert SAFE_SEGMENT.fullmatch(segment), (run_id, segment)
        assert len(segment) <= MAX_SEGMENT_LENGTH
        assert decoded(segment) == run_id
        segments[segment] = run_id
    assert len(segments) > 19_000  # nearly all fit: the bound refuses only the longest
    assert len(set(segments.values())) == len(segments)


def test_case_variants_and_escape_look_alikes_stay_apart():
    """Segments are as case-sensitive as GCS object names; a literal escape never meets a real one."""
    variants = ["run", "Run", "RUN", "~3a", "~3A", ":", "%3A", "_3A", ".", "..", "~2E", "~2E.", "a:b", "a_b", "a+b"]
    assert len({path_segment(v) for v in variants}) == len(variants)


def test_every_run_id_of_safe_characters_fits():
    """Airflow run ids hold at most 250 characters: one of kept characters always fits."""
    assert path_segment("a" * 250) == "a" * 250


@pytest.mark.parametrize(
    ("run_id", "message"),
    [
        (None, r"path_segment takes a run id, a non-empty string; got None \(NoneType\)"),
        ("", r"non-empty string; got '' \(str\)"),
        (42, r"got 42 \(int\)"),
        (b"manual__x", r"got b'manual__x' \(bytes\)"),
        ("€" * 100, r"the run id '€€€.*' \(100 characters\) makes a 900-character path segment, over the 255"),
    ],
)
def test_what_cannot_be_a_segment_is_refused_naming_the_helper(run_id, message):
    with pytest.raises(VideoActionsValueError, match=message):
        path_segment(run_id)


# -- the Jinja filter in every operator ------------------------------------------------------------------

RUN_ID = "manual__2026-12-05T20:11:45.123456+00:00"
SEGMENT = "manual__2026-12-05T20~3A11~3A45.123456~2B00~3A00"
FILTERED = "{{ run_id | path_segment }}"
OPERATORS = {
    "submit": (
        lambda: VideoActionBatchPredictionOperator(
            task_id="predict",
            project_id="demo-project",
            region="us-central1",
            model="42",
            videos=["gs://bkt/v.mp4"],
            gcs_destination_prefix=f"gs://bkt/predictions/{FILTERED}",
        ),
        "gcs_destination_prefix",
        f"gs://bkt/predictions/{SEGMENT}",
    ),
    "parse": (
        lambda: ParseVideoActionPredictionsOperator(
            task_id="parse", output_directory="gs://bkt/o/", destination=f"gs://bkt/moments/{FILTERED}/m.parquet"
        ),
        "destination",
        f"gs://bkt/moments/{SEGMENT}/m.parquet",
    ),
    "propose_shards": (
        lambda: ProposeParseShardsOperator(task_id="propose", output_directory=f"gs://bkt/o/{FILTERED}/"),
        "output_directory",
        f"gs://bkt/o/{SEGMENT}/",
    ),
    "combine_shards": (
        lambda: CombineParseShardsOperator(task_id="combine", summaries=[{"uri": f"gs://bkt/{FILTERED}/part"}]),
        "summaries",
        [{"uri": f"gs://bkt/{SEGMENT}/part"}],
    ),
    "sensor": (
        lambda: VideoActionBatchPredictionSensor(
            task_id="wait", job_name=f"projects/p/locations/us-central1/batchPredictionJobs/{FILTERED}"
        ),
        "job_name",
        f"projects/p/locations/us-central1/batchPredictionJobs/{SEGMENT}",
    ),
}


def operator_in_a_dag(name: str, **dag_kwargs):
    """The named operator in a DAG that defines no filter (or ``dag_kwargs``'), with the attribute to check."""
    from airflow.providers.common.compat.sdk import DAG

    build, field, expected = OPERATORS[name]
    with DAG(f"paths_{name}", schedule=None, **dag_kwargs) as dag:
        operator = build()
    return dag, operator, field, expected


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_each_operator_renders_the_filter_the_dag_does_not_define(name):
    """Rendered as Airflow 3's task runner does (the DAG's environment passed in) and as Airflow 2 does (none)."""
    for passes_the_dags_env in (True, False):
        dag, operator, field, expected = operator_in_a_dag(name)
        env = dag.get_template_env() if passes_the_dags_env else None
        operator.render_template_fields({"run_id": RUN_ID}, env)
        assert getattr(operator, field) == expected


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_a_dags_own_path_segment_filter_wins(name):
    dag, operator, field, expected = operator_in_a_dag(name, user_defined_filters={"path_segment": str.upper})
    operator.render_template_fields({"run_id": RUN_ID}, dag.get_template_env())
    assert str(getattr(operator, field)) == str(expected).replace(SEGMENT, RUN_ID.upper())


def test_a_run_id_the_filter_refuses_fails_the_task_without_a_retry():
    from airflow.providers.common.compat.sdk import AirflowFailException

    dag, operator, _, _ = operator_in_a_dag("parse")
    with pytest.raises(AirflowFailException, match=r"path_segment: the run id .* over the 255"):
        operator.render_template_fields({"run_id": "\U0001f3ac" * 70}, dag.get_template_env())


MAPPED_DAG = """
from airflow_provider_video_actions import (
    CombineParseShardsOperator, ParseVideoActionPredictionsOperator, ProposeParseShardsOperator,
)

predict = VideoActionBatchPredictionOperator(
    task_id="predict", project_id="test-project", region="us-central1", model="42", gcs_source=INSTANCES,
    gcs_destination_prefix="gs://BUCKET/per-run/{{ run_id | path_segment }}",
    poll_interval=0.1, min_poll_interval=0.1,
)
proposed = ProposeParseShardsOperator(task_id="propose", job=predict.output, max_shards=2)
parse = ParseVideoActionPredictionsOperator.partial(
    task_id="parse", job=predict.output, destination="gs://BUCKET/per-run-moments/{{ run_id | path_segment }}/",
).expand(shard=proposed.output)
CombineParseShardsOperator(task_id="combine", summaries=parse.output)
"""


def test_a_dag_run_renders_the_filter_in_plain_and_mapped_tasks(airflow_db, emulator, instances_uri):
    """dag.test() through the real task runner: the job's prefix and the mapped parts name the run's segment."""
    write_dag("video_actions_paths", MAPPED_DAG.replace("INSTANCES", repr(instances_uri)).replace("BUCKET", BUCKET))
    run = run_dag("video_actions_paths")
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    segment = path_segment(run.run_id)
    assert xcom_value(run, "predict")["output_directory"].startswith(f"gs://{BUCKET}/per-run/{segment}/")
    assert xcom_value(run, "combine")["uri"].startswith(f"gs://{BUCKET}/per-run-moments/{segment}/part-")
