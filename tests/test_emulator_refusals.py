"""Mistakes the emulator refuses as Vertex AI does reach the user: the task fails once, naming the model or region."""

from __future__ import annotations

import time

import pytest

from tests.conftest import BUCKET, run_dag, task_states, write_dag

MISTAKES = {
    "unknown model": ({"model": "999"}, "NOT_FOUND: Model `projects/test-project/locations/us-central1/models/999`"),
    "unknown gemini": (
        {"model": "gemini-0-nope", "action_labels": ["wave"]},
        "NOT_FOUND: Publisher Model `publishers/google/models/gemini-0-nope`",
    ),
    # allow_unlisted_region lets the region past the provider's own list, so the emulator is the one to refuse it.
    "unknown region": (
        {"region": "mars-north1", "allow_unlisted_region": True},
        "Location `mars-north1` is not a Vertex AI region",
    ),
}


@pytest.mark.parametrize(("options", "message"), MISTAKES.values(), ids=MISTAKES.keys())
def test_a_refused_create_fails_the_task_without_a_retry(airflow_db, emulator, instances_uri, capfd, options, message):
    dag_id = "refused_" + "_".join(sorted(options))
    kwargs = {
        "project_id": "test-project",
        "region": "us-central1",
        "model": "42",
        "gcs_source": instances_uri,
        "gcs_destination_prefix": f"gs://{BUCKET}/out",
        "retries": 2,
        "retry_delay": 0,
        **options,
    }
    write_dag(dag_id, f"VideoActionBatchPredictionOperator(task_id='predict', **{kwargs!r})")
    since = time.time()

    run = run_dag(dag_id)

    assert task_states(run) == {"predict": "failed"}
    assert run.get_task_instance("predict").try_number == 1
    refused = [c["method"] for c in emulator.call_log.entries() if c["time"] >= since and c["outcome"] != "OK"]
    assert len(refused) == 1, refused  # refused once (the create, or the list before it), never asked again
    assert message in capfd.readouterr().out
