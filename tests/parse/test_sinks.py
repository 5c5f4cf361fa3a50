"""The sinks stage: XCom within its byte budget, or the destination with an errors file only when there are errors."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_video_actions.parse.sinks import Sinks
from airflow_provider_video_actions.predictions import error_columns, malformed

RECORD = (["gs://b/v.mp4"], [0.0], [None], ["1"], ["wave"], [0.0], [1.0], [0.5])


def test_xcom_records_go_out_with_the_summary_and_are_charged():
    sinks = Sinks(None, None, None, max_xcom_bytes=10_000)
    with ExitStack() as stack:
        sinks.open(stack)
        sinks.records.write(RECORD)
        sinks.errors.write(error_columns([malformed("not JSON", "f.jsonl", 3)]))
        sinks.close()
    result = sinks.finish({"rows": 1}, errors=1)
    assert result["predictions"][0]["label"] == "wave" and result["error_records"][0]["line"] == 3
    assert 0 < sinks.budget.used < 10_000


def test_the_budget_fails_without_a_retry_naming_the_fix():
    sinks = Sinks(None, None, None, max_xcom_bytes=10)
    with ExitStack() as stack, pytest.raises(AirflowFailException, match=r"max_xcom_bytes=10.*destination="):
        sinks.open(stack)
        sinks.records.write(RECORD)


def test_a_file_destination_has_an_errors_file_only_with_errors(tmp_path):
    (tmp_path / "out.errors.jsonl").write_text("an earlier run's\n")
    sinks = Sinks(None, f"file://{tmp_path}/out.jsonl", ".jsonl", max_xcom_bytes=10)
    with ExitStack() as stack:
        sinks.open(stack)
        sinks.records.write(RECORD)
        sinks.close()
    result = sinks.finish({"rows": 1}, errors=0)
    assert (result["uri"], result["errors_uri"]) == (f"file://{tmp_path}/out.jsonl", None)
    assert '"label":"wave"' in (tmp_path / "out.jsonl").read_text()
    assert not (tmp_path / "out.errors.jsonl").exists()
