"""One real Airflow deployment (as ``make test-deployment`` starts it) with the provider's plugins loaded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deployment.conftest import started
from tests.deployment.deployment import Deployment


class PluginDeployment(Deployment):
    """The deployment test's Airflow, loading providers' plugins: Airflow does only with eager provider discovery."""

    def _airflow_env(self, emulator_env: dict[str, str]) -> dict[str, str]:
        return {**super()._airflow_env(emulator_env), "AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": "False"}


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    """The session's deployment, stopped however the session ends."""
    with started(PluginDeployment()) as running:
        yield running
