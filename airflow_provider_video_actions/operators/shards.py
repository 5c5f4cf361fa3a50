"""The two steps around a sharded parse: propose the shards from the output's size, combine the shards' summaries.

::

    shards = ProposeParseShardsOperator(task_id="plan", job=predict.output)
    parse = ParseVideoActionPredictionsOperator.partial(
        task_id="parse", job=predict.output, destination="gs://b/moments/"
    ).expand(shard=shards.output)
    CombineParseShardsOperator(task_id="summary", summaries=parse.output, asset_alias="moments")

Each mapped parse instance writes ``part-0000i-of-0000n.parquet`` (see :mod:`airflow_provider_video_actions.shards`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_video_actions import shards
from airflow_provider_video_actions.errors import VideoActionsValueError
from airflow_provider_video_actions.operators.parse import JobOutputMixin
from airflow_provider_video_actions.parse.run import counted
from airflow_provider_video_actions.paths import PathSegmentFilterMixin
from airflow_provider_video_actions.validators import check_positive


class ProposeParseShardsOperator(PathSegmentFilterMixin, JobOutputMixin, BaseOperator):
    """List a finished job's output files with their sizes and return the shards to parse them in.

    One shard per ``target_shard_bytes`` of output, at most one per file and ``max_shards``; the
    result (``["0/4", "1/4", "2/4", "3/4"]``) is what the parse operator's ``.expand(shard=...)`` takes.

    :param job: the submit operator's return value (a dict with ``output_directory``), e.g. its XComArg.
    :param output_directory: the job's output directory, when ``job`` is not given.
    :param target_shard_bytes: bytes of output one parse instance should read (1 GiB: about 7 CPU seconds).
    :param max_shards: never more shards than this (Airflow's ``[core] max_map_length`` is 1024).
    :param allow_other_schemes: also list other fsspec URLs (``s3://``, ``memory://``...).
    :param allow_partial: propose shards for the output of a job that ended CANCELLED, FAILED or EXPIRED (the
        parse needs it too); without it such a job's summary is refused, as the parse operator refuses it.
    """

    template_fields: Sequence[str] = ("job", "output_directory", "impersonation_chain")

    def __init__(
        self,
        *,
        job: dict[str, Any] | None = None,
        output_directory: str | None = None,
        target_shard_bytes: int = shards.DEFAULT_TARGET_SHARD_BYTES,
        max_shards: int = shards.DEFAULT_MAX_SHARDS,
        allow_other_schemes: bool = False,
        allow_partial: bool = False,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (job is None) == (output_directory is None):
            raise VideoActionsValueError(
                f"{type(self).__name__} {self.task_id}: give exactly one of job (the submit task's result) "
                "or output_directory."
            )
        self.job, self.output_directory = job, output_directory
        self.target_shard_bytes = check_positive(target_shard_bytes, "target_shard_bytes", integer=True)
        self.max_shards = check_positive(max_shards, "max_shards", integer=True)
        self.allow_other_schemes, self.allow_partial = allow_other_schemes, allow_partial
        self.gcp_conn_id, self.impersonation_chain = gcp_conn_id, impersonation_chain

    def execute(self, context: Any) -> list[str]:
        """The shards for the job's predictions and errors files, from their total size."""
        source = self._source()  # a VideoActionsValueError fails the task without a retry
        predictions, errors, sizes = self._output_files(self._client_for(source), source)
        files = [sizes[uri] for uri in predictions + errors]
        proposed = shards.propose_shards(files, self.target_shard_bytes, self.max_shards)
        self.log.info(
            "%s, %s in %s: %s",
            counted(len(files), "file"),
            counted(sum(files), "byte"),
            source,
            counted(len(proposed), "shard"),
        )
        return proposed


class CombineParseShardsOperator(PathSegmentFilterMixin, BaseOperator):
    """Combine a sharded parse's results into one summary, shaped as an unsharded parse's.

    Refuses a partial set (a shard missing or repeated). ``uri`` is the wildcard of the dataset's
    parts (``gs://b/moments/part-*-of-00008.parquet``), ready for a loader such as BigQuery's.

    :param summaries: the mapped parse task's results, ``parse.output``.
    :param asset_alias: name of an ``AssetAlias`` added to the outlets; the dataset's folder is emitted
        through it as one asset event (with the combined counts as its extra).
    :param gcp_conn_id: the connection reading the shards' moment digests and writing the combined one (the
        Moments tab's data, :mod:`airflow_provider_video_actions.ui.digest`), as the parse's.
    :param impersonation_chain: as the parse's.
    """

    template_fields: Sequence[str] = ("summaries", "impersonation_chain")
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        summaries: Any,
        asset_alias: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.summaries, self.asset_alias = summaries, asset_alias
        self.gcp_conn_id, self.impersonation_chain = gcp_conn_id, impersonation_chain
        if asset_alias is not None:
            from airflow.providers.common.compat.sdk import AssetAlias

            self.outlets = [*self.outlets, AssetAlias(asset_alias)]

    def execute(self, context: Any) -> dict[str, Any]:
        """One summary for the whole job; one asset event for its dataset."""
        combined = shards.combine(_read_all(self.summaries))  # a VideoActionsValueError fails, no retry
        self.log.info(
            "%s: %s from %s; %s; parts %s",
            counted(combined["shards"], "shard"),
            counted(combined["rows"], "moment"),
            counted(combined["videos"], "video"),
            counted(combined["errors"], "error"),
            combined["uri"],
        )
        self._publish_digest(context, combined)
        if self.asset_alias is not None:
            from airflow_provider_video_actions.lineage import emit_asset_event

            extra = {key: combined[key] for key in ("rows", "videos", "errors", "label_counts", "shards")}
            emit_asset_event(context, self.asset_alias, shards.dataset_folder(combined["uri"]), extra)
        return combined

    def _publish_digest(self, context: Any, combined: dict[str, Any]) -> None:
        """The shards' moment digests merged into one beside the dataset, for the Moments tab of this task."""
        from airflow_provider_video_actions.ui import digest

        uri = digest.combined_digest_uri(combined["uri"])
        client = digest.storage_client(self.gcp_conn_id, self.impersonation_chain, uri)
        conn = {"gcp_conn_id": self.gcp_conn_id, "impersonation_chain": self.impersonation_chain}
        where = digest.publish(context, digest.merge(client, combined["parts"]), uri=uri, client=client, **conn)
        self.log.info("Moment digest of the %s for the Moments tab: %s", counted(combined["shards"], "shard"), where)


def _read_all(summaries: Any) -> Iterable[Any]:
    """The mapped parse's results, read by index up to their count.

    Iterating Airflow 3's lazy XCom sequence asks for one item past its end, which its API client logs as an
    ``XCom not found`` error on every successful combine.
    """
    if isinstance(summaries, Sequence) and not isinstance(summaries, (str, bytes, list, tuple)):
        return [summaries[index] for index in range(len(summaries))]
    return summaries
