"""Point Google's own Vertex AI clients (the Google provider's hooks and operators, the aiplatform SDK) at the emulator.

Google's clients open a TLS gRPC channel to ``<region>-aiplatform.googleapis.com:443``, and the emulator speaks
plain-text gRPC. :func:`use_emulator_for_google_clients` changes only that: while ``VERTEX_AI_EMULATOR_HOST`` is
set, every channel google.api_core opens to a Vertex AI endpoint is a plain-text channel to the emulator; the
clients, their requests and their credentials are Google's own (use an anonymous Airflow connection, below).
Other Google APIs are untouched, and GCS already follows ``STORAGE_EMULATOR_HOST``. It lives outside the emulator
package, so a DAG file that keeps the call in production needs neither the emulator nor its extra.

    AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT='{"conn_type": "google_cloud_platform", "extra": {"is_anonymous": true}}'
"""

from __future__ import annotations

import functools
from typing import Any

import grpc
from google.api_core import grpc_helpers, grpc_helpers_async

#: The endpoints of Vertex AI: ``aiplatform.googleapis.com`` and its regional ``<region>-aiplatform.googleapis.com``.
VERTEX_AI_DOMAIN = "aiplatform.googleapis.com"


def use_emulator_for_google_clients() -> None:
    """Make Google's Vertex AI clients in this process reach ``VERTEX_AI_EMULATOR_HOST`` over plain-text gRPC.

    Idempotent; does nothing to a client while the variable is unset (call it at the top of a DAG file, or
    wherever a process starts). The channel is plain text, so the emulator must be on this machine (the
    provider's own rule, :func:`~airflow_provider_video_actions.hooks.batch_prediction.vertex_emulator_host`).
    """
    for module, plain_channel in (
        (grpc_helpers, grpc.insecure_channel),
        (grpc_helpers_async, grpc.aio.insecure_channel),
    ):
        if not getattr(module.create_channel, "routes_to_emulator", False):
            module.create_channel = _routed(module.create_channel, plain_channel)


def _routed(create_channel: Any, plain_channel: Any) -> Any:
    """``create_channel``, but a Vertex AI target becomes a plain-text channel to the emulator when one is set."""

    @functools.wraps(create_channel)
    def create(target: str, *args: Any, **kwargs: Any) -> Any:
        # Imported here: a DAG file calling use_emulator_for_google_clients() stays cheap to parse.
        from airflow_provider_video_actions.hooks.storage import vertex_emulator_host

        host = vertex_emulator_host() if _is_vertex_ai(target) else None
        if host is None:
            return create_channel(target, *args, **kwargs)
        return plain_channel(host)

    create.routes_to_emulator = True  # type: ignore[attr-defined]
    return create


def _is_vertex_ai(target: str) -> bool:
    """Whether a channel target (``host:port``) is a Vertex AI endpoint."""
    name = target.rpartition(":")[0] if ":" in target else target
    return name == VERTEX_AI_DOMAIN or name.endswith(f"-{VERTEX_AI_DOMAIN}")
