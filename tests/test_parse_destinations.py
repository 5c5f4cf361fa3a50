"""Where the parse operator writes, and what it returns: files people trust, a bounded return value."""

from __future__ import annotations

import csv
import json
import os
import stat

import msgspec
import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_video_actions.job import VideoActionsValueError
from tests.conftest import BUCKET
from tests.test_parse import instance, moment, output_dir, parse  # noqa: F401 - output_dir is a fixture


def write_lines(path, lines: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.Encoder().encode_lines(lines))


@pytest.fixture
def clean_dir(tmp_path):
    """A job output directory without any error."""
    out = tmp_path / "clean"
    write_lines(
        out / "predictions_00001.jsonl",
        [{"instance": instance("gs://b/a.mp4"), "prediction": [moment("wave", 1, 0.9)]}],
    )
    return f"file://{out}"


def test_errors_file_of_an_earlier_run_is_removed_by_a_clean_run(output_dir, clean_dir, tmp_path):  # noqa: F811
    dest = tmp_path / "parsed" / "moments.jsonl"
    assert parse(output_directory=output_dir, destination=f"file://{dest}")["errors"] == 3
    assert (tmp_path / "parsed" / "moments.errors.jsonl").exists()
    result = parse(output_directory=clean_dir, destination=f"file://{dest}")
    assert result["errors_uri"] is None and not (tmp_path / "parsed" / "moments.errors.jsonl").exists()


def test_errors_file_of_an_earlier_run_is_removed_on_gcs(emulator, storage_client, output_dir, clean_dir):  # noqa: F811
    bucket = storage_client.bucket(BUCKET)
    dest = f"gs://{BUCKET}/companion/moments.parquet"
    assert parse(output_directory=output_dir, destination=dest)["errors"] == 3
    assert bucket.blob("companion/moments.errors.jsonl").exists()
    assert parse(output_directory=clean_dir, destination=dest)["errors_uri"] is None
    assert (
        not bucket.blob("companion/moments.errors.jsonl").exists() and bucket.blob("companion/moments.parquet").exists()
    )


def test_an_existing_destinations_mode_is_kept_and_a_new_one_gets_the_umask(output_dir, tmp_path):  # noqa: F811
    kept, new = tmp_path / "kept.csv", tmp_path / "new.csv"
    kept.write_text("old")
    kept.chmod(0o640)
    parse(output_directory=output_dir, destination=f"file://{kept}")
    parse(output_directory=output_dir, destination=f"file://{new}")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "new.errors.jsonl").stat().st_mode) == 0o666 & ~umask


def test_a_failed_parse_leaves_the_old_destination_whole(output_dir, tmp_path):  # noqa: F811
    dest = tmp_path / "moments.jsonl"
    dest.write_text("old\n")
    with pytest.raises(AirflowException):
        parse(output_directory=output_dir, destination=f"file://{dest}", max_malformed_lines=0)
    assert dest.read_text() == "old\n" and [p.name for p in tmp_path.iterdir() if p.is_file()] == ["moments.jsonl"]


def test_file_uris_follow_rfc_8089(output_dir, tmp_path, monkeypatch):  # noqa: F811
    """``file://localhost/path`` is ``/path``; a relative ``./localhost/...`` is never written; another host is refused."""
    monkeypatch.chdir(tmp_path)
    dest = tmp_path / "rfc" / "moments.jsonl"
    source = output_dir.replace("file://", "file://localhost", 1)
    result = parse(output_directory=source, destination=f"file://localhost{dest}")
    assert result["rows"] == 3 and dest.exists() and not (tmp_path / "localhost").exists()
    with pytest.raises(VideoActionsValueError, match=r"destination: 'file://fileserver/tmp/x.jsonl' names host"):
        parse(output_directory=output_dir, destination="file://fileserver/tmp/x.jsonl")
    with pytest.raises(AirflowFailException, match=r"job\['output_directory'\]: 'file://fileserver/out' names host"):
        parse(job={"output_directory": "file://fileserver/out"})


def test_csv_cells_that_spreadsheets_read_as_formulas_are_escaped(tmp_path):
    labels = ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(A1)", "\tx", "\rx", "wave", "a=b"]
    write_lines(
        tmp_path / "out" / "predictions_00001.jsonl",
        [{"instance": instance("=cmd|'/c calc'!A1"), "prediction": [moment(label, 1, 0.5, "-7") for label in labels]}],
    )
    dest = tmp_path / "moments.csv"
    parse(output_directory=f"file://{tmp_path / 'out'}", destination=f"file://{dest}")
    rows = list(csv.DictReader(dest.open(newline="")))
    assert [r["label"] for r in rows] == ["'" + label for label in labels[:6]] + ["wave", "a=b"]
    assert {r["video_uri"] for r in rows} == {"'=cmd|'/c calc'!A1"} and {r["label_id"] for r in rows} == {"'-7"}
    assert {r["time_start"] for r in rows} == {"1.0"}  # numbers are numbers, not text


def test_return_value_stays_in_the_xcom_budget_with_many_labels(tmp_path):
    """100k distinct labels: the summary names the most frequent ones and counts the rest."""
    lines = [
        {"instance": instance(f"gs://b/{n}.mp4"), "prediction": [moment(f"label-{n:06d}-" + "x" * 40, 1, 0.5)]}
        for n in range(100_000)
    ]
    write_lines(tmp_path / "out" / "predictions_00001.jsonl", lines)
    result = parse(output_directory=f"file://{tmp_path / 'out'}", destination=f"file://{tmp_path / 'p.parquet'}")
    assert len(json.dumps(result)) < 1024 * 1024
    assert result["rows"] == 100_000 and len(result["label_counts"]) == 1000 and result["labels_omitted"] == 99_000
    with pytest.raises(AirflowFailException, match=r"passes max_xcom_bytes=20000"):
        parse(
            output_directory=f"file://{tmp_path / 'out'}",
            destination=f"file://{tmp_path / 'p.parquet'}",
            max_xcom_bytes=20_000,
        )


def test_a_huge_error_message_is_cut_in_samples_and_logs(tmp_path, capsys):
    message = "E" * 5_000_000
    write_lines(
        tmp_path / "out" / "errors_00001.jsonl",
        [{"instance": instance("gs://b/a.mp4"), "error": {"code": 13, "message": message}}],
    )
    result = parse(output_directory=f"file://{tmp_path / 'out'}", destination=f"file://{tmp_path / 'p.jsonl'}")
    [sample] = result["error_samples"]
    assert sample["message"] == "E" * 500 + "... [4999500 more characters]"
    assert len(json.dumps(result)) < 10_000
    captured = capsys.readouterr()
    assert "[4999500 more characters]" in captured.out + captured.err and len(captured.out + captured.err) < 100_000
    errors_file = (tmp_path / "p.errors.jsonl").read_text()
    assert json.loads(errors_file)["message"] == message  # the errors file keeps the whole message
