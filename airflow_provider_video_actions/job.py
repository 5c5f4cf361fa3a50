"""The batch prediction job's wire format: instances, the create request, states and the summary.

This module owns everything that crosses the wire to Vertex AI: how a video becomes an
instance line, how a :class:`JobSpec` becomes a ``BatchPredictionJob``, what each
``JobState`` means for the Airflow task, and the JSON-able summary that operators return.
It validates at the edge with messages that name the parameter and the fix. It does no I/O;
google-cloud imports happen inside functions so that DAG files stay cheap to parse.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import reprlib
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

# The error types live in their own module; imported here too, where users have always imported them.
from airflow_provider_video_actions.errors import JobFailedError as JobFailedError
from airflow_provider_video_actions.errors import VideoActionsValueError as VideoActionsValueError

if TYPE_CHECKING:
    from google.cloud.aiplatform_v1 import BatchPredictionJob

#: Label set on every job this provider creates, so jobs can be found (and de-duplicated) by label.
#: Keys use underscores: Google's list-filter docs show only underscore keys (``labels.my_key="v"``).
PROVIDER_LABEL = "airflow_provider"
PROVIDER_LABEL_VALUE = "video-actions"
#: Label holding a hash of (dag, task, run, map index): one job per task instance.
TASK_LABEL = "airflow_task"
#: Label holding a hash of what the job was asked to do (:meth:`JobSpec.fingerprint`): a job is
#: re-attached only when it is this task instance's AND was asked for the same work.
REQUEST_LABEL = "airflow_request"
#: The task label's key in 0.1 (hyphenated). Looked up for one release so an upgrade orphans no job.
LEGACY_TASK_LABEL = "airflow-task"
#: Vertex AI allows at most 64 labels on a job; the provider sets three of them.
MAX_JOB_LABELS = 64
#: GCS object names are at most 1024 bytes of UTF-8.
MAX_OBJECT_NAME_BYTES = 1024
#: The largest google.protobuf.Duration, in seconds: Vertex AI refuses segment times beyond it.
MAX_DURATION_SECONDS = 315_576_000_000

_LABEL_RE = re.compile(r"[a-z0-9_-]{0,63}")
_LABEL_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_JOB_NAME_RE = re.compile(r"projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/batchPredictionJobs/(?P<id>[0-9]+)")
_REGION_RE = re.compile(r"[a-z]+(?:-[a-z0-9]+)+")
#: Project ids (6-30 characters, optionally domain-scoped ``example.com:my-project``) or project numbers.
_PROJECT_PART = re.compile(r"^projects/[^/]+/")
_SECONDS_RE = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_PROJECT_RE = re.compile(r"(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20}")


# ---------------------------------------------------------------------------------------------
# Job states: the one place that says what each state means for the task.
# ---------------------------------------------------------------------------------------------

#: Terminal states that end the wait successfully (PARTIALLY_SUCCEEDED is checked against a ratio).
SUCCESS_STATES = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"})
#: Terminal states that fail the task, carrying the job's error.
FAILURE_STATES = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})
TERMINAL_STATES = SUCCESS_STATES | FAILURE_STATES
#: States where waiting goes on; PAUSED, UPDATING and CANCELLING are logged, never taken as success.
WAITING_STATES = frozenset(
    {
        "JOB_STATE_UNSPECIFIED",
        "JOB_STATE_QUEUED",
        "JOB_STATE_PENDING",
        "JOB_STATE_RUNNING",
        "JOB_STATE_PAUSED",
        "JOB_STATE_UPDATING",
        "JOB_STATE_CANCELLING",
    }
)


#: States of a job still going to produce its output: queued, running, paused or updating. CANCELLING is not: the
#: job is on its way to CANCELLED (Vertex AI cancels asynchronously).
ACTIVE_STATES = WAITING_STATES - {"JOB_STATE_CANCELLING"}
#: States of an earlier job worth re-attaching to: active, or done with this task's output.
REATTACH_STATES = ACTIVE_STATES | SUCCESS_STATES
#: States of a job someone asked to cancel: never re-attached to (it will not write its whole output).
CANCELLED_STATES = frozenset({"JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"})


def failure_for(summary: Mapping[str, Any]) -> type[AirflowException]:
    """The exception a job that fails the task raises: one judged by its output (all failed, or over
    ``max_failed_ratio``) fails without a retry, since a retry re-attaches to (or reads) that same job and would fail
    the same way; a FAILED, CANCELLED or EXPIRED job may be retried (a submit's retry makes a new job)."""
    return AirflowFailException if summary.get("state") in SUCCESS_STATES else AirflowException


def job_outcome(
    summary: Mapping[str, Any],
    max_failed_ratio: float = 1.0,
    *,
    allow_all_failed: bool = False,
    failed_sample: Callable[[], list[str]] | None = None,
) -> str:
    """Return a log line for a finished job, or raise :class:`JobFailedError` if it fails the task.

    PARTIALLY_SUCCEEDED (and SUCCEEDED with failed instances) passes while the failed share of
    instances is at most ``max_failed_ratio``; a job where no instance succeeded and some failed
    fails unless ``allow_all_failed``, naming a few failed instances read by ``failed_sample``.
    """
    state, name = summary["state"], summary["name"]
    stats = summary.get("completion_stats") or {}
    ok, failed = stats.get("successful_count", 0), stats.get("failed_count", 0)
    # Instances a finished job never completed did not succeed either: they count against the ratio.
    incomplete = max(stats.get("incomplete_count", 0), 0)
    failed += incomplete
    if state in FAILURE_STATES:
        error = summary.get("error") or {}
        raise JobFailedError(
            f"Batch prediction job {name} ended in {state}: {error.get('message') or 'no error message'} "
            f"(code {error.get('code', 'unknown')}); partial failures: {summary.get('partial_failures') or []}; "
            f"output so far: {summary.get('output_directory') or 'none'}"
        )
    if state not in SUCCESS_STATES:
        raise JobFailedError(f"Batch prediction job {name} is in {state}, which is not a finished state.")
    ratio = failed / (ok + failed) if ok + failed else 0.0
    counts = f"{ok} instances succeeded, {failed} failed or never completed ({ratio:.1%}; {incomplete} incomplete)"
    if ok == 0 and failed > 0 and not allow_all_failed:
        sample = failed_sample() if failed_sample else []
        shown = "; ".join(sample) if sample else f"see errors_*.jsonl in {summary.get('output_directory')}"
        raise JobFailedError(
            f"Batch prediction job {name} ended in {state} but no instance succeeded: {counts}. Failed, for "
            f"example: {shown}. Check the inputs (a mistyped video path is the usual cause), or pass "
            "allow_all_failed=True to accept a job where every instance failed."
        )
    if ratio > max_failed_ratio:
        raise JobFailedError(
            f"Batch prediction job {name} ended in {state} but {counts}, more than "
            f"max_failed_ratio={max_failed_ratio}. See errors_*.jsonl in {summary.get('output_directory')}."
        )
    return f"Batch prediction job {name} ended in {state}: {counts}."


# ---------------------------------------------------------------------------------------------
# Instances: one JSON line per video (segment).
# ---------------------------------------------------------------------------------------------


def split_gcs_uri(uri: Any, param: str, *, want_object: bool = True) -> tuple[str, str]:
    """Split ``gs://bucket/path`` into (bucket, path); raise naming ``param`` if it is not one."""
    if not isinstance(uri, str) or not uri.startswith("gs://"):
        raise VideoActionsValueError(f"{param} must be a gs:// URI like gs://my-bucket/videos/a.mp4, got {uri!r}.")
    check_no_control_characters(uri, param)
    bucket, _, path = uri[5:].partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]", bucket):
        raise VideoActionsValueError(f"{param} has an invalid bucket name {bucket!r} in {uri!r}.")
    if want_object and (not path or path.endswith("/")):
        raise VideoActionsValueError(f"{param} must name an object, not a bucket or folder: {uri!r}.")
    if len(path.encode()) > MAX_OBJECT_NAME_BYTES:
        raise VideoActionsValueError(
            f"{param}: the object name in {uri[:80]!r}... is {len(path.encode())} bytes; GCS allows at most "
            f"{MAX_OBJECT_NAME_BYTES} bytes of UTF-8."
        )
    return bucket, path


def check_no_control_characters(text: str, param: str) -> str:
    """Refuse control characters (CR, LF, tab, NUL, U+0080-U+009F...): GCS refuses CR and LF in object names and
    Google advises against the others; in a job's display name they are a template or paste gone wrong."""
    if bad := sorted({ch for ch in text if unicodedata.category(ch) == "Cc"}):
        raise VideoActionsValueError(
            f"{param} holds control characters ({', '.join(f'U+{ord(ch):04X}' for ch in bad)}) in {brief(text)}: "
            "GCS object names and Vertex AI display names cannot hold line breaks or other control characters; "
            "remove them (a trailing newline from a file or template is the usual cause)."
        )
    return text


def brief(value: Any) -> str:
    """A value's repr cut to 100 characters and 3 levels of nesting (values may come from untrusted output lines)."""
    shortener = reprlib.Repr()
    shortener.maxlevel, shortener.maxstring, shortener.maxother = 3, 100, 100
    return shortener.repr(value)


def parse_seconds(value: Any, param: str, *, open_end: bool = False) -> float | None:
    """Read seconds from a number or a Vertex duration string (``"1.5s"``); ``inf`` only for an open end."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise VideoActionsValueError(
            f"{param} must be seconds as a number or a string like '1.5s', got {brief(value)}."
        )
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("s")
        if text in ("inf", "infinity"):
            value = math.inf
        elif _SECONDS_RE.fullmatch(text):
            value = text
        else:
            raise VideoActionsValueError(
                f"{param} must be seconds like 1.5 or '1.5s' (ASCII digits), got {brief(value)}."
            )
    try:
        seconds = float(value)
    except OverflowError:  # an integer too large for a float
        raise VideoActionsValueError(f"{param} must be seconds, got an integer of {value.bit_length()} bits.") from None
    if math.isnan(seconds) or seconds < 0:
        raise VideoActionsValueError(f"{param} must be zero or more seconds, got {brief(value)}.")
    if math.isinf(seconds):
        if not open_end:
            raise VideoActionsValueError(f"{param} cannot be infinite; only a segment end may be 'inf'.")
        return None
    if seconds > MAX_DURATION_SECONDS:
        raise VideoActionsValueError(f"{param} = {brief(value)} is beyond the longest duration Vertex AI reads.")
    return round(seconds, 6)  # what Vertex AI reads: microsecond precision


def format_seconds(seconds: float | None) -> str:
    """Write seconds the way Vertex AI reads them: microsecond precision and an ``s`` suffix."""
    return "Infinity" if seconds is None else f"{seconds:.6f}s"


#: Reads a video's mime type from its URI (the model family's rules), raising naming the parameter.
MimeTypeFor = Callable[[str, str], str]


@dataclass(frozen=True)
class VideoInstance:
    """One instance of the job: a video, or a segment of it, to recognise actions in."""

    content: str
    mime_type: str
    segment_start: float = 0.0
    segment_end: float | None = None

    @classmethod
    def from_user(cls, video: Any, param: str, mime_type_for: MimeTypeFor) -> VideoInstance:
        """Build from a gs:// URI or a dict with ``content`` and optional mime type and segment.

        The family checks the mime type against its own list (:meth:`ModelFamily.instances`).
        """
        if isinstance(video, str):
            video = {"content": video}
        if not isinstance(video, Mapping):
            raise VideoActionsValueError(
                f"{param} items must be gs:// URIs or dicts with 'content', got {type(video).__name__}: {video!r}."
            )
        unknown = set(video) - {"content", "mime_type", "time_segment_start", "time_segment_end"}
        if unknown:
            raise VideoActionsValueError(
                f"{param} item has unknown keys {sorted(unknown)}; allowed: content, mime_type, "
                "time_segment_start, time_segment_end."
            )
        content = video.get("content")
        split_gcs_uri(content, f"{param} content")
        mime_type = video.get("mime_type") or mime_type_for(content, param)
        start = parse_seconds(video.get("time_segment_start", 0.0), f"{param} time_segment_start of {content}")
        end = parse_seconds(video.get("time_segment_end"), f"{param} time_segment_end of {content}", open_end=True)
        if end is not None and end <= (start or 0.0):
            raise VideoActionsValueError(
                f"{param}: the segment of {content} ends at {end}s, not after its start {start}s (at Vertex AI's "
                "microsecond precision); make time_segment_end greater than time_segment_start, or leave it out "
                "for the whole video."
            )
        return cls(content, mime_type, start or 0.0, end)

    def to_line(self) -> str:
        """Serialise as one line of the instances JSONL file."""
        return json.dumps(
            {
                "content": self.content,
                "mimeType": self.mime_type,
                "timeSegmentStart": format_seconds(self.segment_start),
                "timeSegmentEnd": format_seconds(self.segment_end),
            }
        )


def instances_from_videos(videos: Any, mime_type_for: MimeTypeFor) -> list[VideoInstance]:
    """Validate the ``videos`` parameter into instances (mime types by the family's rules); empty is an error."""
    if isinstance(videos, str) or not isinstance(videos, Sequence):
        raise VideoActionsValueError(
            f"videos must be a list of gs:// URIs or dicts, got {type(videos).__name__}: {videos!r}."
        )
    if not videos:
        raise VideoActionsValueError("videos is empty: give at least one gs:// video URI.")
    return [VideoInstance.from_user(video, f"videos[{i}]", mime_type_for) for i, video in enumerate(videos)]


# ---------------------------------------------------------------------------------------------
# Names, labels and the create request.
# ---------------------------------------------------------------------------------------------


def parse_job_name(name: Any) -> tuple[str, str, str]:
    """Split a batch prediction job resource name into (project, region, job id)."""
    match = _JOB_NAME_RE.fullmatch(name) if isinstance(name, str) else None
    if not match:
        raise VideoActionsValueError(
            "job_name must be a full resource name like "
            f"'projects/my-project/locations/us-central1/batchPredictionJobs/123', got {name!r}."
        )
    return match["project"], match["region"], match["id"]


def job_name_from(value: Any) -> str:
    """The resource name ``job_name`` gives: the name itself, or a job's XCom holding it (:func:`job_from_xcom`:
    the submit operator's result, or the Google provider's ``CreateBatchPredictionJobOperator``'s)."""
    if isinstance(value, Mapping):
        value = job_from_xcom(value, "job_name").get("name")
    parse_job_name(value)
    return value


def check_project(project_id: Any) -> str:
    """Return the project id if it is one (``my-project``, ``example.com:my-project`` or a number), else raise.

    A project number given as an int (``render_template_as_native_obj`` renders ``"123456789012"`` so) is returned
    in its string form.
    """
    if isinstance(project_id, int) and not isinstance(project_id, bool) and project_id > 0:
        project_id = str(project_id)
    if not isinstance(project_id, str) or not _PROJECT_RE.fullmatch(project_id):
        raise VideoActionsValueError(
            "project_id must be a Google Cloud project id like 'my-project' (6-30 lowercase letters, digits or "
            f"hyphens) or a project number, got {project_id!r}."
        )
    return project_id


def check_region(region: Any) -> str:
    """Return the region if it looks like a Vertex AI region (``us-central1``), else raise."""
    if not isinstance(region, str) or not _REGION_RE.fullmatch(region):
        raise VideoActionsValueError(f"region must be a Vertex AI region like 'us-central1', got {region!r}.")
    return region


def check_labels(labels: Any) -> dict[str, str]:
    """Check user labels against Google's label rules and return them as a dict."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise VideoActionsValueError(f"labels must be a dict of str to str, got {type(labels).__name__}.")
    own = (PROVIDER_LABEL, TASK_LABEL, REQUEST_LABEL)
    if len(labels) > MAX_JOB_LABELS - len(own):
        raise VideoActionsValueError(
            f"labels has {len(labels)} entries; Vertex AI allows {MAX_JOB_LABELS} labels on a job and the provider "
            f"sets {len(own)} ({', '.join(own)}): give at most {MAX_JOB_LABELS - len(own)}."
        )
    if taken := sorted(set(labels) & {*own, LEGACY_TASK_LABEL}):
        raise VideoActionsValueError(f"labels {taken} are set by the provider itself; use other keys.")
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY_RE.fullmatch(key):
            raise VideoActionsValueError(
                f"labels key {key!r} is invalid: use 1-63 lowercase letters, digits, '_' or '-', "
                "starting with a letter."
            )
        if not isinstance(value, str) or not _LABEL_RE.fullmatch(value):
            raise VideoActionsValueError(
                f"labels[{key!r}] = {value!r} is invalid: use up to 63 lowercase letters, digits, '_' or '-'."
            )
    return dict(labels)


def task_label_value(dag_id: str, task_id: str, run_id: str, map_index: int) -> str:
    """A deterministic label value for one task instance (Airflow ids hold ':' and '+', so hash them)."""
    key = json.dumps([dag_id, task_id, run_id, map_index])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def default_display_name(dag_id: str, task_id: str, run_id: str, map_index: int) -> str:
    """A readable job name from dag, task and run, within Vertex AI's 128 characters."""
    suffix = f"-{map_index}" if map_index >= 0 else ""
    return f"{dag_id}.{task_id}.{run_id}{suffix}"[:128]


@dataclass(frozen=True)
class MachineResources:
    """Dedicated resources for models that need them (custom models); AutoML models need none."""

    machine_type: str | None = None
    accelerator_type: str | None = None
    accelerator_count: int = 0
    starting_replica_count: int | None = None
    max_replica_count: int | None = None


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to create one batch prediction job; built and validated by the submit operator."""

    project_id: str
    region: str
    model: str
    display_name: str
    instances_uris: tuple[str, ...]
    destination_prefix: str
    #: The family's ``model_parameters`` (None: the job carries none).
    model_parameters: Mapping[str, Any] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    resources: MachineResources = MachineResources()
    service_account: str | None = None
    encryption_key: str | None = None
    #: A digest of the instances the job reads (the lines written, or the given files' generations).
    input_digest: str = ""

    @property
    def parent(self) -> str:
        """The collection the job is created in."""
        return f"projects/{self.project_id}/locations/{self.region}"

    def fingerprint(self) -> str:
        """A digest of what the job is asked to do: everything but its name and labels (a label value)."""
        work = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("display_name", "labels")}
        return hashlib.sha256(json.dumps(work, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def mismatch(self, job: BatchPredictionJob, *, legacy: bool = False) -> str | None:
        """Why ``job`` is not this spec's job (None when it is), read from the job resource itself.

        The request label proves the same work was asked for; model, inputs and output prefix are
        checked on the resource too, since anyone who can create jobs can copy a label. Jobs of the
        previous release (``legacy``) carry no request label and are judged on the resource alone.
        """
        checks = {
            "instances": (list(job.input_config.gcs_source.uris), list(self.instances_uris)),
            "output prefix": (job.output_config.gcs_destination.output_uri_prefix, self.destination_prefix),
        }
        if not legacy:
            checks["request (model, instances, parameters)"] = (job.labels.get(REQUEST_LABEL), self.fingerprint())
        if not _same_model(job.model, self.model):
            return f"its model is {job.model!r}, this task asks for {self.model!r}"
        for what, (theirs, ours) in checks.items():
            if theirs != ours:
                return f"its {what} differs ({str(theirs)[:200]!r}, this task asks for {str(ours)[:200]!r})"
        return None

    def to_proto(self) -> BatchPredictionJob:
        """Build the ``BatchPredictionJob`` create request body."""
        from google.cloud import aiplatform_v1
        from google.protobuf import json_format, struct_pb2

        job = aiplatform_v1.BatchPredictionJob(
            display_name=self.display_name,
            model=self.model,
            input_config={"instances_format": "jsonl", "gcs_source": {"uris": list(self.instances_uris)}},
            output_config={
                "predictions_format": "jsonl",
                "gcs_destination": {"output_uri_prefix": self.destination_prefix},
            },
            labels=dict(self.labels),
        )
        if self.model_parameters is not None:
            job.model_parameters = json_format.ParseDict(dict(self.model_parameters), struct_pb2.Value())
        res = self.resources
        if res.machine_type:
            job.dedicated_resources = aiplatform_v1.BatchDedicatedResources(
                machine_spec=aiplatform_v1.MachineSpec(
                    machine_type=res.machine_type,
                    accelerator_type=res.accelerator_type or "ACCELERATOR_TYPE_UNSPECIFIED",
                    accelerator_count=res.accelerator_count,
                ),
                starting_replica_count=res.starting_replica_count or 1,
                max_replica_count=res.max_replica_count or res.starting_replica_count or 1,
            )
        if self.service_account:
            job.service_account = self.service_account
        if self.encryption_key:
            job.encryption_spec = aiplatform_v1.EncryptionSpec(kms_key_name=self.encryption_key)
        return job


# ---------------------------------------------------------------------------------------------
# The summary operators return and triggers emit: JSON-able, small.
# ---------------------------------------------------------------------------------------------


def _same_model(theirs: str, ours: str) -> bool:
    """Whether a job's model is the one asked for, allowing the forms Vertex AI may echo back.

    It may name the project by number where it was given by id, add the default version (``@1``) to a
    name given without one, or put the project and location before a publisher model's
    ``publishers/google/models/...`` name. (Only jobs of this task's own project are ever compared.)
    """
    if "@" not in ours:
        theirs = theirs.split("@", 1)[0]
    theirs, ours = _PROJECT_PART.sub("", theirs), _PROJECT_PART.sub("", ours)
    return theirs == ours or (ours.startswith("publishers/") and theirs.endswith(f"/{ours}"))


def _time(value: Any) -> str | None:
    """ISO-8601 for a proto-plus timestamp; None when unset."""
    return value.isoformat() if value else None


def state_name(job: BatchPredictionJob) -> str:
    """The job's state name; a state newer than the pinned client (a bare int) is one to wait on, not a crash."""
    return getattr(job.state, "name", f"JOB_STATE_{int(job.state)}")


def job_summary(job: BatchPredictionJob) -> dict[str, Any]:
    """The JSON-able summary of a job: what downstream tasks and the trigger event carry."""
    stats = job.completion_stats
    uris = list(job.input_config.gcs_source.uris)
    return {
        "name": job.name,
        "display_name": job.display_name,
        "model": job.model,
        "state": state_name(job),
        "output_directory": job.output_info.gcs_output_directory or None,
        "instances_uri": uris[0] if uris else None,
        "instances_uris": uris,
        "completion_stats": {
            "successful_count": int(stats.successful_count),
            "failed_count": int(stats.failed_count),
            "incomplete_count": int(stats.incomplete_count),
        },
        "error": {"code": job.error.code, "message": job.error.message} if job.error.code else None,
        "partial_failures": [{"code": s.code, "message": s.message} for s in job.partial_failures],
        "labels": dict(job.labels),
        "create_time": _time(job.create_time),
        "start_time": _time(job.start_time),
        "end_time": _time(job.end_time),
        "update_time": _time(job.update_time),
    }


def console_url(job_name: str) -> str:
    """The Google Cloud console page of a batch prediction job."""
    project, region, job_id = parse_job_name(job_name)
    return f"https://console.cloud.google.com/vertex-ai/locations/{region}/batch-predictions/{job_id}?project={project}"


@dataclass(frozen=True)
class GoogleXComShape:
    """Where the Google provider's ``CreateBatchPredictionJobOperator`` XCom keeps what the parse and sensor read."""

    output_directory: tuple[str, str]
    output_prefix: tuple[str, str, str]
    display_name: str


#: Its deferrable result (the trigger's ``BatchPredictionJob.to_dict``: snake_case, the state a number) and its sync
#: result (the SDK's ``BatchPredictionJob.to_dict``: camelCase, the state a name).
GOOGLE_XCOM_SHAPES = (
    GoogleXComShape(
        ("output_info", "gcs_output_directory"),
        ("output_config", "gcs_destination", "output_uri_prefix"),
        "display_name",
    ),
    GoogleXComShape(
        ("outputInfo", "gcsOutputDirectory"), ("outputConfig", "gcsDestination", "outputUriPrefix"), "displayName"
    ),
)


def job_from_xcom(job: Any, param: str) -> dict[str, Any]:
    """A job's XCom as this provider's summary: the submit operator's or sensor's result as it is, or the Google
    provider's ``CreateBatchPredictionJobOperator`` result (either shape) read into its name, display name, model,
    state and output directory. A Google result's output directory must lie in its own job's output prefix: the
    provider never reads a folder that is not the job's."""
    if not isinstance(job, Mapping):
        raise VideoActionsValueError(
            f"{param} must be a job's XCom, the submit operator's result (a dict with 'output_directory') or the "
            f"Google provider's CreateBatchPredictionJobOperator's; got {type(job).__name__}: {brief(job)}."
        )
    shape = next((s for s in GOOGLE_XCOM_SHAPES if s.output_directory[0] in job), None)
    if "output_directory" in job or shape is None:  # this provider's summary; its state is read as a Google one
        return {**job, "state": _xcom_state(job["state"], param)} if "state" in job else dict(job)
    name = _xcom_text(job, ("name",), param)
    if name is not None and not _JOB_NAME_RE.fullmatch(name):
        raise VideoActionsValueError(
            f"{param}['name'] must be a job's resource name like "
            f"'projects/my-project/locations/us-central1/batchPredictionJobs/123', got {brief(name)}."
        )
    directory = _xcom_text(job, shape.output_directory, param) or None
    prefix = _xcom_text(job, shape.output_prefix, param) or ""
    if directory is not None and not directory.startswith(f"{prefix.rstrip('/')}/"):
        raise VideoActionsValueError(
            f"{param}: the output directory {brief(directory)} is not inside the job's own output prefix "
            f"{brief(prefix)} ({'.'.join(shape.output_prefix)}): it is not this job's output. Pass the create "
            "task's XCom unchanged."
        )
    return {
        "name": name,
        "display_name": _xcom_text(job, (shape.display_name,), param),
        "model": _xcom_text(job, ("model",), param),
        "state": _xcom_state(job.get("state"), param),
        "output_directory": directory,
    }


def _xcom_text(job: Mapping[str, Any], path: tuple[str, ...], param: str) -> str | None:
    """The string at ``path`` in a job's XCom (None where a key is missing); another type is refused."""
    value: Any = job
    for key in path:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise VideoActionsValueError(
                f"{param}: {'.'.join(path[: path.index(key)])} must be a dict in a job's XCom, got "
                f"{type(value).__name__}: {brief(value)}."
            )
        value = value.get(key)
    if value is not None and not isinstance(value, str):
        raise VideoActionsValueError(
            f"{param}: {'.'.join(path)} must be a string in a job's XCom, got {type(value).__name__}: {brief(value)}."
        )
    return value


def _xcom_state(state: Any, param: str) -> str | None:
    """A job state from an XCom: its name, or its number (``BatchPredictionJob.to_dict`` writes numbers)."""
    if state is None or isinstance(state, str):
        return state
    if isinstance(state, bool) or not isinstance(state, int):
        raise VideoActionsValueError(
            f"{param}: state must be a job state's name or number, got {type(state).__name__}: {brief(state)}."
        )
    from google.cloud.aiplatform_v1 import JobState

    try:
        return JobState(state).name
    except ValueError:
        return f"JOB_STATE_{state}"  # newer than the pinned client: a state to wait on, as state_name reads it
