"""The decode stage: a job's output chunks through its family's decoder, fast where it vouches for a chunk."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_video_actions.families.base import AnswerDecoder, ModelFamily, OpenRead
from airflow_provider_video_actions.parse.chunks import LINES_CHUNK_BYTES

if TYPE_CHECKING:
    from airflow_provider_video_actions.parse.keep import PredictionFilter
    from airflow_provider_video_actions.predictions import DecodedChunk

#: Chunks read by a family's fast path at once (the benchmark's DuckDB runs on 2 threads too).
PARSE_THREADS = 2
T = TypeVar("T")


class OutputDecoder:
    """Decodes one job's output chunks with its family's decoder: fast where it can vouch for a chunk, else exactly."""

    def __init__(self, decoder: AnswerDecoder) -> None:
        self._decoder = decoder

    @classmethod
    def for_job(
        cls,
        family: ModelFamily,
        job: Mapping[str, Any] | None,
        action_labels: Any = None,
        open_read: OpenRead | None = None,
    ) -> OutputDecoder:
        """The family's decoder, set up from the submit summary (or nothing, for a bare output directory)."""
        return cls(family.answer_decoder(job, action_labels, open_read))

    @property
    def chunk_bytes(self) -> int:
        """How many bytes of whole lines to decode at a time."""
        return getattr(self._decoder, "chunk_bytes", LINES_CHUNK_BYTES)

    def decode(self, chunk: bytes, file: str, first_line: int) -> DecodedChunk:
        """Decode a chunk of whole output lines, line by line, into served instances, moments and errors."""
        return self._decoder.decode(chunk, file, first_line)

    def read_ahead(self, items: Iterable[tuple[T, Any]], keep: PredictionFilter) -> Iterator[tuple[T, Any, Any]]:
        """Each ``(tag, item)`` with its fast read (a ``FastChunk``, or None: :meth:`decode` it), in order.

        Chunks (``bytes`` items) are read on :data:`PARSE_THREADS` threads, at most one more ahead: Arrow releases
        the GIL, so they overlap each other and the caller's work on the chunk before.
        """
        read_fast = getattr(self._decoder, "read_fast", None)
        if read_fast is None:
            yield from ((tag, item, None) for tag, item in items)
            return
        with ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="video-actions-parse") as pool:
            pending: deque[tuple[T, Any, Future[Any] | None]] = deque()
            for tag, item in items:
                pending.append((tag, item, pool.submit(read_fast, item, keep) if isinstance(item, bytes) else None))
                if len(pending) > PARSE_THREADS:
                    yield _done(*pending.popleft())
            while pending:
                yield _done(*pending.popleft())


def _done(tag: T, item: Any, read: Future[Any] | None) -> tuple[T, Any, Any]:
    """The tagged item with its fast read's result (None when it had none)."""
    return tag, item, read.result() if read is not None else None
