"""ListBatchPredictionJobs filters: every example of the reference and of the Google list operator, over gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform_v1

from airflow_provider_video_actions.emulator import Emulator, JobTimeline
from airflow_provider_video_actions.emulator.errors import AbortError
from airflow_provider_video_actions.emulator.filters import parse_filter, wildcard_match
from airflow_provider_video_actions.triggers.job_poll import list_filter
from tests.emulator.conftest import BUCKET, PARENT, TERMINAL, poll

OTHER_MODEL = f"{PARENT}/models/777"
#: display name -> (model, labels, forced outcome)
JOBS = {
    "my_job": ("4242", {"keyA": "valueA", "keyB": "x", "airflow-task": "t1"}, "JOB_STATE_SUCCEEDED"),
    "my_job_2": ("4242", {"keyB": "y", "team": "video"}, "JOB_STATE_SUCCEEDED"),
    "my_job_3": ("777", {"keyA": "valueB"}, "JOB_STATE_FAILED"),
    "other": ("777", {}, "JOB_STATE_PAUSED"),
}
ALL = set(JOBS)
#: Every example of ``ListBatchPredictionJobsRequest.filter``'s reference (aiplatform_v1 types/job_service.py).
REFERENCE_EXAMPLES = [
    ('state="JOB_STATE_SUCCEEDED" AND display_name:"my_job_*"', {"my_job_2"}),
    ('state!="JOB_STATE_FAILED" OR display_name="my_job"', {"my_job", "my_job_2", "other"}),
    ('NOT display_name="my_job"', {"my_job_2", "my_job_3", "other"}),
    ('create_time>"2021-05-18T00:00:00Z"', ALL),
    ("labels.keyA=valueA", {"my_job"}),
    ("labels.keyB:*", {"my_job", "my_job_2"}),
]
#: Every example of the Google provider's ListBatchPredictionJobsOperator docstring.
OPERATOR_EXAMPLES = [
    ('state="JOB_STATE_SUCCEEDED" AND display_name="my_job"', {"my_job"}),
    ('state="JOB_STATE_RUNNING" OR display_name="my_job"', {"my_job"}),
    ('NOT display_name="my_job"', {"my_job_2", "my_job_3", "other"}),
    ('state="JOB_STATE_FAILED"', {"my_job_3"}),
]
MORE_EXAMPLES = [
    ("", ALL),
    ('model_display_name="video-action-recognition-777"', {"my_job_3", "other"}),
    ('model_display_name!="video-action-recognition-777"', {"my_job", "my_job_2"}),
    ('(display_name="my_job" OR display_name="other") AND NOT labels.keyB:*', {"other"}),
    ('display_name:"my_*" state=JOB_STATE_SUCCEEDED', {"my_job", "my_job_2"}),  # juxtaposition is AND
    ('display_name="other" OR labels.keyA:"value*" AND state="JOB_STATE_FAILED"', {"my_job_3"}),  # OR first
    ('-display_name:"my*"', {"other"}),
    ("labels.keyA!=valueA", {"my_job_2", "my_job_3", "other"}),
    ('labels.team="video" AND labels.airflow-task:*', set()),
    ('labels.airflow-task="t1"', {"my_job"}),  # the provider's previous release's hyphenated key
    ('state = "JOB_STATE_PAUSED"', {"other"}),
    ('display_name:"*_3"', {"my_job_3"}),
]


@pytest.fixture(scope="module")
def listed() -> Iterator[tuple[aiplatform_v1.JobServiceClient, dict[str, aiplatform_v1.BatchPredictionJob]]]:
    """An emulator holding the four :data:`JOBS`, each in its final (or paused) state, and its client."""
    timeline = JobTimeline(queued_seconds=0.01, pending_seconds=0.01, running_seconds=0.01, cancelling_seconds=0.01)
    with Emulator(buckets=[BUCKET], timeline=timeline, models=["4242", "777"]) as emulator:
        client = emulator.job_client()
        emulator.storage_client().bucket(BUCKET).blob("i.jsonl").upload_from_string("")
        jobs = {}
        for display_name, (model, labels, outcome) in JOBS.items():
            emulator.force_outcome(outcome, display_name)
            job = client.create_batch_prediction_job(
                parent=PARENT,
                batch_prediction_job={
                    "display_name": display_name,
                    "model": f"{PARENT}/models/{model}",
                    "labels": labels,
                    "input_config": {"instances_format": "jsonl", "gcs_source": {"uris": [f"gs://{BUCKET}/i.jsonl"]}},
                    "output_config": {
                        "predictions_format": "jsonl",
                        "gcs_destination": {"output_uri_prefix": f"gs://{BUCKET}/out"},
                    },
                },
            )
            jobs[display_name] = poll(client, job.name, TERMINAL | {"JOB_STATE_PAUSED"})
        yield client, jobs


def _listed(client: aiplatform_v1.JobServiceClient, filter_: str) -> set[str]:
    """Display names of the jobs a filter lists (every page, two jobs a page)."""
    request = {"parent": PARENT, "filter": filter_, "page_size": 2}
    return {job.display_name for job in client.list_batch_prediction_jobs(request=request)}


@pytest.mark.parametrize(("filter_", "expected"), REFERENCE_EXAMPLES + OPERATOR_EXAMPLES + MORE_EXAMPLES)
def test_documented_filter_selects_the_right_jobs(listed, filter_: str, expected: set[str]) -> None:
    """Each documented example (and more of the grammar) is accepted and lists exactly the jobs it describes."""
    client, _ = listed
    assert _listed(client, filter_) == expected


def test_create_time_comparisons_with_a_jobs_own_time(listed) -> None:
    """Every create_time comparison, against one job's create time in RFC 3339, quoted or bare."""
    client, jobs = listed
    order = sorted(jobs, key=lambda name: jobs[name].create_time)
    stamp = jobs[order[1]].create_time.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    assert _listed(client, f'create_time="{stamp}"') == {order[1]}
    assert _listed(client, f"create_time!={stamp}") == ALL - {order[1]}
    assert _listed(client, f'create_time<"{stamp}"') == {order[0]}
    assert _listed(client, f'create_time<="{stamp}"') == set(order[:2])
    assert _listed(client, f'create_time>"{stamp}"') == set(order[2:])
    assert _listed(client, f'create_time>="{stamp}"') == set(order[1:])


def test_the_providers_own_poll_filter_is_served(listed) -> None:
    """The filter the provider's poller sends (provider label and create_time) keeps working."""
    client, _ = listed
    assert _listed(client, list_filter(datetime(2021, 1, 1, tzinfo=timezone.utc))) == set()


@pytest.mark.parametrize(
    ("filter_", "position", "why"),
    [
        ('display_name="a" OR', 19, "expected a field"),
        ('(state="JOB_STATE_FAILED"', 25, r"expected '\)'"),
        ('update_time>"2020-01-01T00:00:00Z"', 0, "'update_time' cannot be filtered"),
        ('state>"JOB_STATE_FAILED"', 0, "state supports =, !="),
        ('state="JOB_STATE_DONE"', 6, "not a job state"),
        ('model_display_name:"x*"', 0, "model_display_name supports =, !="),
        ('create_time>"yesterday"', 12, "not an RFC 3339 timestamp"),
        ('create_time>"2021-05-18"', 12, "not an RFC 3339 timestamp"),
        ('display_name="a', 13, "unterminated string"),
        ("display_name", 12, "expected an operator"),
        ('display_name="a")', 16, "unexpected"),
        ("labels.k=", 9, "expected a value"),
        ("(" * 40 + 'state="JOB_STATE_FAILED"' + ")" * 40, 33, "nested deeper than 32 levels"),
        ("NOT " * 40 + 'state="JOB_STATE_FAILED"', 131, "nested deeper than 32 levels"),
    ],
)
def test_refused_filter_names_the_position(listed, filter_: str, position: int, why: str) -> None:
    """A filter outside the grammar is INVALID_ARGUMENT naming where and why, never a silent full list."""
    client, _ = listed
    with pytest.raises(exceptions.InvalidArgument, match=rf"{why}.* at position {position}$"):
        _listed(client, filter_)


def test_keywords_are_whole_words() -> None:
    """``ANDROID`` is a bare value, not ``AND`` followed by ``ROID``; keywords are upper case (AIP-160)."""
    job = aiplatform_v1.BatchPredictionJob(display_name="ANDROID", labels={"os": "ANDROID"})
    assert parse_filter("labels.os=ANDROID", str)(job)
    assert parse_filter("labels.os=ANDROID display_name=ANDROID", str)(job)
    with pytest.raises(AbortError, match=r"expected an operator .* after 'and' at position 21"):
        parse_filter('display_name="x" and state="JOB_STATE_FAILED"', str)


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [("my_job_*", "my_job_2", True), ("my_job_*", "my_job", False), ("*", "", True), ("a.c", "abc", False)],
)
def test_wildcard_match(pattern: str, value: str, matches: bool) -> None:
    """``*`` is the only wildcard; everything else is literal."""
    assert wildcard_match(pattern, value) is matches
