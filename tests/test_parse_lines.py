"""Every output line accounted for, whatever it holds (issue 11, items 1-4), through the parse operator."""

from __future__ import annotations

import json

import pytest

from airflow_provider_video_actions.families.action_recognition_answers import decode_exactly
from airflow_provider_video_actions.job import VideoActionsValueError
from airflow_provider_video_actions.operators.parse import ParseVideoActionPredictionsOperator
from airflow_provider_video_actions.predictions import DecodedChunk


def moment(**fields) -> dict:
    return {"id": "7", "displayName": "wave", "timeSegmentStart": "3s", "timeSegmentEnd": "3s", "confidence": 0.5,
            **fields}  # fmt: skip


def served(*moments: dict, start: str = "2s", end: str = "4s", **extra) -> dict:
    instance = {"content": "gs://b/v.mp4", "mimeType": "video/mp4", "timeSegmentStart": start, "timeSegmentEnd": end}
    return {"instance": instance, "prediction": list(moments), **extra}


def parse(tmp_path, *lines: dict | str | bytes, name: str = "predictions_00001.jsonl", **kwargs) -> dict:
    out = tmp_path / "prediction-model-2026_01_01T00_00_00_000Z"
    out.mkdir(exist_ok=True)
    raw = [line if isinstance(line, bytes) else (line if isinstance(line, str) else json.dumps(line)).encode()
           for line in lines]  # fmt: skip
    (out / name).write_bytes(b"".join(line + b"\n" for line in raw))
    result = ParseVideoActionPredictionsOperator(task_id="parse", output_directory=f"file://{out}", **kwargs).execute(
        {}
    )
    assert_accounted(result)
    return result


def assert_accounted(result: dict) -> None:
    """Lines and moments add up, and each error record names its file and line."""
    kinds = [e["kind"] for e in result["error_records"]]
    assert (
        result["lines"]
        == result["instances"] + result["job_errors"] + result["malformed_lines"] + result["invalid_lines"]
    ), result
    assert result["moments"] == result["rows"] + result["filtered_moments"] + result["invalid_moments"], result
    assert len(kinds) == result["errors"] and kinds.count("invalid_moment") == result["invalid_moments"]
    assert all(e["file"].endswith(".jsonl") and e["line"] >= 1 for e in result["error_records"])


# Item 1: one bad value never aborts the parse.


@pytest.mark.parametrize("value", ["-1s", "Infinity", "abc", "0x10s", "1e309s", "1_000s", "\u0661\u0662s", "3", 3])
def test_a_bad_moment_time_is_an_error_record_naming_file_line_and_field(tmp_path, value):
    result = parse(tmp_path, served(moment(confidence=0.9), moment(timeSegmentStart=value), moment(confidence=0.1)))
    assert [p["confidence"] for p in result["predictions"]] == [0.9, 0.1]  # the good moments of the line stay
    [error] = result["error_records"]
    assert (error["kind"], error["line"], error["video_uri"]) == ("invalid_moment", 1, "gs://b/v.mp4")
    assert "prediction[1].timeSegmentStart" in error["message"] and error["file"].endswith("predictions_00001.jsonl")


def test_json_nested_too_deep_is_a_malformed_line(tmp_path):
    deep = '{"instance": {"content": "gs://b/v.mp4"}, "prediction": [], "x": ' + "[" * 1000 + "]" * 1000 + "}"
    result = parse(tmp_path, served(moment()), deep, served(moment()))
    assert result["rows"] == 2 and result["malformed_lines"] == 1
    assert result["error_records"][0]["line"] == 2 and "nested too deep" in result["error_records"][0]["message"]


def test_gemini_json_nested_too_deep_is_a_malformed_line(tmp_path):
    deep = '{"status": "", "request": ' + '{"a": ' * 500 + "1" + "}" * 500 + "}"
    result = parse(tmp_path, deep, name="predictions.jsonl", action_labels=["wave"])
    assert result["malformed_lines"] == 1 and result["error_records"][0]["line"] == 1


# Item 2: action recognition moments get Gemini's value rules.


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"confidence": -3}, "confidence"),
        ({"confidence": 7.5}, "confidence"),
        ({"confidence": "0.5"}, "confidence"),
        ({"timeSegmentStart": "3.5s", "timeSegmentEnd": "3s"}, "timeSegmentEnd"),
        ({"timeSegmentStart": "100s", "timeSegmentEnd": "100s"}, "timeSegmentStart"),
        ({"timeSegmentStart": "1s", "timeSegmentEnd": "1s"}, "timeSegmentStart"),
        ({"displayName": ""}, "displayName"),
        ({"id": None}, "id"),
    ],
)
def test_moments_breaking_the_rules_are_error_records(tmp_path, bad, field):
    result = parse(tmp_path, served(moment(**bad), moment(confidence=0.2)), top_k=1)
    assert [p["confidence"] for p in result["predictions"]] == [0.2]  # 7.5 does not win top_k=1
    [error] = result["error_records"]
    assert error["kind"] == "invalid_moment" and f"prediction[0].{field}" in error["message"], error


def test_a_moment_with_only_a_confidence_is_not_a_record(tmp_path):
    result = parse(tmp_path, served({"confidence": 0.9}))
    assert result["rows"] == 0 and result["invalid_moments"] == 1


def test_moments_within_the_documented_tolerance_of_the_segment_are_kept(tmp_path):
    edge = moment(timeSegmentStart="1.9995s", timeSegmentEnd="4.0005s")
    assert parse(tmp_path, served(edge))["rows"] == 1


# Item 3: error lines keep what they carry; malformed means unreadable.


def test_an_error_line_with_an_odd_segment_keeps_its_code_and_video(tmp_path):
    line = {"instance": {"content": "gs://b/v.mp4", "timeSegmentStart": "zz", "timeSegmentEnd": "9s"},
            "error": {"code": 5, "message": "not found"}}  # fmt: skip
    result = parse(tmp_path, line, name="errors_00001.jsonl")
    [error] = result["error_records"]
    assert (error["kind"], error["code"], error["video_uri"]) == ("job_error", 5, "gs://b/v.mp4")
    assert (error["segment_start"], error["segment_end"]) == (None, 9.0)


def test_an_error_line_without_code_is_a_job_error_not_malformed(tmp_path):
    line = {"instance": {"content": "gs://b/v.mp4"}, "error": {"message": "quota"}}
    result = parse(tmp_path, line, name="errors_00001.jsonl", max_malformed_lines=0)
    assert (result["job_errors"], result["malformed_lines"]) == (1, 0)


# Item 4: the family is known, not guessed per line.


def test_an_action_recognition_line_with_a_status_key_keeps_its_moments(tmp_path):
    result = parse(tmp_path, served(moment(), status=""))
    assert result["rows"] == 1 and result["errors"] == 0


def test_model_family_says_whose_output_it_is(tmp_path):
    result = parse(tmp_path, served(moment()), name="predictions.jsonl", model_family="action_recognition")
    assert result["rows"] == 1


def test_a_directory_with_both_families_files_asks_for_model_family(tmp_path):
    out = tmp_path / "prediction-model-2026_01_01T00_00_00_000Z"
    out.mkdir()
    (out / "predictions.jsonl").write_text(json.dumps(served(moment())) + "\n")
    with pytest.raises(Exception, match="model_family"):
        parse(tmp_path, served(moment()))


def test_counts_add_up_over_every_kind_of_line(tmp_path):
    lines = [served(moment(), moment(confidence=0.05)), "", "not json", served(moment(confidence=2)),
             served(moment(), start="5s"), json.dumps({"instance": {"content": "gs://b/x.mp4"}, "error": {"code": 3}})]  # fmt: skip
    result = parse(tmp_path, *lines, min_confidence=0.1)
    assert (result["lines"], result["rows"], result["filtered_moments"]) == (5, 1, 1)
    assert (result["malformed_lines"], result["invalid_lines"], result["invalid_moments"], result["job_errors"]) == (
        1, 1, 1, 1,
    )  # fmt: skip


def test_integers_too_large_for_a_float_are_error_records(tmp_path):
    big = "1" + "0" * 400
    segment = f'{{"instance": {{"content": "gs://b/v.mp4", "timeSegmentStart": {big}}}, "prediction": []}}'
    error = f'{{"instance": {{"content": "gs://b/v.mp4", "timeSegmentEnd": {big}}}, "error": {{"code": {big}}}}}'
    result = parse(tmp_path, segment, error)
    assert [(e["kind"], e["code"]) for e in result["error_records"]] == [("invalid_line", None), ("job_error", None)]


def test_a_gemini_offset_with_unreadable_seconds_is_a_malformed_line(tmp_path):
    line = {"status": "", "request": {"contents": [{"parts": [{"fileData": {"fileUri": "gs://b/v.mp4"},
            "videoMetadata": {"startOffset": {"seconds": "abc"}}}]}]}, "response": {}}  # fmt: skip
    result = parse(tmp_path, line, name="predictions.jsonl", action_labels=["wave"])
    assert result["malformed_lines"] == 1


def decode(*lines: str) -> DecodedChunk:
    """The exact decoder's reading of whole lines (no operator, no files)."""
    return decode_exactly("".join(f"{line}\n" for line in lines).encode(), "predictions_00001.jsonl", 1)


@pytest.mark.parametrize("code", ["7" * 5000, "99999999999", "2147483648"])
def test_an_error_code_of_too_many_digits_is_no_code(code):
    decoded = decode(json.dumps({"instance": {"content": "gs://b/v.mp4"}, "error": {"code": code, "message": "m"}}))
    [error] = decoded.errors
    assert (error.kind, error.code, error.message) == ("job_error", None, "m")


def test_a_moment_value_nested_just_under_the_decoder_limit_is_an_invalid_moment():
    line = json.dumps(served(moment(), moment(displayName="X")))
    for depth in range(1000, 0, -1):  # the deepest value the decoder reads here (the limit depends on the stack)
        decoded = decode(line.replace('"X"', "[" * depth + "]" * depth))
        if decoded.errors[0].kind != "malformed":
            break
    [error] = decoded.errors
    assert error.kind == "invalid_moment" and "prediction[1].displayName" in error.message, depth
    assert len(error.message) < 300 and [len(kept) for kept in decoded.moments] == [1]


@pytest.mark.parametrize("field", ["timeSegmentStart", "timeSegmentEnd"])
def test_a_huge_segment_bound_gives_a_short_message(field):
    decoded = decode(
        json.dumps(served(moment(), **{}) | {"instance": {"content": "gs://b/v.mp4", field: "9" * 100_000 + "x"}})
    )
    [error] = decoded.errors
    assert error.kind == "invalid_line" and f"instance.{field}" in error.message and len(error.message) < 400


def test_a_huge_moment_time_gives_a_short_message():
    decoded = decode(json.dumps(served(moment(timeSegmentEnd="9" * 100_000 + "s"))))
    [error] = decoded.errors
    assert error.kind == "invalid_moment" and "timeSegmentEnd" in error.message and len(error.message) < 400


def test_a_long_parse_logs_its_progress_between_parsing_and_parsed(tmp_path, capfd, caplog):
    """With a tiny progress_interval each chunk (here each file) ends with a progress line: its content is checked."""
    import logging
    import re

    out = tmp_path / "prediction-model-2026_01_01T00_00_00_000Z"
    out.mkdir()
    for n in (1, 2):
        (out / f"predictions_0000{n}.jsonl").write_text("".join(json.dumps(served(moment())) + "\n" for _ in range(3)))
    first, total = (out / "predictions_00001.jsonl").stat().st_size, sum(f.stat().st_size for f in out.iterdir())
    operator = ParseVideoActionPredictionsOperator(
        task_id="parse", output_directory=f"file://{out}", progress_interval=1e-9
    )
    capfd.readouterr()
    with caplog.at_level(logging.INFO):
        assert operator.execute({})["rows"] == 6
    lines = task_log(capfd, caplog).splitlines()
    started = next(i for i, line in enumerate(lines) if "Parsing 2 predictions files and 0 errors files" in line)
    ended = next(i for i, line in enumerate(lines) if "Parsed 6 moments from 1 video; 0 errors" in line)
    progress = [line for line in lines[started:ended] if "Progress: " in line]
    rate = r"[0-9]+\.[0-9] MB/s"
    assert re.search(
        rf"Progress: {first:,} of {total:,} bytes read \(50%\), 3 rows, {rate}; 2 of 2 files left\b", progress[0]
    )
    assert re.search(
        rf"Progress: {total:,} of {total:,} bytes read \(100%\), 6 rows, {rate}; 1 of 2 files left\b", progress[-1]
    )


def test_the_progress_interval_must_be_positive():
    with pytest.raises(VideoActionsValueError, match="progress_interval must be a finite positive number of seconds"):
        ParseVideoActionPredictionsOperator(task_id="parse", output_directory="gs://b/o/", progress_interval=0)


def test_log_counts_agree_with_their_nouns(tmp_path, capfd, caplog):
    """One of each: '1 moment', '1 video', '1 error', '1 predictions file'; no 'a action_recognition job'."""
    import logging

    capfd.readouterr()
    with caplog.at_level(logging.INFO):
        parse(tmp_path, served(moment()), "not json")
    log = task_log(capfd, caplog)
    assert "Parsing 1 predictions file and 0 errors files (model family action_recognition) from file://" in log
    assert "Parsed 1 moment from 1 video; 1 error" in log


def task_log(capfd, caplog) -> str:
    """The task log: printed by Airflow 3's structlog, or records of Airflow 2's logging."""
    return capfd.readouterr().out + "\n".join(record.getMessage() for record in caplog.records)
