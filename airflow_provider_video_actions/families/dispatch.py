"""The one place that decides a model's family, and which family's decoder reads each output line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_video_actions.families.action_recognition import ACTION_RECOGNITION
from airflow_provider_video_actions.families.base import AnswerDecoder, ModelFamily, OpenRead
from airflow_provider_video_actions.families.gemini.family import GEMINI
from airflow_provider_video_actions.job import VideoActionsValueError

if TYPE_CHECKING:
    from airflow_provider_video_actions.predictions import DecodedChunk

#: Every family, the default (claims any model no other family claims) last.
FAMILIES: tuple[ModelFamily, ...] = (GEMINI, ACTION_RECOGNITION)
FAMILY_NAMES = tuple(family.name for family in FAMILIES)
DEFAULT_FAMILY = FAMILIES[-1]


def family_for(model: Any, explicit_family: str | None = None) -> ModelFamily:
    """The family named by ``model_family``, or else the first family that claims the model's name."""
    if explicit_family is not None:
        for family in FAMILIES:
            if family.name == explicit_family:
                return family
        raise VideoActionsValueError(
            f"model_family must be one of {', '.join(map(repr, FAMILY_NAMES))} (or None to tell by the model name), "
            f"got {explicit_family!r}."
        )
    return next(family for family in FAMILIES if isinstance(model, str) and family.claims(model))


def check_region_of_any_family(region: Any) -> str:
    """The region if some family's jobs can run there (the model, hence the family, is not known yet)."""
    for family in FAMILIES[:-1]:
        try:
            return family.check_region(region)
        except VideoActionsValueError:
            continue
    return DEFAULT_FAMILY.check_region(region)


class OutputDecoder:
    """Decodes output chunks of any family: a chunk with one family's lines in one go, a mixed one line by line."""

    def __init__(self, decoders: Mapping[str, AnswerDecoder]) -> None:
        self._decoders = decoders
        self._markers = {
            family.name: tuple(f'"{key}"'.encode() for key in family.line_keys)
            for family in FAMILIES
            if family is not DEFAULT_FAMILY
        }

    @classmethod
    def from_job(
        cls, job: Mapping[str, Any] | None, action_labels: Any = None, open_read: OpenRead | None = None
    ) -> OutputDecoder:
        """Every family's decoder, set up from the submit summary (or nothing, for a bare output directory)."""
        return cls({family.name: family.answer_decoder(job, action_labels, open_read) for family in FAMILIES})

    def decode(self, chunk: bytes, file: str, first_line: int) -> DecodedChunk:
        """Decode a chunk of whole output lines into served instances, moments and errors."""
        found = [name for name, markers in self._markers.items() if any(m in chunk for m in markers)]
        if not found:
            return self._decoders[DEFAULT_FAMILY.name].decode(chunk, file, first_line)
        return self._decode_each(chunk, file, first_line)

    def _decode_each(self, chunk: bytes, file: str, first_line: int) -> DecodedChunk:
        """Send each line to the decoder of the family whose keys it has (the default family's if none)."""
        import msgspec

        from airflow_provider_video_actions.predictions import DecodedChunk, ErrorRecord

        decoded = DecodedChunk(chunk.count(b"\n") + (not chunk.endswith(b"\n")))
        for number, raw in enumerate(chunk.split(b"\n"), start=first_line):
            if not raw.strip():
                continue
            try:
                keys = msgspec.json.decode(raw, type=dict[str, Any]).keys()
            except msgspec.DecodeError as exc:
                message = f"malformed output line: {exc}"
                decoded.errors.append(ErrorRecord(None, None, None, None, message, file, number))
                continue
            family = next((f for f in FAMILIES if f.line_keys & keys), DEFAULT_FAMILY)
            line = self._decoders[family.name].decode(raw, file, number)
            decoded.instances += line.instances
            decoded.moments += line.moments
            decoded.errors += line.errors
        return decoded
