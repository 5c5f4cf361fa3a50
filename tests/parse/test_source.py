"""The source stage: a job's own output files, and their chunks tagged with the file, one file after another."""

from __future__ import annotations

from airflow_provider_video_actions.parse.chunks import LongLine
from airflow_provider_video_actions.parse.source import file_chunks, output_files


def test_only_the_files_vertex_ai_names_are_output(tmp_path):
    for name in ("predictions_00002.jsonl", "predictions_00001.jsonl", "errors_00001.jsonl", "notes.txt"):
        (tmp_path / name).write_text("{}\n")
    (tmp_path / "incremental_predictions").mkdir()
    predictions, errors, sizes = output_files(None, f"file://{tmp_path}")
    assert [uri.rsplit("/", 1)[1] for uri in predictions] == ["predictions_00001.jsonl", "predictions_00002.jsonl"]
    assert [uri.rsplit("/", 1)[1] for uri in errors] == ["errors_00001.jsonl"]
    assert set(sizes) == {*predictions, *errors} and set(sizes.values()) == {3}


def test_chunks_are_tagged_with_their_file_in_order(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b"1\n2\n")
    (tmp_path / "b.jsonl").write_bytes(b"3\n" + b"x" * 50 + b"\n4")
    uris = [f"file://{tmp_path}/a.jsonl", f"file://{tmp_path}/b.jsonl"]
    items = list(file_chunks(None, uris, chunk_bytes=1024, max_line_bytes=20))
    assert items == [(uris[0], b"1\n2\n"), (uris[1], b"3\n"), (uris[1], LongLine(50)), (uris[1], b"4")]
