"""The run of one parse: a job's output files through every stage, into the sinks, counted.

A line's path: :func:`.source.file_chunks` (open each file, :func:`.chunks.iter_chunks`) ->
:func:`.chunks.prefetched` (read ahead on a thread) -> :meth:`.decode.OutputDecoder.read_ahead` (the family's fast
path on a thread pool) -> :meth:`Parse._take` -> the fast read's Arrow table, or :meth:`.decode.OutputDecoder.decode`
and :meth:`.keep.PredictionFilter.columns` -> :class:`.count.ParseStats` -> :class:`.sinks.Sinks`.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_video_actions.parse import ranged_read
from airflow_provider_video_actions.parse.chunks import DEFAULT_MAX_LINE_BYTES, LongLine, prefetched
from airflow_provider_video_actions.parse.count import ParseStats, shorten
from airflow_provider_video_actions.parse.source import file_chunks
from airflow_provider_video_actions.predictions import MALFORMED, ErrorRecord, error_columns, gc_paused
from airflow_provider_video_actions.writers import compact_arrow_memory

if TYPE_CHECKING:
    from airflow_provider_video_actions.families.action_recognition_arrow import FastChunk
    from airflow_provider_video_actions.parse.decode import OutputDecoder
    from airflow_provider_video_actions.parse.keep import PredictionFilter
    from airflow_provider_video_actions.parse.sinks import Sinks

#: Seconds between the progress lines of a long parse.
DEFAULT_PROGRESS_INTERVAL = 30.0


def counted(count: int, noun: str) -> str:
    """``1 error``, ``2,000 errors``: a count with its noun in the right number (the nouns logged here take an s)."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


class ParseProgress:
    """Logs how far a parse has got, at most once per ``interval`` seconds: bytes read, rows, rate, files left."""

    def __init__(self, log: Any, interval: float, total_bytes: int, files: int) -> None:
        self.log, self.interval, self.total_bytes, self.files = log, interval, total_bytes, files
        self.started = self._logged = time.monotonic()
        self.bytes_read, self.files_started, self._file = 0, 0, None

    def read(self, uri: str, size: int, rows: int) -> None:
        """Count a chunk of ``size`` bytes of ``uri``; log a line if ``interval`` has passed since the last one."""
        if uri != self._file:
            self._file, self.files_started = uri, self.files_started + 1
        self.bytes_read += size
        now = time.monotonic()
        if now - self._logged >= self.interval:
            self._logged = now
            self.log.info("%s", self.line(now, rows))

    def line(self, now: float, rows: int) -> str:
        """The progress line: ``Progress: 1,024 of 4,096 bytes read (25%), 12 rows, 0.3 MB/s; 3 of 4 files left``."""
        share = 100 * self.bytes_read // self.total_bytes if self.total_bytes else 100
        rate = self.bytes_read / max(now - self.started, 1e-6) / 1e6
        left = self.files - self.files_started + 1  # the file being read is not done yet
        return (
            f"Progress: {self.bytes_read:,} of {counted(self.total_bytes, 'byte')} read ({share}%), "
            f"{counted(rows, 'row')}, {rate:.1f} MB/s; {left:,} of {counted(self.files, 'file')} left"
        )


@dataclass
class Parse:
    """One parse of a job's output files, its state held here once: what it reads with, what it keeps, what it has
    counted and where the records go. :meth:`run` reads every line, in one pipeline over all the files."""

    #: The storage client for ``gs://`` files (None when none is on GCS).
    client: Any
    decoder: OutputDecoder
    keep: PredictionFilter
    sinks: Sinks
    progress: ParseProgress
    #: A longer line is skipped unread and reported as a malformed line.
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    #: Fail once more lines than this could not be read (None: never).
    max_malformed_lines: int | None = None
    #: How ``gs://`` files are read ahead of the parse.
    read_ahead: ranged_read.ReadAhead = ranged_read.DEFAULT
    stats: ParseStats = field(default_factory=ParseStats)

    def run(self, files: list[str]) -> dict[str, Any]:
        """Every line of ``files`` counted and sent to the sinks; the summary, with where the records went."""
        with ExitStack() as stack:
            stack.enter_context(gc_paused())
            stack.enter_context(compact_arrow_memory())
            self.sinks.open(stack)
            self._read(files)
            self.sinks.close()
        return self.sinks.finish(self.stats.summary(), self.stats.errors)

    def _read(self, files: list[str]) -> None:
        """Each file's chunks through the fast path where it vouches for them, else exactly; lines numbered per file.

        One pipeline over all files (a reader thread, the fast path's threads), so it never drains between files.
        """
        chunks = file_chunks(self.client, files, self.decoder.chunk_bytes, self.max_line_bytes, self.read_ahead)
        first_line, previous = 1, None
        for uri, chunk, fast in self.decoder.read_ahead(prefetched(chunks), self.keep):
            if uri != previous:  # the next file: lines count from 1
                first_line, previous = 1, uri
            first_line += self._take(uri, first_line, chunk, fast)
            self.progress.read(uri, chunk.length if isinstance(chunk, LongLine) else len(chunk), self.stats.rows)

    def _take(self, uri: str, first_line: int, chunk: bytes | LongLine, fast: FastChunk | None) -> int:
        """Count one item of a file and send its records to the sinks; returns how many lines it held."""
        if isinstance(chunk, LongLine):
            self.stats.add_lines(1)
            self._add_errors(uri, [self._long_line(uri, first_line, chunk)])
            return 1
        if fast is not None:
            self.stats.add_lines(fast.lines)
            kept = fast.records.num_rows
            self.stats.add_kept(fast.instances, fast.moments, fast.video_hashes, kept, fast.label_counts())
            self.sinks.records.write_table(fast.records)
            return fast.lines
        return self._take_exactly(uri, first_line, chunk)

    def _take_exactly(self, uri: str, first_line: int, chunk: bytes) -> int:
        """Decode a chunk line by line, sending kept records and every error to the sinks; its line count."""
        decoded = self.decoder.decode(chunk, uri, first_line)
        self.stats.add_lines(decoded.lines - decoded.blank_lines)
        self._add_errors(uri, decoded.errors)
        columns = self.keep.columns(decoded)
        self.stats.add_records(columns, decoded)
        self.sinks.records.write(columns)
        return decoded.lines

    def _long_line(self, uri: str, line: int, long_line: LongLine) -> ErrorRecord:
        """The error record of a line skipped unread for its length."""
        message = (
            f"output line of {long_line.length} bytes is longer than max_line_bytes={self.max_line_bytes}; "
            "skipped unread"
        )
        return ErrorRecord(None, None, None, None, message, uri, line, MALFORMED)

    def _add_errors(self, uri: str, found: list[ErrorRecord]) -> None:
        """Count error records and send them to their sink, failing past ``max_malformed_lines``."""
        for error in found:
            self.stats.add_error(error)
            if self.max_malformed_lines is not None and self.stats.malformed_lines > self.max_malformed_lines:
                raise AirflowException(
                    f"More than max_malformed_lines={self.max_malformed_lines} output lines could not be read; "
                    f"the last at {uri} line {error.line}: {shorten(error.message)}"
                )
        if found:
            self.sinks.errors.write(error_columns(found))
