"""The Moments tab: an Airflow plugin the provider registers (``get_provider_info()["plugins"]``).

On Airflow 3.1 and later it mounts :mod:`airflow_provider_video_actions.ui.api` on the API server and adds an
external view (an iframe tab) to every task-instance page; Airflow cannot restrict a tab to some operators, so
on other tasks the tab says "Not a parse task". On Airflow 2.11 and 3.0 (no task-instance views) the plugin
registers nothing, and this module imports nothing beyond Airflow's plugin class.
"""

from __future__ import annotations

from typing import Any

from airflow import __version__ as airflow_version
from airflow.plugins_manager import AirflowPlugin
from packaging.version import Version

#: The first Airflow with external views on task-instance pages.
FIRST_AIRFLOW_WITH_TAB = Version("3.1.0")
#: The tab's name on the task-instance page.
TAB_NAME = "Moments"


def has_task_instance_views(version: str = airflow_version) -> bool:
    """Whether this Airflow shows plugins' external views on task-instance pages (3.1 and later)."""
    return Version(version).release >= FIRST_AIRFLOW_WITH_TAB.release


def tab_apps() -> list[dict[str, Any]]:
    """The tab's page and digest API, mounted on the API server."""
    from airflow_provider_video_actions.ui.api import URL_PREFIX, app

    return [{"app": app, "url_prefix": URL_PREFIX, "name": "Video actions moments"}]


def tab_views() -> list[dict[str, Any]]:
    """The tab on task-instance pages: the page, told which task instance it is in its query string."""
    from airflow_provider_video_actions.ui.api import URL_PREFIX

    query = "dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}&map_index={MAP_INDEX}"
    return [
        {
            "name": TAB_NAME,
            "href": f"{URL_PREFIX}/moments?{query}",
            "destination": "task_instance",
            "url_route": "video-actions-moments",
        }
    ]


class VideoActionsMomentsPlugin(AirflowPlugin):
    """Adds the Moments tab (Airflow 3.1+); registers nothing on older Airflow."""

    name = "video_actions_moments"
    if has_task_instance_views():
        fastapi_apps = tab_apps()
        external_views = tab_views()
