"""The README is a short front page with working links; the package points at its docs site."""

from __future__ import annotations

import re

import tomllib

from airflow_provider_video_actions import __version__
from airflow_provider_video_actions.get_provider_info import get_provider_info
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
DOCS_URL = "https://airflow-provider-video-actions.readthedocs.io/"


def test_readme_is_a_few_screens_with_the_two_commands_first():
    assert len(README.encode()) < 10 * 1024
    assert README.index("make demo") < README.index("make test") < README.index("## Install")


def test_readme_links_are_absolute_so_they_work_on_the_package_index():
    targets = re.findall(r"\]\(([^)]+)\)", README)
    assert targets and [t for t in targets if not t.startswith("https://")] == []


def test_readme_first_dag_is_the_quickstart_file():
    source = (ROOT / "docs" / "examples" / "quickstart.py").read_text()
    first_dag = source.split("# [START quickstart]\n")[1].split("# [END quickstart]")[0]
    assert f"```python\n{first_dag}```" in README


def test_package_and_provider_info_point_at_the_docs_site():
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    # No Source/Issues URLs until the repository has a public home (an invented one would mislead).
    assert set(urls) == {"Documentation", "Changelog"}
    assert urls["Documentation"] == get_provider_info()["documentation-url"] == DOCS_URL


def test_release_is_in_the_changelog_and_licensed():
    assert f"## [{__version__}] - " in (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" not in (ROOT / "CHANGELOG.md").read_text()
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "END OF TERMS AND CONDITIONS" in license_text


def test_ci_builds_the_docs_and_runs_the_newcomer_test():
    steps = re.findall(r"^make (\S+)", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)
    assert steps.index("test") < steps.index("newcomer") and "docs" in steps


def test_airflow_shows_the_docs_url_of_the_installed_provider():
    """Airflow 3.3 takes it from the Documentation Project-URL, older lines from the provider info."""
    from airflow.providers_manager import ProvidersManager

    shown = ProvidersManager().providers["airflow-provider-video-actions"].data["documentation-url"]
    assert shown.strip() == DOCS_URL  # Airflow 3.1 keeps the space after "Documentation," of the Project-URL
