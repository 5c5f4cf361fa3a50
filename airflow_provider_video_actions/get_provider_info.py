"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_video_actions import __version__


def get_provider_info() -> dict[str, Any]:
    """The provider-info dict; ``package-name`` equals the distribution name, as Airflow requires."""
    return {
        "package-name": "airflow-provider-video-actions",
        "name": "Video Actions (Vertex AI)",
        "description": "Vertex AI video action recognition batch predictions: submit, wait deferred, parse.",
        "version": __version__,
        "versions": [__version__],
        "documentation-url": "https://airflow-provider-video-actions.readthedocs.io/",
        "integrations": [
            {
                "integration-name": "Vertex AI video action recognition",
                "external-doc-url": "https://cloud.google.com/vertex-ai/docs/video-data/action-recognition/get-predictions",
                "how-to-guide": ["https://airflow-provider-video-actions.readthedocs.io/en/latest/quickstart.html"],
                "tags": ["gcp"],
            }
        ],
        "operators": [
            {
                "integration-name": "Vertex AI video action recognition",
                "python-modules": [
                    "airflow_provider_video_actions.operators.submit",
                    "airflow_provider_video_actions.operators.parse",
                    "airflow_provider_video_actions.operators.shards",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Vertex AI video action recognition",
                "python-modules": ["airflow_provider_video_actions.sensors.wait"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Vertex AI video action recognition",
                "python-modules": [
                    "airflow_provider_video_actions.hooks.batch_prediction",
                    "airflow_provider_video_actions.hooks.storage",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "Vertex AI video action recognition",
                "python-modules": ["airflow_provider_video_actions.triggers.wait"],
            }
        ],
        "extra-links": ["airflow_provider_video_actions.links.VideoActionBatchPredictionJobLink"],
        # The Moments tab (Airflow 3.1+; registers nothing before). Airflow loads providers' plugins only with
        # [core] lazy_discover_providers = False.
        "plugins": [
            {
                "name": "video_actions_moments",
                "plugin-class": "airflow_provider_video_actions.ui.plugin.VideoActionsMomentsPlugin",
            }
        ],
    }
