"""One real Airflow deployment (as ``make test-deployment`` starts it) with the provider's plugins loaded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deployment.conftest import started
from tests.deployment.deployment import Deployment

#: This folder's DAGs, a third bundle.
UI_DAGS = Path(__file__).parent / "dags"


class PluginDeployment(Deployment):
    """The deployment test's Airflow, loading providers' plugins (Airflow does only with eager provider discovery),
    with this folder's DAGs too."""

    def _airflow_env(self, emulator_env: dict[str, str]) -> dict[str, str]:
        env = super()._airflow_env(emulator_env)
        bundles = json.loads(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
        bundles.append(
            {
                "name": "ui-tests",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(UI_DAGS), "refresh_interval": 5},
            }
        )
        return {
            **env,
            "AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": "False",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        }


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    """The session's deployment, stopped however the session ends."""
    with started(PluginDeployment()) as running:
        yield running
