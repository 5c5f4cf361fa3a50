"""The one place that decides a model's family, and which family's decoder reads a job's output."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_video_actions.errors import VideoActionsValueError
from airflow_provider_video_actions.families.action_recognition import ACTION_RECOGNITION
from airflow_provider_video_actions.families.base import AnswerDecoder, ModelFamily, OpenRead
from airflow_provider_video_actions.families.gemini.family import GEMINI
from airflow_provider_video_actions.families.gemini.request import GeminiSummary
from airflow_provider_video_actions.gcs import GEMINI_OUTPUT_FILE, LINES_CHUNK_BYTES

if TYPE_CHECKING:
    from airflow_provider_video_actions.predictions import DecodedChunk
    from airflow_provider_video_actions.tallies import PredictionFilter

#: Chunks read by a family's fast path at once (the benchmark's DuckDB runs on 2 threads too).
PARSE_THREADS = 2
T = TypeVar("T")
#: Every family, the default (claims any model no other family claims) last.
FAMILIES: tuple[ModelFamily, ...] = (GEMINI, ACTION_RECOGNITION)
FAMILY_NAMES = tuple(family.name for family in FAMILIES)
DEFAULT_FAMILY = FAMILIES[-1]


def family_for(model: Any, explicit_family: str | None = None) -> ModelFamily:
    """The family named by ``model_family``, or else the first family that claims the model's name (the default
    family for a model that is not a name, whose checks then refuse it)."""
    if explicit_family is not None:
        for family in FAMILIES:
            if family.name == explicit_family:
                return family
        raise VideoActionsValueError(
            f"model_family must be one of {', '.join(map(repr, FAMILY_NAMES))} (or None to tell by the model name), "
            f"got {explicit_family!r}."
        )
    return next((family for family in FAMILIES if isinstance(model, str) and family.claims(model)), DEFAULT_FAMILY)


def check_region_of_any_family(region: Any) -> str:
    """The region if some family's jobs can run there (the model, hence the family, is not known yet)."""
    for family in FAMILIES[:-1]:
        try:
            return family.check_region(region)
        except VideoActionsValueError:
            continue
    return DEFAULT_FAMILY.check_region(region)


def output_family(model_family: str | None, job: Mapping[str, Any] | None, predictions: list[str]) -> ModelFamily:
    """The family whose decoder reads a job's output: the user's ``model_family``, else the job's, else the file names.

    The submit summary names the model (and holds a Gemini part for Gemini jobs); a bare output directory
    tells by its files: Gemini writes ``predictions.jsonl``, action recognition ``predictions_<n>.jsonl``.
    Never guessed line by line, so no line is read by the wrong family's decoder.
    """
    if model_family is not None:
        return family_for(None, model_family)
    if isinstance(job, Mapping):
        if isinstance(job.get(GeminiSummary.KEY), Mapping):
            return GEMINI
        if isinstance(job.get("model"), str) and job["model"]:
            return family_for(job["model"])
    names = {uri.rstrip("/").rsplit("/", 1)[-1] for uri in predictions}
    if GEMINI_OUTPUT_FILE in names and len(names) > 1:
        raise VideoActionsValueError(
            f"the output directory holds both Gemini's {GEMINI_OUTPUT_FILE} and action recognition's "
            f"predictions_<n>.jsonl files: set model_family to {' or '.join(map(repr, FAMILY_NAMES))} "
            "(or pass the submit task's result as job)."
        )
    return GEMINI if GEMINI_OUTPUT_FILE in names else ACTION_RECOGNITION


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
