"""The Gemini family without the emulator: model names, label sets, request lines, and every kind of answer."""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from google.cloud import aiplatform_v1
from google.protobuf import json_format

from airflow_provider_video_actions.families.dispatch import family_for
from airflow_provider_video_actions.families.gemini.request import GeminiAsk, check_action_labels
from airflow_provider_video_actions.job import JobSpec, VideoActionsValueError, VideoInstance
from airflow_provider_video_actions.operators.parse import ParseVideoActionPredictionsOperator
from airflow_provider_video_actions.operators.submit import VideoActionBatchPredictionOperator

LABELS = {"wave": "a hand waves", "jump": ""}
VIDEO = "gs://bkt/v.mp4"


def submit(**kwargs) -> VideoActionBatchPredictionOperator:
    args = {"task_id": "predict", "project_id": "my-project", "region": "us-central1", "gcs_destination_prefix": "gs://bkt/out",
            "videos": [VIDEO], **kwargs}  # fmt: skip
    return VideoActionBatchPredictionOperator(**args)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gemini-2.5-flash", "publishers/google/models/gemini-2.5-flash"),
        ("publishers/google/models/gemini-2.0-flash-001", "publishers/google/models/gemini-2.0-flash-001"),
        ("1234", "projects/p/locations/us-central1/models/1234"),
    ],
)
def test_model_names_are_normalised(model, expected):
    assert family_for(model).resource_name(model, "p", "us-central1") == expected


@pytest.mark.parametrize(
    "model", ["publishers/google/models/imagen-3", "projects/p/locations/x/publishers/meta/models/llama"]
)
def test_other_publisher_paths_are_refused(model):
    with pytest.raises(VideoActionsValueError, match="gemini-<version>"):
        family_for(model).resource_name(model, "p", "x")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "gemini-2.5-flash"}, "give action_labels"),
        ({"model": "1234", "action_labels": ["wave"]}, "only for Gemini models"),
        ({"model": "1234", "prompt": "be brief"}, "prompt is only for Gemini"),
        ({"model": "gemini-2.5-flash", "action_labels": []}, "non-empty list"),
        ({"model": "gemini-2.5-flash", "action_labels": "wave"}, "non-empty list"),
        ({"model": "gemini-2.5-flash", "action_labels": ["wave", "wave"]}, "given twice"),
        ({"model": "gemini-2.5-flash", "action_labels": {"wave": "two\nlines"}}, "one line"),
        ({"model": "gemini-2.5-flash", "action_labels": ["wave"], "machine_type": "n1-standard-4"}, "machine_type"),
    ],
)
def test_family_parameters_are_checked_at_construction(kwargs, message):
    with pytest.raises(VideoActionsValueError, match=message):
        submit(**kwargs)


def test_templated_model_is_checked_after_rendering():
    operator = submit(model="{{ params.model }}")  # unknown family until rendered: accepted here
    operator.model = "gemini-2.5-flash"
    with pytest.raises(VideoActionsValueError, match="give action_labels"):
        operator._check_rendered(literal_only=False)


def test_label_set_keeps_order_and_descriptions():
    assert check_action_labels(["wave", " jump "]) == {"wave": "", "jump": ""}
    assert list(check_action_labels({"b": "x", "a": None})) == ["b", "a"]


def test_request_line_is_a_valid_generate_content_request():
    instance = VideoInstance(VIDEO, "video/mp4", 30.0, 90.5)
    line = json.loads(GeminiAsk(LABELS, 0.4, 7, "Ignore the audio.").request_line(instance, 0))
    message = aiplatform_v1.GenerateContentRequest.pb()()
    json_format.ParseDict(line["request"], message)  # raises on any misplaced or misspelt field
    request = aiplatform_v1.GenerateContentRequest.wrap(message)
    video, text = request.contents[0].parts
    assert video.file_data.file_uri == VIDEO and video.file_data.mime_type == "video/mp4"
    assert video.video_metadata.start_offset.total_seconds() == 30.0
    assert video.video_metadata.end_offset.total_seconds() == 90.5
    schema = request.generation_config.response_schema.properties["moments"]
    assert list(schema.items.properties["label"].enum) == ["wave", "jump"] and schema.max_items == 7
    assert request.generation_config.response_mime_type == "application/json"
    for phrase in ("- wave: a hand waves", "- jump", "30.000 s to 90.500 s", "seconds from the start of the whole video",
                   "below 0.4", "at most 7", "Ignore the audio."):  # fmt: skip
        assert phrase in text.text


def test_gemini_job_has_no_model_parameters():
    for model, present in (("gemini-2.5-flash", False), ("1234", True)):
        family = family_for(model)
        spec = JobSpec("p", "us-central1", family.resource_name(model, "p", "us-central1"), "n", ("gs://b/i.jsonl",),
                       "gs://b", model_parameters=family.model_parameters(submit(model=model, **(
                           {"action_labels": ["wave"]} if not present else {}))._family_request()))  # fmt: skip
        assert ("model_parameters" in spec.to_proto()) is present


# ---------------------------------------------------------------------------------------------
# Parsing hand-written Gemini output lines.
# ---------------------------------------------------------------------------------------------


def request(video: str = VIDEO, start: str = "0s", end: str | None = None) -> dict:
    metadata = {"startOffset": start, **({"endOffset": end} if end else {})}
    schema = {"properties": {"moments": {"items": {"properties": {"label": {"enum": list(LABELS)}}}}}}
    return {"contents": [{"role": "user", "parts": [{"fileData": {"fileUri": video, "mimeType": "video/mp4"},
            "videoMetadata": metadata}, {"text": "..."}]}], "generationConfig": {"responseSchema": schema}}  # fmt: skip


def answered(text: str, finish: str = "STOP", **req) -> dict:
    content = {"role": "model", "parts": [{"text": text}]}
    return {"status": "", "request": request(**req), "response": {"candidates": [{"content": content, "finishReason": finish}]}}  # fmt: skip


def answer(*moments: tuple[str, float, float, float]) -> str:
    return json.dumps(
        {"moments": [dict(zip(("label", "start", "end", "confidence"), m, strict=True)) for m in moments]}
    )


def parse(tmp_path, *lines: dict | str, **kwargs) -> dict:
    out = tmp_path / "prediction-model-2026_01_01T00_00_00_000000Z"
    out.mkdir(exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (out / "predictions.jsonl").write_text(text)
    return ParseVideoActionPredictionsOperator(task_id="parse", output_directory=f"file://{out}", **kwargs).execute({})


def test_answers_become_the_action_recognition_records(tmp_path):
    result = parse(
        tmp_path, answered(answer(("jump", 41.5, 42.0, 0.7), ("wave", 31.25, 31.25, 0.9)), start="30s", end="90.5s")
    )
    assert result["predictions"] == [
        {"video_uri": VIDEO, "segment_start": 30.0, "segment_end": 90.5, "label_id": "0", "label": "wave",
         "time_start": 31.25, "time_end": 31.25, "confidence": 0.9},
        {"video_uri": VIDEO, "segment_start": 30.0, "segment_end": 90.5, "label_id": "1", "label": "jump",
         "time_start": 41.5, "time_end": 42.0, "confidence": 0.7},
    ]  # fmt: skip
    assert result["label_counts"] == {"jump": 1, "wave": 1} and result["errors"] == 0 and result["instances"] == 1


@pytest.mark.parametrize(
    ("line", "code", "message"),
    [
        (answered(answer(("dance", 1, 1, 0.5))), 2, "label 'dance', which is not in the label set"),
        (answered('{"moments": [{"label": "wave", "start": "1"}]}'), 2, "does not match the response schema"),
        (
            answered('{"moments": [{"label": "wave", "start": 1, "end": 1, "confidence": 0.5, "x": 1}]}'),
            2,
            "does not match",
        ),
        (answered('{"moments": [{"label": "wave", "sta'), 2, "not complete JSON"),
        (answered('{"moments": [{"label": "wa', finish="MAX_TOKENS"), 2, "finishReason MAX_TOKENS"),
        (answered(answer(("wave", 1, 1, 1.5))), 2, "confidence 1.5"),
        (answered(answer(("wave", 95, 95, 0.5)), start="30s", end="90.5s"), 2, "outside the segment"),
        (answered(answer(("wave", 5, 5, 0.5)), start="30s"), 2, "outside the segment"),
        (answered(answer(("wave", 3, 2, 0.5))), 2, "ending before it starts"),
        ({"status": "", "request": request(), "response": {"promptFeedback": {"blockReason": "SAFETY"}}}, 2, "blocked"),
        ({"status": "", "request": request(), "response": {"candidates": []}}, 2, "no candidates"),
        (
            {"status": 'Not Found: {"error": {"code": 404, "status": "NOT_FOUND"}}', "request": request()},
            5,
            "Not Found",
        ),
        ({"status": "Something broke", "request": request()}, 2, "Something broke"),
        ({"status": {"code": 3, "message": "bad mime"}, "request": request()}, 3, "bad mime"),
    ],
)
def test_every_bad_line_is_an_error_record_naming_the_video(tmp_path, line, code, message):
    result = parse(tmp_path, line, answered(answer(("wave", 1, 1, 0.5)), video="gs://b/ok.mp4"))
    assert [p["video_uri"] for p in result["predictions"]] == ["gs://b/ok.mp4"]
    [error] = result["error_records"]
    assert error["video_uri"] == VIDEO and error["code"] == code and message in error["message"], error
    assert result["malformed_lines"] == 0


def test_unreadable_lines_are_malformed(tmp_path):
    result = parse(tmp_path, '{"status": "", "request": {"contents": []}}', '{"response": {"candidates": [')
    assert result["malformed_lines"] == 2 and result["errors"] == 2
    assert "no fileData.fileUri" in result["error_records"][0]["message"]


def test_threshold_and_limit_from_the_job_are_enforced(tmp_path):
    job = {"output_directory": "unused", "gemini": {"action_labels": list(LABELS), "confidence_threshold": 0.3,
           "max_predictions": 2}}  # fmt: skip
    moments = [("wave", 1, 1, 0.2), ("jump", 2, 2, 0.5), ("wave", 3, 3, 0.9), ("jump", 4, 4, 0.4)]
    line = answered(answer(*moments))
    out = tmp_path / "prediction-model-x"
    out.mkdir()
    (out / "predictions.jsonl").write_text(json.dumps(line) + "\n")
    job["output_directory"] = f"file://{out}"
    result = ParseVideoActionPredictionsOperator(task_id="parse", job=job).execute({})
    assert [(p["time_start"], p["confidence"]) for p in result["predictions"]] == [(2, 0.5), (3, 0.9)]


def test_label_set_from_the_parameter_overrides_the_echoed_schema(tmp_path):
    result = parse(tmp_path, answered(answer(("jump", 1, 1, 0.5))), action_labels=["wave"])
    assert result["rows"] == 0 and "not in the label set ['wave']" in result["error_records"][0]["message"]


def test_snake_case_echoes_are_read_too(tmp_path):
    line = json.dumps(answered(answer(("wave", 1, 1, 0.5))))
    for camel, snake in (("fileData", "file_data"), ("fileUri", "file_uri"), ("finishReason", "finish_reason"),
                         ("generationConfig", "generation_config"), ("responseSchema", "response_schema")):  # fmt: skip
        line = line.replace(f'"{camel}"', f'"{snake}"')
    assert parse(tmp_path, line)["label_counts"] == {"wave": 1}


def test_the_family_is_the_jobs_not_guessed_per_line(tmp_path):
    """A Gemini job's file (predictions.jsonl) is read by the Gemini decoder only: a stray action recognition line
    is one error record of its own, and the Gemini answer beside it is kept."""
    automl = {"instance": {"content": "gs://b/a.mp4", "mimeType": "video/mp4"},
              "prediction": [{"id": "9", "displayName": "wave", "timeSegmentStart": "1s", "timeSegmentEnd": "1s",
                              "confidence": 0.8}]}  # fmt: skip
    result = parse(tmp_path, automl, answered(answer(("wave", 1, 1, 0.5))))
    assert [(p["video_uri"], p["label_id"]) for p in result["predictions"]] == [(VIDEO, "0")]
    assert [(e["line"], e["kind"]) for e in result["error_records"]] == [(1, "malformed")]
    assert result["lines"] == result["instances"] + result["errors"] == 2


def test_answers_join_their_instance_by_the_request_label(tmp_path):
    """The echo may lack the video (here fileData is null): the label's index into the instances file names it."""
    instances = [VideoInstance("gs://bkt/a.mp4", "video/mp4"), VideoInstance(VIDEO, "video/mp4", 30.0, 90.5)]
    ask = GeminiAsk(LABELS, 0.0, 5)
    (tmp_path / "instances.jsonl").write_text("".join(line + "\n" for line in ask.request_lines(instances)))
    line = answered(answer(("wave", 31, 31, 0.5)))
    line["request"]["contents"][0]["parts"][0]["fileData"] = None
    line["request"]["labels"] = {"video-actions-instance": "1", "airflow-provider": "video-actions"}
    out = tmp_path / "prediction-model-x"
    out.mkdir()
    (out / "predictions.jsonl").write_text(json.dumps(line) + "\n")
    job = {"output_directory": f"file://{out}", "instances_uris": [f"file://{tmp_path}/instances.jsonl"]}
    [record] = ParseVideoActionPredictionsOperator(task_id="parse", job=job).execute({})["predictions"]
    assert (record["video_uri"], record["segment_start"], record["segment_end"]) == (VIDEO, 30.0, 90.5)


@pytest.mark.parametrize("state", ["JOB_STATE_FAILED", "JOB_STATE_CANCELLED"])
def test_a_failed_job_is_parsed_only_with_allow_partial(tmp_path, state):
    out = tmp_path / "prediction-model-x"
    out.mkdir()
    (out / "predictions.jsonl").write_text(json.dumps(answered(answer(("wave", 1, 1, 0.5)))) + "\n")
    job = {"name": "j", "state": state, "output_directory": f"file://{out}"}
    with pytest.raises(AirflowFailException, match="allow_partial=True"):
        ParseVideoActionPredictionsOperator(task_id="parse", job=job).execute({})
    parsed = ParseVideoActionPredictionsOperator(task_id="parse", job=job, allow_partial=True).execute({})
    assert parsed["label_counts"] == {"wave": 1}


def test_a_deleted_instances_file_falls_back_to_the_echo(tmp_path):
    """The instances file is gone since the job ran: answers join by their echoed request, the parse goes on."""
    from airflow_provider_video_actions import gcs
    from airflow_provider_video_actions.families.gemini.answers import InstanceIndex

    index = InstanceIndex([f"file://{tmp_path}/gone.jsonl"], lambda uri: gcs.open_read(None, uri))
    assert index.get(0) is None


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ({"seconds": -100}, None),
        ({"seconds": "5_0"}, None),
        ({"seconds": "nan"}, None),
        ({"seconds": "-1"}, None),
        ({"seconds": "9" * 5000}, None),
        ({"seconds": 2**70}, None),
        ({"seconds": 1, "nanos": -1}, None),
        ({"seconds": 1, "nanos": 10**9}, None),
        ({"seconds": 0}, {"seconds": -1}),
    ],
)
def test_an_offset_written_as_a_duration_object_keeps_the_seconds_rules(tmp_path, start, end):
    """A Duration object skipped the rules a "30s" string keeps: negative, NaN or odd seconds made records."""
    line = answered(answer(("wave", 1.0, 2.0, 0.5)), start=start, end=end)
    result = parse(tmp_path, line, action_labels=list(LABELS))
    assert result["predictions"] == [] and result["moments"] == 0
    [error] = result["error_records"]
    assert "videoMetadata." in error["message"] and "Offset" in error["message"], error
