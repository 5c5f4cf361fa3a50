"""The console link to a batch prediction job, shown on the submit operator and the sensor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

from airflow_provider_video_actions.job import console_url

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, TaskInstanceKey

#: XCom key holding the full resource name of the job a task submitted or waited on.
JOB_NAME_XCOM_KEY = "batch_prediction_job_name"


class VideoActionBatchPredictionJobLink(BaseOperatorLink):
    """Links a task to its job's page in the Google Cloud console (stored as soon as the job exists)."""

    name = "Vertex AI Batch Prediction Job"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The console URL, or an empty string before the task has a job."""
        job_name: Any = XCom.get_value(key=JOB_NAME_XCOM_KEY, ti_key=ti_key)
        return console_url(job_name) if job_name else ""
