"""Google's own clients on the emulator, unchanged but for a plain-text gRPC channel, and the provider on their XComs.

The Google provider's Vertex AI operators (create sync and deferrable, get, list with each documented filter
example, delete), the aiplatform SDK (``BatchPredictionJob``, ``Model(...).batch_predict``) and the flows of
Google's published code samples run against the session emulator over real gRPC on 127.0.0.1. They reach it
through :func:`~airflow_provider_video_actions.google_clients.use_emulator_for_google_clients`
(called by each test DAG at its top, as a user's DAG would) and an anonymous ``google_cloud_default`` connection.
This provider's parse and sensor then read what Google's create operator returned, in both of its shapes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from airflow_provider_video_actions.job import TERMINAL_STATES, VideoActionsValueError, job_from_xcom
from tests.conftest import BUCKET, PATIENCE, ROOT, only_dag_file, run_dag, task_states, xcom_value

REGION = "us-central1"
#: The Airflow connection a user points at the emulator: anonymous credentials (the channel carries none anyway).
ANONYMOUS_CONNECTION = json.dumps({"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True}})
#: Importing the Google provider's Vertex AI operators can take Airflow's default 30 s on a busy machine.
IMPORT_TIMEOUT = ("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "300")
DAG_HEADER = """
from datetime import timedelta

from airflow.providers.common.compat.sdk import DAG
from airflow.providers.google.cloud.operators.vertex_ai.batch_prediction_job import (
    CreateBatchPredictionJobOperator,
    DeleteBatchPredictionJobOperator,
    GetBatchPredictionJobOperator,
    ListBatchPredictionJobsOperator,
)

from airflow_provider_video_actions import (
    ParseVideoActionPredictionsOperator,
    VideoActionBatchPredictionOperator,
    VideoActionBatchPredictionSensor,
)
from airflow_provider_video_actions.google_clients import use_emulator_for_google_clients

use_emulator_for_google_clients()
"""
#: Each documented filter example: the Google list operator's docstring, then ListBatchPredictionJobsRequest.filter's
#: reference. Jobs: my_job and my_job_2 succeed, other fails; none can carry the upper-case label keys asked for.
FILTER_EXAMPLES = {
    'state="JOB_STATE_SUCCEEDED" AND display_name="my_job"': {"my_job"},
    'state="JOB_STATE_RUNNING" OR display_name="my_job"': {"my_job"},
    'NOT display_name="my_job"': {"my_job_2", "other"},
    'state="JOB_STATE_FAILED"': {"other"},
    'state="JOB_STATE_SUCCEEDED" AND display_name:"my_job_*"': {"my_job_2"},
    'state!="JOB_STATE_FAILED" OR display_name="my_job"': {"my_job", "my_job_2"},
    'create_time>"2021-05-18T00:00:00Z"': {"my_job", "my_job_2", "other"},
    "labels.keyA=valueA": set(),
    "labels.keyB:*": set(),
}


def point_google_clients_at(emulator, mp: pytest.MonkeyPatch) -> None:
    """For this test (or module): the emulator's environment, an anonymous default connection, a generous DAG import
    timeout, and Google's channel factories put back afterwards (the DAGs route them to the emulator)."""
    from google.api_core import grpc_helpers, grpc_helpers_async

    for name, value in {**emulator.env(), "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": ANONYMOUS_CONNECTION}.items():
        mp.setenv(name, value)
    mp.setenv(*IMPORT_TIMEOUT)
    for module in (grpc_helpers, grpc_helpers_async):
        mp.setattr(module, "create_channel", module.create_channel)


@pytest.fixture
def google_clients(emulator, instances_uri, monkeypatch: pytest.MonkeyPatch) -> str:
    """Google's clients pointed at the emulator; the instances file (one video, a wave planted at 1.25 s)."""
    point_google_clients_at(emulator, monkeypatch)
    return instances_uri


def write_google_dag(dag_id: str, body: str, **dag_kwargs: object) -> str:
    """A DAG file in the DAGs folder: the imports, the emulator hook-up, then ``body`` inside ``with DAG(...)``."""
    import textwrap

    options = "".join(f", {key}={value!r}" for key, value in dag_kwargs.items())
    source = f"{DAG_HEADER}\nwith DAG({dag_id!r}, schedule=None, catchup=False{options}) as dag:\n"
    only_dag_file(f"{dag_id}.py", source + textwrap.indent(textwrap.dedent(body), "    "))
    return dag_id


def upload_wave(client, folder: str) -> str:
    """An instances file under ``folder`` naming one video with a wave planted at 1.0 s; its gs:// URI."""
    from airflow_provider_video_actions.emulator import PlantedAction, make_video

    bucket = client.bucket(BUCKET)
    bucket.blob(f"{folder}/wave.mp4").upload_from_string(
        make_video([PlantedAction("wave", 1.0)]), content_type="video/mp4"
    )
    line = json.dumps({"content": f"gs://{BUCKET}/{folder}/wave.mp4", "mimeType": "video/mp4"})
    bucket.blob(f"{folder}/instances.jsonl").upload_from_string(line + "\n")
    return f"gs://{BUCKET}/{folder}/instances.jsonl"


def wait_finished(emulator, names: list[str]) -> None:
    """Wait (on the jobs' states, with a generous deadline) until each job has finished."""
    deadline = time.monotonic() + PATIENCE
    for name in names:
        while emulator.job(name).state.name not in TERMINAL_STATES:
            assert time.monotonic() < deadline, f"{name} did not finish"
            time.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# The Google provider's create operator, sync and deferrable, and this provider's parse and sensor on its XCom.
# ---------------------------------------------------------------------------------------------


def test_google_create_operator_xcom_is_read_by_parse_and_sensor(airflow_db, google_clients):
    """Both shapes of the create operator's XCom, passed as job= / job_name=, and templated into output_directory."""
    write_google_dag(
        "google_create",
        f"""
        directories = {{
            "sync": "{{{{ ti.xcom_pull(task_ids='create_sync')['outputInfo']['gcsOutputDirectory'] }}}}",
            "deferrable": "{{{{ ti.xcom_pull(task_ids='create_deferrable')['output_info']['gcs_output_directory'] }}}}",
        }}
        for mode, deferrable in (("sync", False), ("deferrable", True)):
            create = CreateBatchPredictionJobOperator(
                task_id=f"create_{{mode}}", project_id="google-create", region={REGION!r},
                job_display_name=f"google-{{mode}}", model_name="42", gcs_source={google_clients!r},
                gcs_destination_prefix=f"gs://{BUCKET}/google/{{mode}}", deferrable=deferrable, poll_interval=1,
            )
            create >> ParseVideoActionPredictionsOperator(task_id=f"parse_{{mode}}", job=create.output)
            create >> ParseVideoActionPredictionsOperator(
                task_id=f"parse_templated_{{mode}}", output_directory=directories[mode]
            )
            create >> VideoActionBatchPredictionSensor(
                task_id=f"wait_{{mode}}", job_name=create.output, poke_interval=1, deferrable=deferrable,
                min_poll_interval=0.1,
            )
        """,
    )
    run = run_dag("google_create")
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    sync, deferred = xcom_value(run, "create_sync"), xcom_value(run, "create_deferrable")
    assert sync["outputInfo"]["gcsOutputDirectory"].startswith(f"gs://{BUCKET}/google/sync/prediction-")
    assert deferred["output_info"]["gcs_output_directory"].startswith(f"gs://{BUCKET}/google/deferrable/prediction-")
    assert sync["state"] == "JOB_STATE_SUCCEEDED" and deferred["state"] == 4  # the trigger's to_dict: a number
    for task in ("parse_sync", "parse_templated_sync", "parse_deferrable", "parse_templated_deferrable"):
        moments = xcom_value(run, task)["predictions"]
        assert [(p["label"], p["time_start"]) for p in moments] == [("wave", 1.25)], task
    assert xcom_value(run, "wait_sync")["name"] == sync["name"]
    assert xcom_value(run, "wait_deferrable")["name"] == deferred["name"]


def google_xcoms(directory: str) -> dict[str, dict]:
    """Both shapes of the create operator's XCom for a finished job whose output is ``directory`` (as measured)."""
    name = f"projects/p-google/locations/{REGION}/batchPredictionJobs/7"
    prefix = directory.rsplit("/", 1)[0]
    return {
        "sync": {
            "name": name, "displayName": "g", "model": f"projects/p-google/locations/{REGION}/models/42",
            "outputConfig": {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": prefix}},
            "outputInfo": {"gcsOutputDirectory": directory}, "state": "JOB_STATE_SUCCEEDED",
            "completionStats": {"successfulCount": "1"},
        },
        "deferrable": {
            "name": name, "display_name": "g", "model": f"projects/p-google/locations/{REGION}/models/42",
            "output_config": {"predictions_format": "jsonl", "gcs_destination": {"output_uri_prefix": prefix}},
            "output_info": {"gcs_output_directory": directory, "bigquery_output_table": ""}, "state": 4,
            "completion_stats": {"successful_count": "1", "failed_count": "0", "incomplete_count": "0"},
        },
    }  # fmt: skip


@pytest.mark.parametrize("shape", ["sync", "deferrable"])
def test_google_xcom_reads_as_the_summary(shape):
    job = job_from_xcom(google_xcoms("gs://b/out/prediction-42-2026")[shape], "job")
    assert job == {
        "name": f"projects/p-google/locations/{REGION}/batchPredictionJobs/7",
        "display_name": "g",
        "model": f"projects/p-google/locations/{REGION}/models/42",
        "state": "JOB_STATE_SUCCEEDED",
        "output_directory": "gs://b/out/prediction-42-2026",
    }


@pytest.mark.parametrize("shape", ["sync", "deferrable"])
def test_parse_and_propose_read_a_google_xcom_of_a_local_output(tmp_path, shape):
    """The parse and the shard proposal on the Google XCom of a job whose output is a folder here (file://)."""
    from airflow_provider_video_actions import ParseVideoActionPredictionsOperator, ProposeParseShardsOperator

    folder = tmp_path / "out" / "prediction-42-2026"
    folder.mkdir(parents=True)
    moment = {
        "id": "1",
        "displayName": "wave",
        "timeSegmentStart": "1.25s",
        "timeSegmentEnd": "1.25s",
        "confidence": 0.9,
    }
    line = {"instance": {"content": "gs://b/a.mp4", "mimeType": "video/mp4"}, "prediction": [moment]}
    (folder / "predictions_00001.jsonl").write_text(json.dumps(line) + "\n")
    job = google_xcoms(f"file://{folder}")[shape]
    parsed = ParseVideoActionPredictionsOperator(task_id="parse", job=job).execute({})
    assert [(p["label"], p["time_start"]) for p in parsed["predictions"]] == [("wave", 1.25)]
    assert len(ProposeParseShardsOperator(task_id="propose", job=job).execute({})) == 1


def hostile(shape: str, change: dict) -> dict:
    """The XCom of ``shape`` with its top-level keys changed (a value of None removes the key)."""
    xcom = google_xcoms("gs://b/out/prediction-42-2026")[shape]
    xcom.update(change)
    return {key: value for key, value in xcom.items() if value is not None}


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (hostile("sync", {"outputInfo": "gs://b/out/x"}), "outputInfo must be a dict"),
        (hostile("deferrable", {"output_info": {"gcs_output_directory": 7}}), "gcs_output_directory must be a string"),
        (hostile("sync", {"outputConfig": None}), "not inside the job's own output prefix"),
        (hostile("sync", {"outputConfig": {"gcsDestination": {"outputUriPrefix": "gs://c/x"}}}), "not this job's"),
        (hostile("deferrable", {"output_info": {"gcs_output_directory": "gs://b/outer/p"}}), "not this job's"),
        (hostile("sync", {"name": "jobs/7"}), "must be a job's resource name"),
        (hostile("sync", {"name": ["x"]}), "name must be a string"),
        (hostile("deferrable", {"state": True}), "state must be a job state"),
        (hostile("deferrable", {"state": 3.0}), "state must be a job state"),
        (hostile("deferrable", {"output_info": {"gcs_output_directory": ""}}), "with its GCS output directory"),
        (hostile("sync", {"state": "JOB_STATE_PAUSED"}), "is JOB_STATE_PAUSED, not finished"),
        (hostile("deferrable", {"state": 5}), "ended in JOB_STATE_FAILED"),
        ("gs://b/out/prediction-42-2026", "job must be a job's XCom"),
    ],
)
def test_hostile_google_xcoms_are_refused_naming_job(job, message):
    from airflow_provider_video_actions.operators.parse import ParseVideoActionPredictionsOperator

    with pytest.raises(VideoActionsValueError, match=r"^job\b") as caught:
        ParseVideoActionPredictionsOperator(task_id="parse", job=job)._source()
    assert message in str(caught.value)


def test_the_sensor_takes_the_job_name_from_a_google_xcom_and_refuses_a_bad_one():
    from airflow_provider_video_actions import VideoActionBatchPredictionSensor

    xcom = google_xcoms("gs://b/out/prediction-42-2026")["sync"]
    assert VideoActionBatchPredictionSensor(task_id="wait", job_name=xcom).job_name == xcom["name"]
    with pytest.raises(VideoActionsValueError, match=r"^job_name\b"):
        VideoActionBatchPredictionSensor(task_id="wait", job_name={**xcom, "name": None})
    with pytest.raises(VideoActionsValueError, match=r"^job_name: outputInfo must be a dict"):
        VideoActionBatchPredictionSensor(task_id="wait", job_name={**xcom, "outputInfo": []})


# ---------------------------------------------------------------------------------------------
# The channel routing itself.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> tuple[object, list[str]]:
    """The routed sync channel factory over a recorder of the targets it hands on to Google's own factory (the
    Google clients' tests above run the real one end to end); both factories put back after the test."""
    from google.api_core import grpc_helpers, grpc_helpers_async

    from airflow_provider_video_actions.google_clients import use_emulator_for_google_clients

    handed_on: list[str] = []
    monkeypatch.setattr(grpc_helpers, "create_channel", lambda target, *args, **kwargs: handed_on.append(target))
    monkeypatch.setattr(grpc_helpers_async, "create_channel", grpc_helpers_async.create_channel)
    use_emulator_for_google_clients()
    use_emulator_for_google_clients()  # idempotent: wrapped once
    assert grpc_helpers.create_channel.__wrapped__.__name__ == "<lambda>"
    return grpc_helpers.create_channel, handed_on


def test_only_vertex_ai_endpoints_go_to_the_emulator_and_only_while_it_is_set(routed, monkeypatch):
    import grpc

    create_channel, handed_on = routed
    monkeypatch.setenv("VERTEX_AI_EMULATOR_HOST", "127.0.0.1:1")
    for target in (f"{REGION}-aiplatform.googleapis.com:443", "aiplatform.googleapis.com:443"):
        channel = create_channel(target)
        assert isinstance(channel, grpc.Channel)
        channel.close()
    create_channel("storage.googleapis.com:443")
    create_channel("notaiplatform.googleapis.com:443")
    monkeypatch.delenv("VERTEX_AI_EMULATOR_HOST")
    create_channel(f"{REGION}-aiplatform.googleapis.com:443")
    assert handed_on == [
        "storage.googleapis.com:443",
        "notaiplatform.googleapis.com:443",
        f"{REGION}-aiplatform.googleapis.com:443",
    ]


def test_a_dag_file_can_import_the_helper_without_the_emulator_extra():
    """A production DAG keeps the call: importing it loads neither the emulator, its extra's packages, nor aiplatform."""
    import subprocess
    import sys

    heavy = ("airflow_provider_video_actions.emulator", "gcp_storage_emulator", "av", "google.cloud.aiplatform_v1")
    code = (
        "import sys\nimport airflow_provider_video_actions.google_clients\n"
        f"print(sorted(set(sys.modules) & {set(heavy)!r}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
    )
    assert loaded.stdout.strip() == "[]"


def test_a_remote_emulator_is_refused_for_google_clients_too(routed, monkeypatch):
    create_channel, _ = routed
    monkeypatch.setenv("VERTEX_AI_EMULATOR_HOST", "emulator.example.com:8080")
    with pytest.raises(ValueError, match="is not on this machine"):
        create_channel(f"{REGION}-aiplatform.googleapis.com:443")


# ---------------------------------------------------------------------------------------------
# Native rendering: a model ID rendered to an int.
# ---------------------------------------------------------------------------------------------


def test_a_model_id_rendered_natively_to_an_int_is_accepted(airflow_db, google_clients, emulator, capfd):
    emulator.add_model("8675309")
    write_google_dag(
        "native_model",
        f"""
        common = dict(
            project_id="test-project", region={REGION!r}, gcs_source={google_clients!r},
            gcs_destination_prefix="gs://{BUCKET}/native", poll_interval=1, min_poll_interval=0.1,
            retries=2, retry_delay=timedelta(0),
        )
        VideoActionBatchPredictionOperator(task_id="predict", model="8675309", **common)
        VideoActionBatchPredictionOperator(task_id="templated", model="{{{{ params.model }}}}", **common)
        VideoActionBatchPredictionOperator(task_id="negative", model="{{{{ params.negative }}}}", **common)
        VideoActionBatchPredictionOperator(task_id="boolean", model="{{{{ params.boolean }}}}", **common)
        VideoActionBatchPredictionOperator.partial(task_id="mapped", **common).expand(model=[8675309, -1])
        """,
        render_template_as_native_obj=True,
        params={"model": 8675309, "negative": -8675309, "boolean": True},
    )
    run = run_dag("native_model")
    tries = {(ti.task_id, ti.map_index): (ti.state, ti.try_number) for ti in run.get_task_instances()}
    output = "".join(capfd.readouterr())
    assert tries == {
        ("predict", -1): ("success", 1),
        ("templated", -1): ("success", 1),
        ("negative", -1): ("failed", 1),
        ("boolean", -1): ("failed", 1),
        ("mapped", 0): ("success", 1),
        ("mapped", 1): ("failed", 1),
    }, tries
    assert xcom_value(run, "predict")["model"].endswith("/models/8675309")
    assert "model must be a model ID like '1234567890'" in output and "got -8675309" in output
    assert "got True" in output


@pytest.mark.parametrize("model", [True, False, 0, -7])
def test_a_bool_or_non_positive_int_model_is_refused_naming_model(model):
    from airflow_provider_video_actions import VideoActionBatchPredictionOperator

    with pytest.raises(VideoActionsValueError, match=r"^model must be a model ID"):
        VideoActionBatchPredictionOperator(
            task_id="predict", project_id="test-project", region=REGION, model=model,
            gcs_destination_prefix=f"gs://{BUCKET}/out", gcs_source=f"gs://{BUCKET}/i.jsonl",
        )  # fmt: skip


def test_an_int_model_id_is_its_string_form():
    from airflow_provider_video_actions import VideoActionBatchPredictionOperator

    task = VideoActionBatchPredictionOperator(
        task_id="predict", project_id="test-project", region=REGION, model=8675309,
        gcs_destination_prefix=f"gs://{BUCKET}/out", gcs_source=f"gs://{BUCKET}/i.jsonl",
    )  # fmt: skip
    assert task.model == "8675309"


# ---------------------------------------------------------------------------------------------
# The Google provider's get, list and delete operators on this provider's jobs.
# ---------------------------------------------------------------------------------------------

LISTS_PROJECT = "google-lists"


@pytest.fixture(scope="module")
def lists_run(airflow_db, emulator_session) -> Iterator[tuple[object, dict[str, str]]]:
    """One DAG run of Google's get, list (one task per filter example) and delete operators on three jobs this
    provider created in a project of their own: my_job and my_job_2 succeed, other fails. Yields the run and the
    jobs' names by display name."""
    from airflow_provider_video_actions.hooks.batch_prediction import VideoActionBatchPredictionHook
    from airflow_provider_video_actions.job import JobSpec

    with pytest.MonkeyPatch.context() as mp:
        point_google_clients_at(emulator_session, mp)
        instances = upload_wave(emulator_session.storage_client(), "lists")
        emulator_session.force_outcome("JOB_STATE_FAILED", display_name="other")
        try:
            jobs = {
                display_name: VideoActionBatchPredictionHook()
                .create_job(
                    JobSpec(
                        project_id=LISTS_PROJECT, region=REGION, model=f"projects/{LISTS_PROJECT}/locations/{REGION}/models/42",
                        display_name=display_name, instances_uris=(instances,),
                        destination_prefix=f"gs://{BUCKET}/lists",
                    )
                )
                .name
                for display_name in ("my_job", "my_job_2", "other")
            }  # fmt: skip
            wait_finished(emulator_session, list(jobs.values()))
        finally:
            emulator_session.force_outcome(None, display_name="other")
        ids = {display_name: name.rsplit("/", 1)[1] for display_name, name in jobs.items()}
        write_google_dag(
            "google_lists",
            f"""
            where = dict(project_id={LISTS_PROJECT!r}, region={REGION!r})
            get = GetBatchPredictionJobOperator(task_id="get", batch_prediction_job={ids["my_job"]!r}, **where)
            lists = [
                ListBatchPredictionJobsOperator(task_id=f"list_{{index}}", filter=text, **where)
                for index, text in enumerate({list(FILTER_EXAMPLES)!r})
            ]
            delete = DeleteBatchPredictionJobOperator(
                task_id="delete", batch_prediction_job_id="{{{{ params.job_id }}}}", params={{"job_id": {ids["other"]!r}}},
                trigger_rule="all_done", **where
            )
            [get, *lists] >> delete
            """,
        )
        yield run_dag("google_lists"), jobs


@pytest.mark.parametrize("example", FILTER_EXAMPLES)
def test_google_list_operator_reads_each_documented_filter_example(lists_run, example):
    run, _ = lists_run
    task_id = f"list_{list(FILTER_EXAMPLES).index(example)}"
    assert task_states(run)[task_id] == "success"
    assert {job["display_name"] for job in xcom_value(run, task_id)} == FILTER_EXAMPLES[example]


def test_google_get_and_delete_operators_read_and_delete_this_providers_jobs(lists_run, emulator_session):
    run, jobs = lists_run
    assert task_states(run)["get"] == "success" and task_states(run)["delete"] == "success"
    got = xcom_value(run, "get")
    assert got["name"] == jobs["my_job"] and got["state"] == 4  # BatchPredictionJob.to_dict: JOB_STATE_SUCCEEDED
    assert jobs["other"] not in {job.name for job in emulator_session.jobs()}  # deleted
    assert emulator_session.job(jobs["my_job_2"]).display_name == "my_job_2"


# ---------------------------------------------------------------------------------------------
# The aiplatform SDK and the flows of Google's published code samples.
# ---------------------------------------------------------------------------------------------

SDK_PROJECT = "google-sdk"


@pytest.fixture
def sdk(google_clients, monkeypatch: pytest.MonkeyPatch) -> str:
    """The SDK initialised for the emulator as a script would be (anonymous credentials), channels routed to it."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    from airflow_provider_video_actions.google_clients import use_emulator_for_google_clients

    use_emulator_for_google_clients()
    aiplatform.init(project=SDK_PROJECT, location=REGION, credentials=AnonymousCredentials())
    return google_clients


def test_sdk_batch_prediction_job_create_list_and_iter_outputs(sdk):
    from google.cloud import aiplatform

    job = aiplatform.BatchPredictionJob.create(
        job_display_name="sdk-create", model_name="42", instances_format="jsonl", predictions_format="jsonl",
        gcs_source=sdk, gcs_destination_prefix=f"gs://{BUCKET}/sdk", sync=True,
    )  # fmt: skip
    assert job.state.name == "JOB_STATE_SUCCEEDED"
    assert job.output_info.gcs_output_directory.startswith(f"gs://{BUCKET}/sdk/prediction-")
    listed = aiplatform.BatchPredictionJob.list(filter='display_name="sdk-create"')
    assert [found.resource_name for found in listed] == [job.resource_name]
    outputs = [blob.name for blob in job.iter_outputs()]
    assert [name.rsplit("/", 1)[1] for name in outputs] == ["predictions_00001.jsonl"]


def test_sdk_model_batch_predict(sdk):
    """Google's model-builder sample: ``aiplatform.Model(name).batch_predict`` reads the model first (GetModel)."""
    from google.cloud import aiplatform

    model = aiplatform.Model(f"projects/{SDK_PROJECT}/locations/{REGION}/models/42")
    job = model.batch_predict(
        job_display_name="sdk-model", gcs_source=sdk, gcs_destination_prefix=f"gs://{BUCKET}/sdk-model", sync=True
    )
    assert job.state.name == "JOB_STATE_SUCCEEDED"


@pytest.fixture
def sample_client(sdk, monkeypatch: pytest.MonkeyPatch):
    """The samples' client exactly as they build it; only Application Default Credentials, which this machine has
    none of, are anonymous ones."""
    import google.auth
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    monkeypatch.setattr(google.auth, "default", lambda *args, **kwargs: (AnonymousCredentials(), SDK_PROJECT))
    client_options = {"api_endpoint": f"{REGION}-aiplatform.googleapis.com"}
    return aiplatform.gapic.JobServiceClient(client_options=client_options)


def test_published_sample_flows_create_get_cancel_delete(sample_client, emulator, sdk):
    """create_batch_prediction_job_video_action_recognition_sample, then the get, cancel and delete samples."""
    from google.protobuf import json_format
    from google.protobuf.struct_pb2 import Value

    emulator.timeline.running_seconds = 600.0  # running until cancelled
    model_parameters = json_format.ParseDict({"confidenceThreshold": 0.5}, Value())
    batch_prediction_job = {
        "display_name": "sample-flow",
        "model": f"projects/{SDK_PROJECT}/locations/{REGION}/models/42",
        "model_parameters": model_parameters,
        "input_config": {"instances_format": "jsonl", "gcs_source": {"uris": [sdk]}},
        "output_config": {"predictions_format": "jsonl", "gcs_destination": {"output_uri_prefix": f"gs://{BUCKET}/s"}},
    }
    parent = f"projects/{SDK_PROJECT}/locations/{REGION}"
    created = sample_client.create_batch_prediction_job(parent=parent, batch_prediction_job=batch_prediction_job)
    job_id = created.name.rsplit("/", 1)[1]
    name = sample_client.batch_prediction_job_path(project=SDK_PROJECT, location=REGION, batch_prediction_job=job_id)
    assert sample_client.get_batch_prediction_job(name=name).display_name == "sample-flow"
    sample_client.cancel_batch_prediction_job(name=name)
    wait_finished(emulator, [name])
    assert sample_client.get_batch_prediction_job(name=name).state.name == "JOB_STATE_CANCELLED"
    response = sample_client.delete_batch_prediction_job(name=name)
    response.result(timeout=300)
    assert name not in {job.name for job in emulator.jobs()}  # deleted


def test_get_operation_reads_the_operation_a_delete_returned(sample_client, emulator, submit_job):
    name = submit_job("delete-operation")
    wait_finished(emulator, [name])
    operation = sample_client.delete_batch_prediction_job(name=name).operation
    assert sample_client.get_operation({"name": operation.name}).done
