"""The provider's error types, in a module of their own so that raising one imports nothing else of the provider.

:class:`VideoActionsValueError` is also importable from :mod:`airflow_provider_video_actions.job`, where it has
always been.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowFailException


class VideoActionsValueError(AirflowFailException, ValueError):
    """A parameter is invalid; the message names the parameter, what was wrong and how to fix it.

    An AirflowFailException, so it fails the task without a retry wherever Airflow meets it: in execute, and in
    the constructor of a mapped instance, which Airflow (2 and 3) runs while rendering templates, inside the try.
    """


class JobFailedError(RuntimeError):
    """The job ended in a state that fails the task; the message names the job, its state and why."""
