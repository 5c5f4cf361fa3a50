"""Hooks for Vertex AI batch prediction jobs, on top of the GCS hook (:mod:`.storage`) for the objects around them.

Credentials, key files, ADC and impersonation come from the Google provider's ``GoogleBaseHook``
(connection ``google_cloud_default``). When ``VERTEX_AI_EMULATOR_HOST=host:port`` is set, the job
service client talks to that address over an insecure gRPC channel with no credentials and no
Airflow connection, whatever the region; GCS follows ``STORAGE_EMULATOR_HOST``, the storage
client's own convention. The clients are the real ``aiplatform_v1`` and ``google.cloud.storage``
ones either way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.google.common.hooks.base_google import GoogleBaseAsyncHook

# Imported with the module (which triggers import in a thread, see triggers.job_poll.hooks_module), not
# inside async methods, where their seconds-long first import would stall the triggerer's event loop.
from google.cloud.aiplatform_v1 import JobServiceAsyncClient, JobServiceClient
from google.cloud.aiplatform_v1.services.job_service.transports import (
    JobServiceGrpcAsyncIOTransport,
    JobServiceGrpcTransport,
)

from airflow_provider_video_actions.hooks.storage import (
    VideoActionStorageHook,
    client_info,
    vertex_emulator_host,
)
from airflow_provider_video_actions.job import (
    ACTIVE_STATES,
    CANCELLED_STATES,
    LEGACY_TASK_LABEL,
    REATTACH_STATES,
    TASK_LABEL,
    JobSpec,
    parse_job_name,
    state_name,
)

if TYPE_CHECKING:
    from google.cloud.aiplatform_v1 import BatchPredictionJob

log = logging.getLogger(__name__)


def _transient_errors() -> tuple[type[Exception], ...]:
    """API errors worth retrying: the service is briefly unavailable, overloaded or over quota."""
    from google.api_core import exceptions

    return (
        exceptions.ServiceUnavailable,
        exceptions.DeadlineExceeded,
        exceptions.InternalServerError,
        exceptions.Aborted,
        exceptions.TooManyRequests,  # RESOURCE_EXHAUSTED (429) is a subclass
    )


TRANSIENT_ERRORS = _transient_errors()

#: How long one call keeps retrying transient errors before giving up.
RETRY_SECONDS = 600.0
#: How long one attempt of one call may take: the client library's default is no limit at all, and a
#: call that never answers would hold a wait past its deadline.
CALL_SECONDS = 60.0


#: How gRPC words an UNAVAILABLE that is a name that does not resolve (a misspelled region's endpoint), not an outage.
UNRESOLVABLE_HOST_MESSAGES = (
    "DNS resolution failed",
    "errors resolving",
    "Domain name not found",
    "Name or service not known",
    "nodename nor servname",
)


def is_transient(exc: BaseException) -> bool:
    """Whether an API error is worth retrying: a transient kind, and not an endpoint whose name does not resolve."""
    return isinstance(exc, TRANSIENT_ERRORS) and not is_unresolvable_host(exc)


def is_unresolvable_host(exc: BaseException) -> bool:
    """Whether the error says the endpoint's host name does not resolve (permanent: a DNS name does not appear)."""
    from google.api_core.exceptions import ServiceUnavailable

    return isinstance(exc, ServiceUnavailable) and any(text in str(exc) for text in UNRESOLVABLE_HOST_MESSAGES)


def transient_retry(what: str, log: Any, timeout: float = RETRY_SECONDS) -> Any:
    """An api_core ``Retry`` for transient errors: exponential backoff with jitter, each retry logged."""
    from google.api_core.retry import Retry

    return Retry(
        predicate=is_transient,
        initial=1.0,
        maximum=30.0,
        multiplier=2.0,
        timeout=timeout,
        on_error=lambda exc: log.warning("%s failed transiently (%s); retrying with backoff", what, exc),
    )


def explain_api_error(exc: Exception, what: str, project_id: str, region: str) -> str:
    """A message for a permanent API error: what failed, where, and the likely fix."""
    from google.api_core import exceptions

    hints = {
        exceptions.PermissionDenied: "the credentials of gcp_conn_id (or impersonation_chain) need "
        "roles/aiplatform.user on the project, and the Vertex AI API must be enabled",
        exceptions.Unauthenticated: "the credentials of gcp_conn_id are missing, invalid or expired",
        exceptions.NotFound: "check the resource name, project_id and region (jobs and models are regional)",
        exceptions.InvalidArgument: "Vertex AI rejected the request: check the model, the input URIs and "
        "the parameters in the message",
        exceptions.FailedPrecondition: "the resource is not in a state that allows this call",
    }
    hint = next((text for kind, text in hints.items() if isinstance(exc, kind)), "see the error above")
    if is_unresolvable_host(exc):
        hint = f"the endpoint of region {region!r} does not resolve: check the region's spelling"
    return f"{what} failed in project {project_id}, region {region}: {describe_api_error(exc)}. Likely fix: {hint}."


def explain_read_error(exc: Exception, job_name: str) -> str:
    """:func:`explain_api_error` for a read of one job, with the project and region its name holds."""
    project, region, _ = parse_job_name(job_name)
    return explain_api_error(exc, f"Reading {job_name}", project, region)


def describe_api_error(exc: BaseException) -> str:
    """``CODE: message`` for a Google API error (its own ``str`` reads ``None ...`` for UNKNOWN)."""
    code = getattr(exc, "grpc_status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    return f"{code.name if code is not None else type(exc).__name__}: {message}"


def _api_endpoint(region: str) -> str:
    """Vertex AI serves each region from its own endpoint, and ``global`` from the plain one (as Google's provider)."""
    return "aiplatform.googleapis.com:443" if region == "global" else f"{region}-aiplatform.googleapis.com:443"


class VideoActionBatchPredictionHook(VideoActionStorageHook):
    """Create, read, list and cancel batch prediction jobs; read and write their GCS files (the storage hook's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._job_clients: dict[str, JobServiceClient] = {}

    def job_client(self, region: str) -> JobServiceClient:
        """The job service client for a region (emulator: one insecure channel), cached per hook."""
        if region not in self._job_clients:
            if host := vertex_emulator_host():
                import grpc

                transport = JobServiceGrpcTransport(channel=grpc.insecure_channel(host), client_info=client_info())
                self._job_clients[region] = JobServiceClient(transport=transport)
            else:
                self._job_clients[region] = JobServiceClient(
                    credentials=self.get_credentials(),
                    client_info=client_info(),
                    client_options=self.get_client_options(api_endpoint_override=_api_endpoint(region)),
                )
        return self._job_clients[region]

    def create_job(self, spec: JobSpec) -> BatchPredictionJob:
        """Submit the job described by ``spec`` once (no retry here: a retried create can bill twice)."""
        return self.job_client(spec.region).create_batch_prediction_job(
            parent=spec.parent, batch_prediction_job=spec.to_proto(), timeout=CALL_SECONDS
        )

    def get_job(self, name: str, retry_seconds: float = RETRY_SECONDS) -> BatchPredictionJob:
        """Read a job by its full resource name, retrying transient errors for up to ``retry_seconds``."""
        return self.job_client(parse_job_name(name)[1]).get_batch_prediction_job(
            name=name, retry=transient_retry(f"Reading {name}", self.log, retry_seconds), timeout=CALL_SECONDS
        )

    def list_jobs(
        self, project_id: str, region: str, filter_: str, retry_seconds: float = RETRY_SECONDS
    ) -> list[BatchPredictionJob]:
        """Jobs of a project and region matching a list filter (e.g. ``labels.key="value"``), all pages."""
        retry = transient_retry(f"Listing jobs ({filter_})", self.log, retry_seconds)
        pages = self.job_client(region).list_batch_prediction_jobs(
            request={"parent": f"projects/{project_id}/locations/{region}", "filter": filter_},
            retry=retry,
            timeout=CALL_SECONDS,
        )
        return list(pages)

    def find_job(self, spec: JobSpec, retry_seconds: float = RETRY_SECONDS) -> BatchPredictionJob | None:
        """The newest job labelled for the spec's task instance that provably was asked for its request.

        Jobs of the previous release (hyphenated label keys, no request label) are looked up too, for
        one release, and re-attached only while still running, on their resource fields alone. A job
        for this request that is being cancelled (or was) is named in the log, never re-attached.
        """
        task_label = spec.labels[TASK_LABEL]
        jobs = self._labelled(spec, TASK_LABEL, task_label, REATTACH_STATES | CANCELLED_STATES, retry_seconds)
        for job in jobs:
            if state_name(job) in CANCELLED_STATES and not spec.mismatch(job):
                self.log.info(
                    "Not re-attaching to %s, an earlier try's job for this request: it is %s (cancelled by that "
                    "try's kill or timeout, or by hand)",
                    job.name,
                    state_name(job),
                )
        candidates = [job for job in jobs if state_name(job) in REATTACH_STATES]
        legacy = self._labelled(spec, LEGACY_TASK_LABEL, task_label, ACTIVE_STATES, retry_seconds)
        for job, is_legacy in [*((j, False) for j in candidates), *((j, True) for j in legacy)]:
            if why := spec.mismatch(job, legacy=is_legacy):
                self.log.info("Not re-attaching to %s (%s): %s", job.name, state_name(job), why)
                if state_name(job) in ACTIVE_STATES:
                    self.log.warning(
                        "%s carries this task instance's label and is still %s, but was asked for other work: "
                        "it is not awaited and keeps running (and billing). Cancel it if it is not wanted.",
                        job.name,
                        state_name(job),
                    )
                continue
            return job
        return None

    def _labelled(
        self, spec: JobSpec, key: str, value: str, states: frozenset[str], retry_seconds: float
    ) -> list[BatchPredictionJob]:
        """Jobs with ``labels.<key>=value`` in one of ``states``, newest first.

        The legacy key has a hyphen, which Vertex AI's filter syntax may refuse: then there is nothing to find.
        """
        from google.api_core.exceptions import InvalidArgument

        try:
            jobs = self.list_jobs(spec.project_id, spec.region, f'labels.{key}="{value}"', retry_seconds)
        except InvalidArgument:
            if key != LEGACY_TASK_LABEL:
                raise
            return []
        return sorted((j for j in jobs if state_name(j) in states), key=lambda j: j.create_time, reverse=True)

    def create_job_once(self, spec: JobSpec, retry_seconds: float = RETRY_SECONDS) -> BatchPredictionJob:
        """Create the job once; after a non-transient error, look whether it was made anyway before failing."""
        from google.api_core.exceptions import GoogleAPICallError

        try:
            job = self.create_job(spec)
        except GoogleAPICallError as exc:
            if isinstance(exc, TRANSIENT_ERRORS) or not (job := self.find_job(spec, retry_seconds)):
                raise
            self.log.warning(
                "Creating the job answered %s, but it was made: using %s", describe_api_error(exc), job.name
            )
        else:
            self.log.info("Created %s reading %s", job.name, ", ".join(spec.instances_uris))
        return job

    def cancel_job(self, name: str) -> None:
        """Ask Vertex AI to cancel a job (best effort: it passes through CANCELLING), retrying transient errors."""
        self.job_client(parse_job_name(name)[1]).cancel_batch_prediction_job(
            name=name, retry=transient_retry(f"Cancelling {name}", self.log), timeout=CALL_SECONDS
        )


class VideoActionBatchPredictionAsyncHook(GoogleBaseAsyncHook):
    """The triggerer's side: read and cancel jobs without blocking the event loop."""

    sync_hook_class = VideoActionBatchPredictionHook

    def __init__(
        self,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id, impersonation_chain=impersonation_chain, **kwargs)
        self._job_clients: dict[str, JobServiceAsyncClient] = {}

    async def job_client(self, region: str) -> JobServiceAsyncClient:
        """The async job service client for a region, cached per hook."""
        if region not in self._job_clients:
            if host := vertex_emulator_host():
                import grpc

                channel = grpc.aio.insecure_channel(host)
                transport = JobServiceGrpcAsyncIOTransport(channel=channel, client_info=client_info())
                self._job_clients[region] = JobServiceAsyncClient(transport=transport)
            else:
                from asgiref.sync import sync_to_async

                sync_hook = await self.get_sync_hook()
                self._job_clients[region] = JobServiceAsyncClient(
                    credentials=await sync_to_async(sync_hook.get_credentials)(),
                    client_info=client_info(),
                    client_options=sync_hook.get_client_options(api_endpoint_override=_api_endpoint(region)),
                )
        return self._job_clients[region]

    async def get_job(self, name: str) -> BatchPredictionJob:
        """Read a job by its full resource name."""
        client = await self.job_client(parse_job_name(name)[1])
        return await client.get_batch_prediction_job(name=name, timeout=CALL_SECONDS)

    async def list_jobs(self, project_id: str, region: str, filter_: str, read_mask: str) -> list[BatchPredictionJob]:
        """Every page of jobs matching a filter, with only the ``read_mask`` fields (comma-separated)."""
        from google.protobuf import field_mask_pb2

        client = await self.job_client(region)
        pager = await client.list_batch_prediction_jobs(
            request={
                "parent": f"projects/{project_id}/locations/{region}",
                "filter": filter_,
                "page_size": 1000,
                "read_mask": field_mask_pb2.FieldMask(paths=read_mask.split(",")),
            },
            timeout=CALL_SECONDS,
        )
        return [job async for job in pager]

    async def cancel_job(self, name: str) -> None:
        """Ask Vertex AI to cancel a job, retrying transient errors."""
        from google.api_core.retry import AsyncRetry

        client = await self.job_client(parse_job_name(name)[1])
        retry = AsyncRetry(predicate=is_transient, initial=1.0, maximum=10.0, timeout=25.0)
        await client.cancel_batch_prediction_job(name=name, retry=retry, timeout=CALL_SECONDS)
