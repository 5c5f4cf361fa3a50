"""Lineage for the operators: OpenLineage datasets (optional) and Airflow asset events through an alias.

OpenLineage is imported inside the functions, so the provider works without
``apache-airflow-providers-openlineage``; the operators call these from
``get_openlineage_facets_on_complete``, which only the OpenLineage listener invokes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_video_actions.job import parse_job_name

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage


def uri_dataset(uri: str) -> Dataset:
    """A file or directory URI as a dataset, named as the Google provider names GCS paths: ``gs://bucket``, path.

    Directories keep their full path (the provider's ``extract_ds_name_from_gcs_path`` would cut a
    directory without a trailing slash back to its parent).
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = urlsplit(uri)
    if parts.scheme == "file":  # OpenLineage's local file naming: namespace "file", the absolute path
        return Dataset(namespace="file", name=parts.path.rstrip("/") or "/")
    return Dataset(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path.strip("/") or "/")


def model_dataset(model: str, job_name: str) -> Dataset:
    """The Vertex AI model, namespaced by its regional endpoint (OpenLineage has no convention for models)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    _, region, _ = parse_job_name(job_name)
    return Dataset(namespace=f"https://{region}-aiplatform.googleapis.com", name=model)


def lineage(inputs: Iterable[Dataset], outputs: Iterable[Dataset]) -> OperatorLineage:
    """An ``OperatorLineage`` of de-duplicated inputs and outputs, in a stable order."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    def unique(datasets: Iterable[Dataset]) -> list[Dataset]:
        return sorted({(d.namespace, d.name): d for d in datasets}.values(), key=lambda d: (d.namespace, d.name))

    return OperatorLineage(inputs=unique(inputs), outputs=unique(outputs))


def submit_lineage(summary: dict[str, Any], sources: Iterable[str]) -> OperatorLineage:
    """A job's lineage: its sources (videos, prefix or instances files) and model in, its output directory out."""
    inputs = [uri_dataset(uri) for uri in sources]
    if summary.get("model") and summary.get("name"):
        inputs.append(model_dataset(summary["model"], summary["name"]))
    outputs = [uri_dataset(summary["output_directory"])] if summary.get("output_directory") else []
    return lineage(inputs, outputs)


def parse_lineage(source: str, destination: str | None) -> OperatorLineage:
    """A parse's lineage: the job's output directory in, the written file out (none when it went to XCom)."""
    return lineage([uri_dataset(source)], [uri_dataset(destination)] if destination else [])


def emit_asset_event(context: Any, alias: str, uri: str, extra: dict[str, Any]) -> None:
    """Record ``uri`` as an asset event through ``alias``, so DAGs scheduled on the alias run on it.

    Airflow 2 hashes the extra's values, so nested values (dicts, lists) travel as JSON text there.
    """
    import json

    from airflow.providers.common.compat.sdk import Asset, AssetAlias
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        extra = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in extra.items()}
    context["outlet_events"][AssetAlias(alias)].add(Asset(uri), extra=extra)
