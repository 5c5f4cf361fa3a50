"""An in-process gRPC ``google.cloud.aiplatform.v1.JobService`` for batch prediction jobs.

Jobs follow a timeline (QUEUED, PENDING, RUNNING, terminal) driven by a ticker thread; the RUNNING
phase runs ``runner.run_batch`` on a small thread pool against the emulated GCS server.
"""

from __future__ import annotations

import collections
import itertools
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

import grpc
from google.cloud import aiplatform_v1
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, empty_pb2
from google.rpc import code_pb2, status_pb2

from airflow_provider_video_actions.emulator import runner
from airflow_provider_video_actions.emulator.catalog import ModelCatalog, check_location
from airflow_provider_video_actions.emulator.errors import AbortError
from airflow_provider_video_actions.emulator.families.dispatch import default_settings, family_for_job
from airflow_provider_video_actions.emulator.filters import parse_filter
from airflow_provider_video_actions.emulator.operations import OperationStore
from airflow_provider_video_actions.errors import VideoActionsValueError
from airflow_provider_video_actions.job import split_gcs_uri

log = logging.getLogger(__name__)

SERVICE_NAME = "google.cloud.aiplatform.v1.JobService"
JobState = aiplatform_v1.JobState
TERMINAL_STATES = frozenset(
    {
        JobState.JOB_STATE_SUCCEEDED,
        JobState.JOB_STATE_FAILED,
        JobState.JOB_STATE_CANCELLED,
        JobState.JOB_STATE_EXPIRED,
        JobState.JOB_STATE_PARTIALLY_SUCCEEDED,
    }
)
FORCEABLE_STATES = frozenset(
    {
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
        "JOB_STATE_PAUSED",
    }
)
_FORCED_ERRORS = {
    JobState.JOB_STATE_FAILED: (code_pb2.INTERNAL, "Internal error (outcome forced by the emulator)"),
    JobState.JOB_STATE_CANCELLED: (code_pb2.CANCELLED, "Job cancelled"),
    JobState.JOB_STATE_EXPIRED: (
        code_pb2.DEADLINE_EXCEEDED,
        "Job expired: deadline exceeded (outcome forced by the emulator)",
    ),
}
_OUTPUT_ONLY_FIELDS = (
    "output_info",
    "error",
    "partial_failures",
    "completion_stats",
    "resources_consumed",
    "start_time",
    "end_time",
)
_PARENT = re.compile(r"^projects/([^/]+)/locations/([^/]+)$")
_ID_BASE = 5_000_000_000_000_000_000
_TICK_SECONDS = 0.01


@dataclass
class JobTimeline:
    """How long an emulated job stays in each state, and how many lines go in one output file.

    One object shared by the CLI (its ``--queued-seconds``... flags), the :class:`Emulator` and the
    servicer; a test may change a field while the emulator runs, and the next tick uses it.
    """

    queued_seconds: float = 0.5
    pending_seconds: float = 0.5
    running_seconds: float = 1.0
    cancelling_seconds: float = 0.5
    lines_per_file: int = 1000


@dataclass
class _Record:
    """A job plus the emulator's bookkeeping for its timeline."""

    job: aiplatform_v1.BatchPredictionJob
    since: float
    cancelled: threading.Event = field(default_factory=threading.Event)
    #: A cancel was accepted while cancels of this job's display name were held (applied on release).
    cancel_requested: bool = False
    future: Future[runner.RunResult] | None = None


def _now() -> datetime:
    """Current UTC time for job timestamps."""
    return datetime.now(timezone.utc)


def copy_job(job: aiplatform_v1.BatchPredictionJob) -> aiplatform_v1.BatchPredictionJob:
    """A deep copy, so callers never share mutable state with the service."""
    return aiplatform_v1.BatchPredictionJob.deserialize(aiplatform_v1.BatchPredictionJob.serialize(job))


def _status(code: int, message: str) -> status_pb2.Status:
    """A google.rpc.Status message."""
    return status_pb2.Status(code=code, message=message)


def _location(parent: str) -> str:
    """The location of a ``projects/P/locations/L`` parent; INVALID_ARGUMENT for another form or an unserved region."""
    if not (match := _PARENT.match(parent)):
        raise AbortError(grpc.StatusCode.INVALID_ARGUMENT, f"parent must be projects/P/locations/L, got {parent!r}")
    check_location(match.group(2))
    return match.group(2)


def names_job(rule: str, display_name: str) -> bool:
    """Whether a knob's display name covers a job's: the same name, or its start up to a dot, so that
    ``dag.task`` covers the provider's default display names ``dag.task.<run id>[.<map index>]``."""
    return display_name == rule or display_name.startswith(f"{rule}.")


def validate_job(job: aiplatform_v1.BatchPredictionJob) -> None:
    """Reject a job the emulated model cannot run, with INVALID_ARGUMENT naming the problem."""
    problems = []
    if not job.model:
        problems.append("model is required")
    if job.input_config.instances_format != "jsonl":
        problems.append(f"input_config.instances_format must be 'jsonl', got {job.input_config.instances_format!r}")
    if job.output_config.predictions_format != "jsonl":
        problems.append(
            f"output_config.predictions_format must be 'jsonl', got {job.output_config.predictions_format!r}"
        )
    if not list(job.input_config.gcs_source.uris):
        problems.append("input_config.gcs_source.uris needs at least one gs:// URI")
    for uri in job.input_config.gcs_source.uris:  # Vertex AI refuses these at create, not in the run
        try:
            split_gcs_uri(uri, "input_config.gcs_source.uris")
        except VideoActionsValueError as exc:
            problems.append(str(exc))
    if not job.output_config.gcs_destination.output_uri_prefix.startswith("gs://"):
        problems.append("output_config.gcs_destination.output_uri_prefix must start with gs://")
    problems += family_for_job(job).parameters(job)[1]
    if problems:
        raise AbortError(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(problems))


def output_directory(job: aiplatform_v1.BatchPredictionJob, model_display_name: str) -> str:
    """``{prefix}/prediction-{model display name, or "model" for Gemini}-{create time}``, where the run writes.

    As Vertex AI names it: the create time in RFC 3339 with microseconds (``2026-02-28T08:22:20.427871Z``).
    """
    prefix = job.output_config.gcs_destination.output_uri_prefix.rstrip("/")
    folder_model = family_for_job(job).output_folder_model(model_display_name)
    return f"{prefix}/prediction-{folder_model}-{job.create_time:%Y-%m-%dT%H:%M:%S.%f}Z"


def apply_read_mask(job: aiplatform_v1.BatchPredictionJob, paths: Iterable[str]) -> aiplatform_v1.BatchPredictionJob:
    """Keep only the masked top-level fields (plus ``name``); INVALID_ARGUMENT for unknown fields."""
    pb = aiplatform_v1.BatchPredictionJob.pb(copy_job(job))
    fields = pb.DESCRIPTOR.fields_by_name
    keep = {"name"}
    for path in paths:
        top = re.sub(r"(?<!^)([A-Z])", r"_\1", path.split(".")[0]).lower()
        if top not in fields:
            raise AbortError(
                grpc.StatusCode.INVALID_ARGUMENT, f"read_mask path {path!r} is not a BatchPredictionJob field"
            )
        keep.add(top)
    for descriptor, _ in pb.ListFields():
        if descriptor.name not in keep:
            pb.ClearField(descriptor.name)
    return aiplatform_v1.BatchPredictionJob.wrap(pb)


class JobServiceServicer:
    """Batch prediction half of the Vertex AI JobService, with knobs for timings and faults."""

    METHODS = (
        "CreateBatchPredictionJob",
        "GetBatchPredictionJob",
        "ListBatchPredictionJobs",
        "CancelBatchPredictionJob",
        "DeleteBatchPredictionJob",
    )

    def __init__(
        self, storage_endpoint: str, timeline: JobTimeline | None = None, models: ModelCatalog | None = None
    ) -> None:
        """Set the timeline (changes to it apply to the next tick); ``start()`` starts the ticker."""
        self.storage_endpoint = storage_endpoint
        self.timeline = timeline or JobTimeline()
        #: The models a create may name (the demo's and Gemini's unless more are added); kept by reset_knobs.
        self.models = models or ModelCatalog()
        self.calls: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        #: family name -> the emulated family's knobs (e.g. ``family_settings["gemini"].echo = "snake"``).
        self.family_settings = default_settings()
        #: filter string -> list calls made with it, so tests can tell one caller's lists from another's.
        self.list_filters: collections.Counter[str] = collections.Counter()
        self.created: list[str] = []
        #: Deleted jobs as they were when deleted: gone from the service, still readable by :meth:`job`.
        self._deleted: dict[str, aiplatform_v1.BatchPredictionJob] = {}
        #: The long-running operations deletes returned, served as ``google.longrunning.Operations``.
        self.operations = OperationStore()
        #: ``x-goog-api-client`` headers seen (the client library's user agent), for tests.
        self.api_clients: set[str] = set()
        self._lock = threading.RLock()
        self._jobs: dict[str, _Record] = {}
        self._ids = itertools.count(1)
        self._forced: dict[str | None, JobState] = {}
        #: Display names whose accepted cancels wait for :meth:`release_cancels`.
        self._held_cancels: set[str] = set()
        self._fault_rate, self._fault_methods, self._fault_code = (
            0.0,
            frozenset[str](),
            grpc.StatusCode.UNAVAILABLE,
        )
        self._fault_random = random.Random(0)
        self._fail_next: dict[str, collections.deque[grpc.StatusCode]] = collections.defaultdict(collections.deque)
        self._lose_next: dict[str, collections.deque[grpc.StatusCode]] = collections.defaultdict(collections.deque)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vertex-emulator-run")
        self._stopping = threading.Event()
        self._ticker = threading.Thread(target=self._tick_forever, name="vertex-emulator-ticker", daemon=True)

    def start(self) -> None:
        """Start advancing job timelines in the background."""
        self._ticker.start()

    # ----- knobs -----

    def force_outcome(self, state: str | None, display_name: str | None = None) -> None:
        """End jobs (all, or those with this display name) in ``state``.

        ``state=None`` removes that display name's rule, or every rule when ``display_name`` is None;
        paused jobs then finish as the remaining rules (or nature) say.
        """
        if state is not None and state not in FORCEABLE_STATES:
            raise ValueError(f"cannot force {state!r}; choose one of {sorted(FORCEABLE_STATES)}")
        with self._lock:
            if state is None and display_name is None:
                self._forced.clear()
            elif state is None:
                self._forced.pop(display_name, None)
            else:
                self._forced[display_name] = JobState[state]

    def hold_cancels(self, display_name: str) -> None:
        """Accept cancels of this display name's jobs but leave the jobs as they are until :meth:`release_cancels`.

        Vertex AI cancels asynchronously: a job may stay RUNNING for a while after its cancel was accepted.
        """
        with self._lock:
            self._held_cancels.add(display_name)

    def release_cancels(self, display_name: str) -> None:
        """Stop holding this display name's cancels; the ones accepted meanwhile land now (live jobs: CANCELLING)."""
        with self._lock:
            self._held_cancels.discard(display_name)
            for record in self._jobs.values():
                if record.cancel_requested and names_job(display_name, record.job.display_name):
                    record.cancel_requested = False
                    self._start_cancelling(record)

    def inject_faults(
        self,
        rate: float,
        methods: Iterable[str] | None = None,
        code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        seed: int = 0,
    ) -> None:
        """Abort that share of calls to ``methods`` (None = all) with ``code``, reproducibly per seed."""
        chosen = frozenset(self.METHODS if methods is None else methods)
        self._check_methods(chosen)
        with self._lock:
            self._fault_rate, self._fault_methods, self._fault_code = rate, chosen, code
            self._fault_random = random.Random(seed)

    def fail_next(self, method: str, count: int = 1, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        """Abort the next ``count`` calls to ``method`` with ``code`` (before any rate-based fault)."""
        self._check_methods({method})
        with self._lock:
            self._fail_next[method].extend([code] * count)

    def reset_knobs(self) -> None:
        """Back to a well-behaved service: no forced outcomes, no injected or pending faults, no held cancels."""
        with self._lock:
            for display_name in list(self._held_cancels):
                self.release_cancels(display_name)
            self._forced.clear()
            self._fault_rate = 0.0
            self.family_settings = default_settings()
            self._fail_next.clear()
            self._lose_next.clear()

    def lose_next_response(
        self, method: str, count: int = 1, code: grpc.StatusCode = grpc.StatusCode.DEADLINE_EXCEEDED
    ) -> None:
        """Do the next ``count`` calls to ``method``, then answer ``code``: a response lost on the way back."""
        self._check_methods({method})
        with self._lock:
            self._lose_next[method].extend([code] * count)

    def job(self, name: str) -> aiplatform_v1.BatchPredictionJob:
        """A copy of a job, for tests (a deleted one as it was deleted, so ``created`` stays readable); KeyError if
        never created."""
        with self._lock:
            self._advance_all()
            record = self._jobs.get(name)
            return copy_job(record.job if record is not None else self._deleted[name])

    def jobs(self) -> list[aiplatform_v1.BatchPredictionJob]:
        """Copies of every job, in creation order."""
        with self._lock:
            self._advance_all()
            return [copy_job(record.job) for record in self._jobs.values()]

    def close(self) -> None:
        """Stop the ticker, ask running jobs to stop and wait for the workers."""
        self._stopping.set()
        with self._lock:
            for record in self._jobs.values():
                record.cancelled.set()
        if self._ticker.is_alive():
            self._ticker.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _check_methods(self, methods: Iterable[str]) -> None:
        """Reject method names the service does not have (typos would silently never fault)."""
        unknown = set(methods) - set(self.METHODS)
        if unknown:
            raise ValueError(f"unknown JobService methods {sorted(unknown)}; known: {self.METHODS}")

    # ----- gRPC plumbing -----

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The handler to register on a grpc.server, speaking the real aiplatform v1 wire format."""
        v1 = aiplatform_v1
        handlers = {
            "CreateBatchPredictionJob": (
                self.create_job,
                v1.CreateBatchPredictionJobRequest,
                v1.BatchPredictionJob,
            ),
            "GetBatchPredictionJob": (self.get_job, v1.GetBatchPredictionJobRequest, v1.BatchPredictionJob),
            "ListBatchPredictionJobs": (
                self.list_jobs,
                v1.ListBatchPredictionJobsRequest,
                v1.ListBatchPredictionJobsResponse,
            ),
            "CancelBatchPredictionJob": (
                self.cancel_job,
                v1.CancelBatchPredictionJobRequest,
                empty_pb2.Empty,
            ),
            "DeleteBatchPredictionJob": (
                self.delete_job,
                v1.DeleteBatchPredictionJobRequest,
                operations_pb2.Operation,
            ),
        }
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                method: grpc.unary_unary_rpc_method_handler(
                    self._rpc(method, fn),
                    request_deserializer=request_type.deserialize,
                    response_serializer=getattr(response_type, "serialize", None) or response_type.SerializeToString,
                )
                for method, (fn, request_type, response_type) in handlers.items()
            },
        )

    def _rpc(self, method: str, fn: Callable) -> Callable:
        """Wrap a method with call counting, fault injection and AbortError -> gRPC status."""

        def handle(request: object, context: grpc.ServicerContext) -> object:
            try:
                with self._lock:
                    self.calls[method] += 1
                    self.api_clients.add(dict(context.invocation_metadata()).get("x-goog-api-client", ""))
                    self._maybe_fault(method)
                    self._advance_all()
                    response = fn(request)
                    self._maybe_lose(method)
                    return response
            except AbortError as exc:
                context.abort(exc.code, exc.message)

        return handle

    def _maybe_fault(self, method: str) -> None:
        """Raise an injected fault for this call, if one is due."""
        code = self._fail_next[method].popleft() if self._fail_next[method] else None
        if code is None and method in self._fault_methods and self._fault_random.random() < self._fault_rate:
            code = self._fault_code
        if code is not None:
            self.faults[method] += 1
            raise AbortError(code, f"Injected fault for {method} (emulator)")

    def _maybe_lose(self, method: str) -> None:
        """After the work is done, raise a lost-response fault for this call, if one is due."""
        if self._lose_next[method]:
            self.faults[method] += 1
            raise AbortError(self._lose_next[method].popleft(), f"Injected lost response for {method} (emulator)")

    # ----- RPC methods (called with the lock held) -----

    def create_job(self, request: aiplatform_v1.CreateBatchPredictionJobRequest) -> aiplatform_v1.BatchPredictionJob:
        """Validate and queue a new job named under the request's parent, for a model this emulator serves."""
        location = _location(request.parent)
        job = copy_job(request.batch_prediction_job)
        validate_job(job)
        self.models.check(location, job.model)
        for output_only in _OUTPUT_ONLY_FIELDS:
            aiplatform_v1.BatchPredictionJob.pb(job).ClearField(output_only)
        job.name = f"{request.parent}/batchPredictionJobs/{_ID_BASE + next(self._ids)}"
        job.create_time = job.update_time = _now()
        job.state = JobState.JOB_STATE_QUEUED
        self._jobs[job.name] = _Record(job=job, since=time.monotonic())
        self.created.append(job.name)
        log.info("created %s (%s)", job.name, job.display_name)
        return copy_job(job)

    def get_job(self, request: aiplatform_v1.GetBatchPredictionJobRequest) -> aiplatform_v1.BatchPredictionJob:
        """Return a job by name, or NOT_FOUND."""
        return copy_job(self._record(request.name).job)

    def list_jobs(
        self, request: aiplatform_v1.ListBatchPredictionJobsRequest
    ) -> aiplatform_v1.ListBatchPredictionJobsResponse:
        """Jobs under the parent matching the filter, one page at a time, honouring read_mask."""
        _location(request.parent)
        self.list_filters[request.filter] += 1
        selected = parse_filter(request.filter, self.models.display_name)
        prefix = f"{request.parent}/batchPredictionJobs/"
        matching = [r.job for r in self._jobs.values() if r.job.name.startswith(prefix) and selected(r.job)]
        start, size = self._page(request)
        page = matching[start : start + size]
        paths = list(request.read_mask.paths) if "read_mask" in request else []
        return aiplatform_v1.ListBatchPredictionJobsResponse(
            batch_prediction_jobs=[apply_read_mask(job, paths) if paths else copy_job(job) for job in page],
            next_page_token=str(start + size) if start + size < len(matching) else "",
        )

    def cancel_job(self, request: aiplatform_v1.CancelBatchPredictionJobRequest) -> empty_pb2.Empty:
        """Move a non-terminal job to CANCELLING; FAILED_PRECONDITION for a terminal one."""
        record = self._record(request.name)
        if record.job.state in TERMINAL_STATES:
            raise AbortError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"BatchPredictionJob {request.name} is already in terminal state {record.job.state.name}",
            )
        if any(names_job(rule, record.job.display_name) for rule in self._held_cancels):
            record.cancel_requested = True
        else:
            self._start_cancelling(record)
        return empty_pb2.Empty()

    def _start_cancelling(self, record: _Record) -> None:
        """Stop the job's run and move it to CANCELLING (a job already there, or finished, is left alone)."""
        if record.job.state not in TERMINAL_STATES and record.job.state != JobState.JOB_STATE_CANCELLING:
            record.cancelled.set()
            self._set_state(record, JobState.JOB_STATE_CANCELLING)

    def delete_job(self, request: aiplatform_v1.DeleteBatchPredictionJobRequest) -> operations_pb2.Operation:
        """Delete a terminal job; return a done long-running operation."""
        record = self._record(request.name)
        if record.job.state not in TERMINAL_STATES:
            raise AbortError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Job {request.name} is {record.job.state.name}; only finished jobs can be deleted",
            )
        self._deleted[request.name] = self._jobs.pop(request.name).job
        metadata = aiplatform_v1.DeleteOperationMetadata(
            generic_metadata=aiplatform_v1.GenericOperationMetadata(create_time=_now(), update_time=_now())
        )
        operation = operations_pb2.Operation(name=f"{request.name}/operations/{next(self._ids)}", done=True)
        operation.metadata.Pack(aiplatform_v1.DeleteOperationMetadata.pb(metadata))
        operation.response.CopyFrom(_packed(empty_pb2.Empty()))
        return self.operations.add(operation)

    def _record(self, name: str) -> _Record:
        """The record for a job name, or NOT_FOUND."""
        if name not in self._jobs:
            raise AbortError(grpc.StatusCode.NOT_FOUND, f"BatchPredictionJob {name} not found")
        return self._jobs[name]

    @staticmethod
    def _page(request: aiplatform_v1.ListBatchPredictionJobsRequest) -> tuple[int, int]:
        """Offset and size of the requested page (tokens are offsets)."""
        if request.page_size < 0:
            raise AbortError(grpc.StatusCode.INVALID_ARGUMENT, "page_size must not be negative")
        if request.page_token and not request.page_token.isdigit():
            raise AbortError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid page_token {request.page_token!r}")
        return int(request.page_token or 0), request.page_size or 100

    # ----- timeline -----

    def _tick_forever(self) -> None:
        """Advance every job's timeline until the service closes."""
        while not self._stopping.wait(_TICK_SECONDS):
            with self._lock:
                self._advance_all()

    def _advance_all(self) -> None:
        """Move every job through every transition that is due (none once the service is closing)."""
        if self._stopping.is_set():
            return
        for record in self._jobs.values():
            while self._advance(record):
                pass

    def _advance(self, record: _Record) -> bool:
        """Make at most one due transition; return whether one happened."""
        state, elapsed = record.job.state, time.monotonic() - record.since
        if state == JobState.JOB_STATE_QUEUED and elapsed >= self.timeline.queued_seconds:
            self._set_state(record, JobState.JOB_STATE_PENDING)
        elif state == JobState.JOB_STATE_PENDING and elapsed >= self.timeline.pending_seconds:
            self._start_running(record)
        elif self._run_over(record, elapsed):
            self._finish(record, *self._outcome(record))
        elif state == JobState.JOB_STATE_CANCELLING and elapsed >= self.timeline.cancelling_seconds and _idle(record):
            self._finish(record, JobState.JOB_STATE_CANCELLED, _FORCED_ERRORS[JobState.JOB_STATE_CANCELLED])
        else:
            return False
        return True

    def _run_over(self, record: _Record, elapsed: float) -> bool:
        """Whether a running job has had its running time and its worker is done, or a pause was lifted."""
        if record.job.state == JobState.JOB_STATE_RUNNING:
            return elapsed >= self.timeline.running_seconds and _idle(record)
        return record.job.state == JobState.JOB_STATE_PAUSED and self._forced_state(record) != record.job.state

    def _set_state(self, record: _Record, state: JobState) -> None:
        """Change state, stamping update_time and restarting the phase clock."""
        record.job.state = state
        record.job.update_time = _now()
        record.since = time.monotonic()
        log.info("%s -> %s", record.job.name, state.name)

    def _start_running(self, record: _Record) -> None:
        """Enter RUNNING and hand the job to a worker."""
        family = family_for_job(record.job)
        spec = runner.BatchSpec(
            instances_uris=list(record.job.input_config.gcs_source.uris),
            output_directory=self._output_directory(record.job),
            lines_per_file=self.timeline.lines_per_file,
            parameters=family.parameters(record.job)[0],
            settings=self.family_settings.get(family.NAME),
        )
        record.job.start_time = _now()
        self._set_state(record, JobState.JOB_STATE_RUNNING)
        record.future = self._pool.submit(self._run, spec, family.run_lines, record.cancelled)

    def _run(self, spec: runner.BatchSpec, run_lines: runner.RunLines, cancelled: threading.Event) -> runner.RunResult:
        """Worker body: run the batch; an unexpected error fails the job with INTERNAL."""
        try:
            return runner.run_batch(runner.storage_client(self.storage_endpoint), spec, run_lines, cancelled)
        except Exception as exc:  # any crash of the emulated backend fails only this job
            log.exception("batch run crashed")
            return runner.RunResult(error=(code_pb2.INTERNAL, f"Internal error while running the job: {exc}"))

    def _output_directory(self, job: aiplatform_v1.BatchPredictionJob) -> str:
        """Where this job's run writes, named after its model's display name."""
        return output_directory(job, self.models.display_name(job.model))

    def _forced_state(self, record: _Record) -> JobState | None:
        """The forced outcome for this job, if a rule applies (the most specific display name rule first)."""
        named = [rule for rule in self._forced if rule is not None and names_job(rule, record.job.display_name)]
        return self._forced[max(named, key=len)] if named else self._forced.get(None)

    def _outcome(self, record: _Record) -> tuple[JobState, tuple[int, str] | None]:
        """Final state and error: the forced outcome if any, else SUCCEEDED unless the run failed."""
        forced = self._forced_state(record)
        if forced is not None:
            return forced, _FORCED_ERRORS.get(forced)
        error = record.future.result().error
        return (JobState.JOB_STATE_FAILED if error else JobState.JOB_STATE_SUCCEEDED), error

    def _finish(self, record: _Record, state: JobState, error: tuple[int, str] | None) -> None:
        """Enter ``state`` (terminal, or PAUSED) with ``error``, filling stats and outputs from the run."""
        job = record.job
        result = record.future.result() if record.future and record.future.done() else None
        if result is not None:
            job.completion_stats = aiplatform_v1.CompletionStats(
                successful_count=result.successful,
                failed_count=result.failed,
                incomplete_count=result.incomplete,
            )
            if result.error is None:
                job.output_info = aiplatform_v1.BatchPredictionJob.OutputInfo(
                    gcs_output_directory=self._output_directory(job)
                )
        if error:
            job.error = _status(*error)
        if state in TERMINAL_STATES:
            job.end_time = _now()
        self._set_state(record, state)


def _idle(record: _Record) -> bool:
    """Whether the job's worker (if any) has stopped, so its partial outputs are complete."""
    return record.future is None or record.future.done()


def _packed(message: object) -> any_pb2.Any:
    """Pack a protobuf message into an Any."""
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
