"""What every model family provides: the request side (names, mime rules, lines, job settings) and the answer side.

A family is one object (:class:`ModelFamily`) found by :func:`.dispatch.family_for`.
The submit operator gives it a :class:`FamilyRequest` (what the user asks of the model, whichever family)
and the parse operator asks it for an :class:`AnswerDecoder`. This module is stdlib-only, so DAG files stay
cheap to parse.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, ClassVar, Protocol

from airflow_provider_video_actions.job import VideoActionsValueError, VideoInstance, check_region

if TYPE_CHECKING:
    from airflow_provider_video_actions.predictions import DecodedChunk

#: Opens a file (``gs://`` or ``file://``) for binary reads, as a context manager: e.g. a job's instances file.
OpenRead = Callable[[str], AbstractContextManager[IO[bytes]]]

_MODEL_RE = re.compile(
    r"(?:projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/models/)?(?P<id>[A-Za-z0-9_-]+)(?:@(?P<version>[A-Za-z0-9_-]+))?"
)


@dataclass(frozen=True)
class FamilyRequest:
    """What the submit operator's user asks of the model; each family checks the parts it takes or refuses."""

    confidence_threshold: float = 0.0
    max_predictions: int = 50
    action_labels: Any = None
    prompt: str | None = None
    fps: float | None = None
    media_resolution: str | None = None
    machine_type: str | None = None
    service_account: str | None = None
    encryption_key: str | None = None
    max_requests_per_job: int | None = None
    max_input_bytes: int | None = None


#: Slack on the segment bounds, in seconds, for every family: a moment or an answer may start up to 1 ms before its
#: instance's segment and end up to 1 ms after it (times are written to the microsecond or millisecond, segments are
#: echoed as given).
TIME_TOLERANCE = 0.001


class AnswerDecoder(Protocol):
    """Decodes a chunk of whole output lines of one family into the shared records, exactly, line by line.

    A decoder may also offer ``read_fast(chunk, keep)`` (the chunk's kept records as an Arrow table, or None when
    it cannot vouch for every line) and ``chunk_bytes`` (its chunk size);
    :class:`~airflow_provider_video_actions.parse.decode.OutputDecoder` uses them when present.
    """

    def decode(self, chunk: bytes, file: str, first_line: int) -> DecodedChunk:
        """Served instances, their moments and error records of the chunk's lines (numbered from ``first_line``)."""


class ModelFamily(ABC):
    """One model family: how its models are named, what it is sent, and how its answers are read."""

    #: The family's name, as given to ``model_family``.
    name: ClassVar[str]
    #: File extension -> mime type the family accepts (the extensions ``videos_prefix`` lists).
    mime_types: ClassVar[Mapping[str, str]]

    @abstractmethod
    def claims(self, model: str) -> bool:
        """Whether a model name is this family's by its shape alone (no ``model_family`` given)."""

    @abstractmethod
    def resource_name(self, model: str, project_id: str, region: str) -> str:
        """The full model name the job is created with; raise naming ``model`` if it is not one of ours."""

    def check_region(self, region: Any) -> str:
        """The region if this family's jobs can run there, else raise."""
        return check_region(region)

    @abstractmethod
    def check_request(self, request: FamilyRequest) -> None:
        """Raise naming the parameter for anything this family cannot take."""

    @abstractmethod
    def request_lines(self, instances: Iterable[VideoInstance], request: FamilyRequest) -> Iterator[str]:
        """The lines of the job's input file, one per instance, in order."""

    @abstractmethod
    def check_input(self, lines: int, size: int, request: FamilyRequest) -> None:
        """Raise before any job exists if the input passes one of the family's service limits."""

    def input_limits(self, request: FamilyRequest) -> tuple[int, int] | None:
        """The most request lines and input-file bytes a job of this family takes, or None when unlimited."""
        return None

    @abstractmethod
    def model_parameters(self, request: FamilyRequest) -> dict[str, Any] | None:
        """The job's ``model_parameters``, or None for a family that takes none."""

    def summary_part(self, request: FamilyRequest) -> dict[str, Any]:
        """What this family adds to the submit operator's summary for the parse task (default: nothing)."""
        return {}

    @abstractmethod
    def answer_decoder(
        self, job: Mapping[str, Any] | None, action_labels: Any = None, open_read: OpenRead | None = None
    ) -> AnswerDecoder:
        """The decoder of this family's output lines, set up from the submit summary (if given).

        ``open_read`` reads a job's instances file, for a family that joins answers to instances through it.
        """

    def mime_type_for(self, uri: str, param: str) -> str:
        """The mime type for a URI's extension, or raise listing this family's."""
        name = uri.rsplit("/", 1)[-1]
        suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        try:
            return self.mime_types[suffix]
        except KeyError:
            raise VideoActionsValueError(
                f"{param}: cannot tell the video type of {uri!r} from its extension; {self.name} models take "
                f"{', '.join(self.mime_types)} or an explicit mime_type ({', '.join(self.mime_type_values())})."
            ) from None

    def mime_type_values(self) -> list[str]:
        """The mime types this family takes, each once, in order."""
        return list(dict.fromkeys(self.mime_types.values()))

    def instances(self, videos: Any) -> list[VideoInstance]:
        """Validate the ``videos`` parameter into instances with this family's mime rules."""
        from airflow_provider_video_actions.job import instances_from_videos

        instances, allowed = instances_from_videos(videos, self.mime_type_for), self.mime_type_values()
        for index, instance in enumerate(instances):
            if instance.mime_type not in allowed:
                raise VideoActionsValueError(
                    f"videos[{index}]: mime_type {instance.mime_type!r} of {instance.content} is not supported by "
                    f"{self.name} models; use one of {', '.join(allowed)}."
                )
        return instances


def model_text(model: Any) -> Any:
    """A model ID given as a number (``render_template_as_native_obj`` renders ``"8675309"`` to 8675309) in its string
    form; any other value as it is, for the family's checks to accept or refuse."""
    return str(model) if isinstance(model, int) and not isinstance(model, bool) and model > 0 else model


def model_resource_name(model: Any, project_id: str, region: str, family: str) -> str:
    """A model ID or ``projects/P/locations/L/models/ID[@version]`` as the full name, checked against the region."""
    match = _MODEL_RE.fullmatch(model) if isinstance(model, str) else None
    if not match:
        raise VideoActionsValueError(
            f"model must be a model ID like '1234567890' or a resource name like "
            f"'projects/my-project/locations/us-central1/models/1234567890' for a {family} model, got {model!r}."
        )
    if match["region"] and match["region"] != region:
        raise VideoActionsValueError(
            f"model {model!r} lives in region {match['region']!r} but region={region!r}; batch jobs run in "
            "the model's region."
        )
    if match["project"]:
        return model
    version = f"@{match['version']}" if match["version"] else ""
    return f"projects/{project_id}/locations/{region}/models/{match['id']}{version}"
