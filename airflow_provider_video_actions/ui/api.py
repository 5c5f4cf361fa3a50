"""The Moments tab's routes on the Airflow API server (Airflow 3.1+): the page, and one task instance's digest.

Both need a caller Airflow authenticates (the UI's session cookie, or a bearer token) who may read the DAG's
task instances (``requires_access_dag("GET", TASK_INSTANCE)``, as Airflow's own task-instance routes): anyone
else gets 401 or 403 and nothing more. The digest route reads one XCom row and at most one digest file of at
most :data:`~airflow_provider_video_actions.ui.digest.MAX_DIGEST_BYTES`, never the parse's records.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from fastapi import Depends, FastAPI, HTTPException, Query, status
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from airflow_provider_video_actions.job import VideoActionsValueError
from airflow_provider_video_actions.ui import digest

#: The operators whose task instances have a digest (by class name, as the task instance records it).
DIGEST_OPERATORS = ("ParseVideoActionPredictionsOperator", "CombineParseShardsOperator")
#: Where the plugin mounts this app on the API server.
URL_PREFIX = "/video-actions"

can_read_task_instance = Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE))
app = FastAPI(title="Video actions: moments", description=__doc__)


@app.get("/moments", response_class=HTMLResponse, dependencies=[can_read_task_instance])
def moments_page(dag_id: Annotated[str, Query()]) -> HTMLResponse:
    """The tab's page: plain HTML and JavaScript (no build step, nothing fetched from another site)."""
    page = files("airflow_provider_video_actions.ui").joinpath("static", "moments.html").read_text("utf-8")
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@app.get("/api/moments/{dag_id}/{run_id}/{task_id}", dependencies=[can_read_task_instance])
def task_instance_moments(
    dag_id: str, run_id: str, task_id: str, session: SessionDep, map_index: Annotated[int, Query(ge=-1)] = -1
) -> dict[str, Any]:
    """The task instance's digest (``kind: "moments"``), or why there is none (``kind: "none"``, a ``reason``)."""
    ti = session.scalar(
        select(TaskInstance).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
    )
    if ti is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No task instance {dag_id}/{run_id}/{task_id}[{map_index}].")
    pointer = _digest_pointer(session, ti)
    if pointer is None:
        return {"kind": "none", "reason": _no_digest_reason(ti)}
    where = f"{dag_id}/{run_id}/{task_id}[{map_index}]"
    try:
        found = _read_digest(pointer, where)
    except VideoActionsValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None
    if found is None:
        return {"kind": "none", "reason": f"The digest {pointer.get('uri')} no longer exists (deleted or moved)."}
    return {"kind": "moments", "operator": ti.operator, "digest": digest.as_json(found)}


def _digest_pointer(session: Any, ti: TaskInstance) -> dict[str, Any] | None:
    """The task instance's digest XCom (where its digest is, or the digest), if it wrote one."""
    value = session.scalar(
        select(XComModel.value).where(
            XComModel.dag_id == ti.dag_id,
            XComModel.run_id == ti.run_id,
            XComModel.task_id == ti.task_id,
            XComModel.map_index == ti.map_index,
            XComModel.key == digest.DIGEST_XCOM_KEY,
        )
    )
    while isinstance(value, (str, bytes)):  # stored as JSON text on some lines and databases
        value = json.loads(value)
    return value if isinstance(value, dict) else None


def _no_digest_reason(ti: TaskInstance) -> str:
    """Why a task instance has no digest: not a parse or combine task, or not (successfully) run yet."""
    if ti.operator not in DIGEST_OPERATORS:
        return (
            f"Not a parse task: {ti.task_id} is a {ti.operator}. The Moments tab shows the moments of "
            "ParseVideoActionPredictionsOperator and CombineParseShardsOperator tasks."
        )
    if ti.state == "success":
        return (
            f"No moments: this {ti.operator} succeeded without writing a moment digest (a provider version "
            "without the Moments tab ran it); run it again to see its moments here."
        )
    return f"No moments yet: this {ti.operator} is {ti.state or 'not run'}; the digest appears when it succeeds."


def _read_digest(pointer: dict[str, Any], where: str) -> digest.Digest | None:
    """The digest the XCom holds, or the file it names (read with the task's connection, bounded)."""
    if "digest" in pointer:
        return digest.from_xcom(pointer["digest"], f"the XCom of {where}")
    uri, conn_id, chain = pointer.get("uri"), pointer.get("gcp_conn_id"), pointer.get("impersonation_chain")
    if not isinstance(uri, str) or not isinstance(conn_id, str) or not uri.endswith(digest.DIGEST_SUFFIX):
        raise VideoActionsValueError(f"The digest XCom of {where} names no digest file: {str(pointer)[:300]!r}.")
    if not uri.startswith("gs://"):  # the API server reads no local file (or other filesystem) a task names
        raise VideoActionsValueError(
            f"The digest of {where} is at {uri}, not on GCS: the API server reads only gs:// digests, so the "
            "Moments tab needs a gs:// destination (or none: the digest then stays in XCom)."
        )
    return digest.read(digest.storage_client(conn_id, chain, uri), uri)
