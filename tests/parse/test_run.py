"""The run: one Parse object takes every line of several files through the stages, numbered per file."""

from __future__ import annotations

import json
import logging

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_video_actions import ParseVideoActionPredictionsOperator
from airflow_provider_video_actions.families.action_recognition import ACTION_RECOGNITION
from airflow_provider_video_actions.parse.decode import OutputDecoder
from airflow_provider_video_actions.parse.keep import PredictionFilter
from airflow_provider_video_actions.parse.run import Parse, ParseProgress
from airflow_provider_video_actions.parse.sinks import Sinks
from tests.test_parse_lines import moment, served

GOOD = json.dumps(served(moment())) + "\n"


def a_parse(uris: list[str], **limits) -> Parse:
    progress = ParseProgress(logging.getLogger("test"), 60.0, total_bytes=1, files=len(uris))
    decoder = OutputDecoder.for_job(ACTION_RECOGNITION, None)
    return Parse(None, decoder, PredictionFilter(), Sinks(None, None, None, 1_000_000), progress, **limits)


def test_every_line_of_every_file_is_counted_and_numbered_in_its_file(tmp_path):
    (tmp_path / "a.jsonl").write_text(GOOD * 3)
    (tmp_path / "b.jsonl").write_text(GOOD + "x" * 400 + "\n" + "{oops\n" + GOOD)
    uris = [f"file://{tmp_path}/a.jsonl", f"file://{tmp_path}/b.jsonl"]
    parse = a_parse(uris, max_line_bytes=300)
    result = parse.run(uris)
    assert (result["lines"], result["rows"], result["malformed_lines"]) == (7, 5, 2)
    assert [(e["file"], e["line"]) for e in result["error_records"]] == [(uris[1], 2), (uris[1], 3)]
    assert "longer than max_line_bytes=300" in result["error_records"][0]["message"]
    assert parse.stats.rows == 5 and parse.progress.files_started == 2


def test_past_max_malformed_lines_the_parse_fails_naming_the_line(tmp_path):
    (tmp_path / "a.jsonl").write_text(GOOD + "[1]\n" + "[2]\n")
    with pytest.raises(AirflowException, match=r"max_malformed_lines=1 .*/a.jsonl line 3"):
        a_parse([], max_malformed_lines=1).run([f"file://{tmp_path}/a.jsonl"])


def test_the_operator_does_not_rewrite_its_destination(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "predictions_00001.jsonl").write_text(GOOD)
    operator = ParseVideoActionPredictionsOperator(
        task_id="p", output_directory=f"file://{tmp_path}/out", destination=f"file://{tmp_path}/parts/", shard="0/2"
    )
    result = operator.execute({})
    assert result["uri"] == f"file://{tmp_path}/parts/part-00000-of-00002.parquet"
    assert operator.destination == f"file://{tmp_path}/parts/"
