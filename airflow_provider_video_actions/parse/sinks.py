"""The sinks stage: where a parse's records and error records go (XCom within a byte budget, or files).

:class:`Sinks` opens the pair for a destination (None: XCom) and puts where they went into the summary.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, Protocol

import msgspec
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_video_actions import gcs
from airflow_provider_video_actions.predictions import Columns, ErrorRecord, PredictionRecord
from airflow_provider_video_actions.writers import CONTENT_TYPES, RecordWriter


class ErrorSink(Protocol):
    """Takes error records as column batches; ``close`` finishes the output."""

    def write(self, columns: Columns) -> None: ...

    def close(self) -> None: ...


class RecordSink(ErrorSink, Protocol):
    """Takes prediction records as column batches (exact path) or Arrow tables (fast path)."""

    def write_table(self, table: Any) -> None: ...


#: Wraps the opened pair, e.g. so that what they are sent also feeds the UI's moment digest.
Tap = Callable[[RecordSink, ErrorSink], tuple[RecordSink, ErrorSink]]


class XComBudget:
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


class XComSink:
    """Collects records of one type as dicts for the return value, within a shared budget."""

    def __init__(self, budget: XComBudget, record_type: type[msgspec.Struct]) -> None:
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


class ErrorsFile:
    """Error records as JSONL beside the destination, created only if there is an error."""

    def __init__(self, stack: ExitStack, client: Any, uri: str) -> None:
        self._stack, self._client, self.uri = stack, client, uri
        self._writer: RecordWriter | None = None

    def write(self, columns: Columns) -> None:
        """Write error records, creating the file on the first call."""
        if self._writer is None:
            handle = self._stack.enter_context(gcs.open_write(self._client, self.uri, CONTENT_TYPES[".jsonl"]))
            self._writer = RecordWriter(handle, ".jsonl", ErrorRecord)
            self._stack.callback(self._writer.stop)
        self._writer.write(columns)

    def close(self) -> None:
        """Finish the file, if one was created."""
        if self._writer is not None:
            self._writer.close()


def errors_uri(destination: str) -> str:
    """The errors file beside a destination: ``<destination stem>.errors.jsonl``."""
    return os.path.splitext(destination)[0] + ".errors.jsonl"


class Sinks:
    """Where one parse's records and error records go: XCom lists within ``max_xcom_bytes``, or the destination
    (written as it streams) with an errors file beside it."""

    def __init__(
        self, client: Any, destination: str | None, fmt: str | None, max_xcom_bytes: int, tap: Tap | None = None
    ) -> None:
        self.client, self.destination, self.fmt, self.tap = client, destination, fmt, tap
        self.errors_uri = None if destination is None else errors_uri(destination)
        self.budget = XComBudget(max_xcom_bytes)
        self._xcom: tuple[XComSink, XComSink] | None = None
        self.records: RecordSink
        self.errors: ErrorSink

    def open(self, stack: ExitStack) -> None:
        """Open both sinks; writers stop (a half-written destination is discarded) if the parse fails."""
        if self.destination is None or self.errors_uri is None or self.fmt is None:
            self._xcom = XComSink(self.budget, PredictionRecord), XComSink(self.budget, ErrorRecord)
            self.records, self.errors = self._xcom
        else:
            handle = stack.enter_context(gcs.open_write(self.client, self.destination, CONTENT_TYPES[self.fmt]))
            writer = RecordWriter(handle, self.fmt, PredictionRecord)
            stack.callback(writer.stop)  # before the handle closes, if the parse fails half way
            self.records, self.errors = writer, ErrorsFile(stack, self.client, self.errors_uri)
        if self.tap is not None:
            self.records, self.errors = self.tap(self.records, self.errors)

    def close(self) -> None:
        """Finish both outputs."""
        self.records.close()
        self.errors.close()

    def finish(self, summary: dict[str, Any], errors: int) -> dict[str, Any]:
        """The summary with where the records went: the records themselves (XCom, charged to the budget), or the
        destination and its errors file (an earlier run's errors file removed when this run has none)."""
        self.budget.charge(len(msgspec.json.encode(summary)))
        if self._xcom is not None:
            records, error_records = self._xcom
            return {**summary, "predictions": records.items, "error_records": error_records.items}
        if not errors:
            gcs.delete(self.client, self.errors_uri)  # an earlier run's errors are not this run's
        return {**summary, "uri": self.destination, "errors_uri": self.errors_uri if errors else None}
