"""The example DAG loads, the provider registers with Airflow, and the package root stays light."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points, version

from airflow_provider_video_actions import __version__
from airflow_provider_video_actions.job import console_url
from tests.conftest import ROOT, dag_bag


def test_example_dags_load_without_import_errors(airflow_db):
    bag = dag_bag(ROOT / "dags")
    assert bag.import_errors == {}
    assert {"video_action_recognition", "video_actions_lineage_producer", "video_actions_lineage_consumer"} <= set(
        bag.dags
    )
    assert {t.task_id for t in bag.dags["video_action_recognition"].tasks} == {
        "list_videos", "predict", "parse_to_xcom", "parse_to_parquet", "print_table", "draw_timeline",
    }  # fmt: skip


def test_provider_info_is_registered():
    [ep] = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_provider_video")]
    info = ep.load()()
    assert info["package-name"] == "airflow-provider-video-actions"
    assert "connection-types" not in info  # the Google connection type is reused
    assert info["extra-links"] == ["airflow_provider_video_actions.links.VideoActionBatchPredictionJobLink"]
    assert info["version"] == __version__ == version("airflow-provider-video-actions")


def test_airflow_providers_list_shows_the_provider(airflow_db):
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "-o", "plain"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "airflow-provider-video-actions" in out


def test_root_import_is_lazy():
    code = (
        "import sys, airflow_provider_video_actions as p; "
        "assert 'google.cloud.aiplatform_v1' not in sys.modules; "
        "p.VideoActionBatchPredictionOperator; "
        "assert 'google.cloud.aiplatform_v1' not in sys.modules and 'pyarrow' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_console_link():
    url = console_url("projects/my-project/locations/europe-west4/batchPredictionJobs/42")
    assert (
        url
        == "https://console.cloud.google.com/vertex-ai/locations/europe-west4/batch-predictions/42?project=my-project"
    )
