"""The decode stage: each item in order with its fast read, or None where the exact decoder must read it."""

from __future__ import annotations

import json

from airflow_provider_video_actions.families.action_recognition import ACTION_RECOGNITION
from airflow_provider_video_actions.parse.chunks import LongLine
from airflow_provider_video_actions.parse.decode import OutputDecoder
from airflow_provider_video_actions.parse.keep import PredictionFilter
from tests.test_parse_lines import moment, served

GOOD = (json.dumps(served(moment())) + "\n").encode()


def test_fast_reads_come_back_in_order_and_long_lines_pass_through():
    decoder = OutputDecoder.for_job(ACTION_RECOGNITION, None)
    items = [("a", GOOD * n) for n in range(1, 6)] + [("a", LongLine(99)), ("b", b"not json\n")]
    read = list(decoder.read_ahead(items, PredictionFilter()))
    assert [(tag, item) for tag, item, _ in read] == items
    assert [fast.lines for _, _, fast in read[:5]] == [1, 2, 3, 4, 5]
    assert read[5][2] is None and read[6][2] is None  # a long line is not decoded; a bad chunk is refused


def test_the_exact_decoder_numbers_lines_from_the_first():
    decoded = OutputDecoder.for_job(ACTION_RECOGNITION, None).decode(GOOD + b"\n" + b"[1]\n", "f.jsonl", 10)
    assert (decoded.lines, decoded.blank_lines, len(decoded.instances)) == (3, 1, 1)
    assert [(error.line, error.kind) for error in decoded.errors] == [(12, "malformed")]


def test_a_typed_line_and_the_same_line_read_field_by_field_give_the_same_records():
    from airflow_provider_video_actions.families.action_recognition_answers import decode_exactly

    nested = served(moment(id=7), moment(confidence=1))  # read in one typed decode
    flattened = {**nested["instance"], "prediction": nested["prediction"]}  # read field by field
    typed, by_field = (decode_exactly(json.dumps(line).encode(), "f.jsonl", 1) for line in (nested, flattened))
    assert (typed.instances, typed.moments, typed.errors) == (by_field.instances, by_field.moments, [])
    assert [m.id for m in typed.moments[0]] == ["7", "7"] and typed.moments[0][1].confidence == 1.0
