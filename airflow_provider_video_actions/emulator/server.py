"""The local Vertex AI + GCS emulator: a plain-text gRPC JobService and an in-memory GCS server."""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

import grpc
from gcp_storage_emulator.server import create_server
from google.cloud import aiplatform_v1, storage
from google.cloud.aiplatform_v1.services.job_service.transports import JobServiceGrpcTransport

from airflow_provider_video_actions.emulator import runner, storage_layer
from airflow_provider_video_actions.emulator.catalog import ModelCatalog
from airflow_provider_video_actions.emulator.job_service import JobServiceServicer, JobTimeline
from airflow_provider_video_actions.emulator.model_service import ModelServiceServicer
from airflow_provider_video_actions.hooks.storage import STORAGE_EMULATOR_ENV, VERTEX_EMULATOR_ENV

log = logging.getLogger(__name__)


def _check_port_free(host: str, port: int) -> None:
    """Raise OSError if the port is taken: gcp-storage-emulator would hang on a failed bind in its thread."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _delegated(name: str) -> property:
    """A property that reads and writes the servicer attribute (knob or counter) of the same name."""
    return property(
        lambda self: getattr(self.service, name),
        lambda self, value: setattr(self.service, name, value),
        doc=f"Same as ``service.{name}``.",
    )


def _call_target(method: str, request: Any) -> str:
    """What a call was about: the job name, the list filter, or the new job's display name."""
    if method == "ListBatchPredictionJobs":
        return f"filter={request.filter}"
    if method == "CreateBatchPredictionJob":
        return f"display_name={request.batch_prediction_job.display_name}"
    return getattr(request, "name", "")


class CallLog(grpc.ServerInterceptor):
    """Logs every JobService call at INFO (method, job or filter, outcome) and keeps the latest entries.

    Entries are dicts ``{"time": epoch seconds, "method", "target", "outcome": status code name, "job"}``
    (``job`` is the created job's name for a successful create), readable from other processes
    through the control API.
    """

    def __init__(self, limit: int = 100_000) -> None:
        """Keep at most ``limit`` entries (the oldest go first)."""
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=limit)
        self._lock = threading.Lock()

    def entries(self) -> list[dict[str, Any]]:
        """A copy of the kept entries, oldest first."""
        with self._lock:
            return list(self._entries)

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None], details: Any
    ) -> grpc.RpcMethodHandler | None:
        """Wrap the unary handler so that its outcome is logged and recorded."""
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method, inner = details.method.rsplit("/", 1)[-1], handler.unary_unary

        def logged(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                response = inner(request, context)
            except BaseException:
                self._record(method, request, (context.code() or grpc.StatusCode.UNKNOWN).name, "")
                raise
            self._record(method, request, "OK", getattr(response, "name", "") if "Create" in method else "")
            return response

        return grpc.unary_unary_rpc_method_handler(
            logged,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _record(self, method: str, request: Any, outcome: str, job: str) -> None:
        """Log one call and keep it."""
        target = _call_target(method, request)
        log.info("%s %s -> %s%s", method, target, outcome, f" ({job})" if job else "")
        with self._lock:
            self._entries.append(
                {"time": time.time(), "method": method, "target": target, "outcome": outcome, "job": job}
            )


class Emulator:
    """Starts the emulated Vertex AI JobService and GCS on local ports; use as a context manager.

    The servicer's knobs and counters (``timeline``, ``force_outcome``, ``inject_faults``, ``calls``...) are
    available directly on the emulator as well as on ``emulator.service``; ``call_log`` keeps every call.
    """

    timeline = _delegated("timeline")
    calls = _delegated("calls")
    faults = _delegated("faults")
    list_filters = _delegated("list_filters")
    created = _delegated("created")
    force_outcome = _delegated("force_outcome")
    inject_faults = _delegated("inject_faults")
    fail_next = _delegated("fail_next")
    lose_next_response = _delegated("lose_next_response")
    hold_cancels = _delegated("hold_cancels")
    release_cancels = _delegated("release_cancels")
    job = _delegated("job")
    jobs = _delegated("jobs")

    def __init__(
        self,
        host: str = "127.0.0.1",
        vertex_port: int = 0,
        storage_port: int = 0,
        buckets: Sequence[str] = (),
        timeline: JobTimeline | None = None,
        models: Sequence[str] = (),
    ) -> None:
        """Configure; nothing listens until ``start()``. Port 0 picks a free port.

        ``models`` are served besides the demo's and Gemini's (see ``catalog.py``); others are NOT_FOUND.
        """
        self.host, self._vertex_port, self._storage_port = host, vertex_port, storage_port
        self.buckets = list(dict.fromkeys(buckets))
        self.service = JobServiceServicer(storage_endpoint="", timeline=timeline, models=ModelCatalog(models))
        self.call_log = CallLog()
        self._storage_server = None
        self._grpc_server: grpc.Server | None = None

    def reset_knobs(self) -> None:
        """Back to well-behaved services: the job service's knobs (``JobServiceServicer.reset_knobs``), and no
        download of this process's GCS cut short."""
        self.service.reset_knobs()
        storage_layer.cut_next_downloads(0)

    @staticmethod
    def cut_next_downloads(count: int = 1) -> None:
        """GCS loses the connection half way through each of the next ``count`` downloads (see storage_layer)."""
        storage_layer.cut_next_downloads(count)

    def add_model(self, model: str | int) -> str:
        """Serve one more model (an ID, a full model name or a Gemini name); return the form recorded."""
        return self.service.models.add(model)

    @property
    def vertex_host(self) -> str:
        """``host:port`` of the gRPC JobService (plain text)."""
        self._require_started()
        return f"{self.host}:{self._vertex_port}"

    @property
    def storage_host(self) -> str:
        """``http://host:port`` of the GCS server, the form STORAGE_EMULATOR_HOST expects."""
        self._require_started()
        return f"http://{self.host}:{self._storage_port}"

    def env(self, host: str | None = None) -> dict[str, str]:
        """Environment variables that point clients at this emulator (by ``host``, default the bound address)."""
        self._require_started()
        host = host or self.host
        return {
            VERTEX_EMULATOR_ENV: f"{host}:{self._vertex_port}",
            STORAGE_EMULATOR_ENV: f"http://{host}:{self._storage_port}",
        }

    def storage_client(self) -> storage.Client:
        """A google-cloud-storage client for the emulated GCS (anonymous, project "emulator")."""
        return runner.storage_client(self.storage_host)

    def job_client(self) -> aiplatform_v1.JobServiceClient:
        """A real aiplatform_v1 JobServiceClient over a plain-text channel to the emulator."""
        transport = JobServiceGrpcTransport(channel=grpc.insecure_channel(self.vertex_host))
        return aiplatform_v1.JobServiceClient(transport=transport)

    def start(self) -> Emulator:
        """Start GCS (creating the buckets), then the JobService; return self."""
        self._start_storage()
        try:
            self._start_vertex()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both servers and the job workers; safe to call twice."""
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=0.5).wait()
            self._grpc_server = None
        self.service.close()
        if self._storage_server is not None:
            self._storage_server.stop()
            self._storage_server = None

    def __enter__(self) -> Emulator:
        """Start on entry."""
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop on exit."""
        self.stop()

    def _start_storage(self) -> None:
        """Run gcp-storage-emulator in memory in this process and create the requested buckets."""
        if self._storage_port:
            _check_port_free(self.host, self._storage_port)
        storage_layer.install()
        self._storage_server = create_server(self.host, self._storage_port, in_memory=True)
        self._storage_server.start()
        # The package has no public accessor for the bound port; needed when port 0 was requested.
        self._storage_port = self._storage_server._api._httpd.server_port
        self.service.storage_endpoint = self.storage_host
        client = self.storage_client()
        for bucket in self.buckets:
            client.create_bucket(bucket)

    def _start_vertex(self) -> None:
        """Serve the JobService, its Operations and the ModelService on a plain-text port with a 16-thread pool."""
        server = grpc.server(
            ThreadPoolExecutor(max_workers=16, thread_name_prefix="vertex-emulator-grpc"),
            interceptors=[self.call_log],
            options=[("grpc.so_reuseport", 0)],  # a taken port must fail, not be shared with another server
        )
        services = (self.service, self.service.operations, ModelServiceServicer(self.service.models))
        server.add_generic_rpc_handlers(tuple(service.generic_handler() for service in services))
        self._vertex_port = server.add_insecure_port(f"{self.host}:{self._vertex_port}")
        server.start()
        self._grpc_server = server
        self.service.start()

    def _require_started(self) -> None:
        """Addresses exist only once the servers are bound."""
        if self._storage_server is None:
            raise RuntimeError("Emulator is not running: call start() or use it as a context manager")
