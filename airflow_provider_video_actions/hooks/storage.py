"""The GCS hook: a storage client with the Airflow connection's credentials, or anonymous against the emulator.

Credentials, key files, ADC and impersonation come from the Google provider's ``GoogleBaseHook`` (connection
``google_cloud_default``). GCS follows ``STORAGE_EMULATOR_HOST``, the storage client's own convention; the job
service follows ``VERTEX_AI_EMULATOR_HOST=host:port`` (:func:`vertex_emulator_host`), and either set skips the
connection. This module imports no Vertex AI client: a task that only reads or writes files (the parse) is
spared its ~75 MB and ~3 CPU seconds of imports. The job service's hook
(:mod:`.batch_prediction`) builds on this one.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import urllib.parse
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook
from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

if TYPE_CHECKING:
    from google.cloud import storage

VERTEX_EMULATOR_ENV = "VERTEX_AI_EMULATOR_HOST"
STORAGE_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
ALLOW_REMOTE_EMULATOR_ENV = "VIDEO_ACTIONS_ALLOW_REMOTE_EMULATOR"

log = logging.getLogger(__name__)
#: Emulator hosts already announced by this process (one warning each, not one per hook).
_announced: set[str] = set()


def vertex_emulator_host() -> str | None:
    """The ``host:port`` of a local job service emulator, if one is configured, checked and announced.

    The emulator gets plain-text gRPC and no credentials, so a host off this machine is refused unless
    ``VIDEO_ACTIONS_ALLOW_REMOTE_EMULATOR=1``: job requests (service accounts, KMS key names) would cross
    the network unencrypted. A loud warning names the host once per process, so nobody mistakes it for Google.
    """
    host = os.environ.get(VERTEX_EMULATOR_ENV) or None
    if host and host not in _announced:
        if not _is_loopback(host) and os.environ.get(ALLOW_REMOTE_EMULATOR_ENV) != "1":
            raise ValueError(
                f"{VERTEX_EMULATOR_ENV}={host!r} is not on this machine: the emulator speaks plain-text gRPC with "
                f"no credentials. Point it at 127.0.0.1, or set {ALLOW_REMOTE_EMULATOR_ENV}=1 if you mean it."
            )
        log.warning(
            "%s=%s is set: Vertex AI calls go to that local emulator, NOT to Google Cloud, over plain-text gRPC; "
            "the Airflow connection is not used. Unset it to use Vertex AI.",
            VERTEX_EMULATOR_ENV,
            host,
        )
        _announced.add(host)
    return host


def _is_loopback(host: str) -> bool:
    """Whether ``host:port`` names this machine (localhost, 127.0.0.0/8, ::1)."""
    name = urllib.parse.urlsplit(f"//{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def client_info() -> Any:
    """The Google provider's ``client_info``: its user agent on every request, as its own clients send it."""
    from airflow.providers.google.common.consts import CLIENT_INFO

    return CLIENT_INFO


class VideoActionStorageHook(GoogleBaseHook):
    """Read and write the GCS objects around batch prediction jobs (instances files, output, parsed records)."""

    conn_name_attr = "gcp_conn_id"
    default_conn_name = "google_cloud_default"
    conn_type = "google_cloud_platform"
    hook_name = "Google Cloud (video actions)"

    def __init__(
        self,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if vertex_emulator_host():
            # The emulator is anonymous: skip GoogleBaseHook's connection lookup entirely.
            BaseHook.__init__(self, **kwargs)
            self.gcp_conn_id, self.impersonation_chain, self.extras = gcp_conn_id, impersonation_chain, {}
            self.quota_project_id = None
            self._cached_credentials, self._cached_project_id = None, None
        else:
            super().__init__(gcp_conn_id=gcp_conn_id, impersonation_chain=impersonation_chain, **kwargs)

    @cached_property
    def storage_client(self) -> storage.Client:
        """A GCS client: anonymous against ``STORAGE_EMULATOR_HOST``, else this connection's credentials."""
        from google.cloud import storage

        if os.environ.get(STORAGE_EMULATOR_ENV):
            return storage.Client(project="emulator")
        if vertex_emulator_host():
            raise RuntimeError(
                f"{VERTEX_EMULATOR_ENV} is set but {STORAGE_EMULATOR_ENV} is not: set both to use the emulator, "
                "or neither to use Google Cloud."
            )
        return storage.Client(credentials=self.get_credentials(), project=self.project_id, client_info=client_info())
