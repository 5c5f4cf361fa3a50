"""The sinks stage: where a parse's records and error records go (XCom within a byte budget, or files)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import msgspec
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_video_actions.predictions import Columns, ErrorRecord
from airflow_provider_video_actions.writers import CONTENT_TYPES, RecordWriter


class _XComBudget:
    """The byte budget of the whole return value: predictions, error records and the summary."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.used = max_bytes, 0

    def charge(self, size: int) -> None:
        """Count bytes, failing with the fix as soon as the budget is passed."""
        self.used += size
        if self.used > self.max_bytes:
            raise AirflowFailException(
                f"The parse result passes max_xcom_bytes={self.max_bytes}: XCom lives in the metadata "
                "database. Set destination='gs://bucket/path/predictions.parquet' (or .jsonl, .csv) to write "
                "them to GCS, narrow them with min_confidence, labels or top_k, or raise max_xcom_bytes."
            )


class _XComSink:
    """Collects records of one type as dicts for the return value, within a shared budget."""

    def __init__(self, budget: _XComBudget, record_type: type[msgspec.Struct]) -> None:
        self.budget, self.items, self._type = budget, [], record_type
        self._encode = msgspec.json.Encoder().encode

    def write(self, columns: Columns) -> None:
        """Charge each record to the budget and keep it as a dict."""
        for record in map(self._type, *columns):
            self.budget.charge(len(self._encode(record)) + 2)
            self.items.append(msgspec.structs.asdict(record))

    def write_table(self, table: Any) -> None:
        """Charge and keep records given as an Arrow table."""
        self.write(tuple(column.to_pylist() for column in table.columns))

    def close(self) -> None:
        """Nothing to finish: the records go out with the return value."""


class _ErrorsFile:
    """Error records as JSONL beside the destination, created only if there is an error."""

    def __init__(self, stack: ExitStack, client: Any, uri: str) -> None:
        self._stack, self._client, self.uri = stack, client, uri
        self._writer: RecordWriter | None = None

    def write(self, columns: Columns) -> None:
        """Write error records, creating the file on the first call."""
        if self._writer is None:
            from airflow_provider_video_actions import gcs

            handle = self._stack.enter_context(gcs.open_write(self._client, self.uri, CONTENT_TYPES[".jsonl"]))
            self._writer = RecordWriter(handle, ".jsonl", ErrorRecord)
            self._stack.callback(self._writer.stop)
        self._writer.write(columns)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
