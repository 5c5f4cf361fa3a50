"""One real Airflow deployment for the session (``make test-deployment``), and a summary of each scenario's figures."""

from __future__ import annotations

import atexit
import contextlib
import signal
from collections.abc import Iterator

import pytest

from tests.deployment.deployment import Deployment

#: Lines the scenarios report (times, call counts), printed at the end of the run.
SUMMARY: list[str] = []


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends the session like Ctrl-C, so that the fixture's ``finally`` stops the deployment."""
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def started(running: Deployment) -> Iterator[Deployment]:
    """Start a deployment; stop every process it started however the session ends (SIGTERM included)."""
    atexit.register(running.stop)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield running.start()
    finally:
        running.stop()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    """The deployment of the session (see :func:`started`)."""
    with started(Deployment()) as running:
        yield running


@pytest.fixture
def report() -> Iterator[list[str]]:
    """Lines for the deployment summary: ``report.append("...")``."""
    lines: list[str] = []
    yield lines
    SUMMARY.extend(lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The scenarios' figures, just above pytest's closing line."""
    if SUMMARY:
        terminalreporter.section("deployment summary")
        for line in SUMMARY:
            terminalreporter.write_line(line)
