"""What an older common-compat lacks: Cloud Composer's images pin releases older than this package's newest.

``ResumableJobMixin`` reached ``airflow.providers.common.compat.sdk`` in common-compat 1.23.0, and
Composer's Airflow 3.3.1 image carries 1.18.0. Where common-compat lacks it, the mixin comes from the
Task SDK (Airflow >= 3.3) and, on older Airflow, from the stand-in below: the same thing common-compat
1.23.0 gives those versions. It submits, waits and returns on every try, with no task state store to
resume from; the operator's own lookup by task label still re-attaches a retry to its job.
"""

from __future__ import annotations

from typing import Any

try:
    from airflow.providers.common.compat.sdk import ResumableJobMixin
except ImportError:  # common-compat < 1.23.0
    try:
        from airflow.sdk import ResumableJobMixin
    except ImportError:  # Airflow < 3.3

        class ResumableJobMixin:  # type: ignore[no-redef]
            """Airflow < 3.3 stand-in: submit, wait and return on every try (no task state store to resume from)."""

            external_id_key: str = "remote_job_id"

            def execute_resumable(self, context: Any) -> Any:
                """Submit the job, wait for it, and return its result."""
                external_id = self.submit_job(context)  # type: ignore[attr-defined]
                self.poll_until_complete(external_id, context)  # type: ignore[attr-defined]
                return self.get_job_result(external_id, context)  # type: ignore[attr-defined]


__all__ = ["ResumableJobMixin"]
