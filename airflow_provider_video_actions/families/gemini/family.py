"""The Gemini family as the dispatcher sees it: which models, which regions, what is refused, what is sent."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

from airflow_provider_video_actions.families.base import FamilyRequest, ModelFamily, OpenRead, model_resource_name
from airflow_provider_video_actions.families.gemini.request import (
    MAX_INPUT_BYTES,
    MAX_REQUESTS_PER_JOB,
    MIME_TYPES,
    GeminiAsk,
    GeminiSummary,
    check_action_labels,
    check_fps,
    check_media_resolution,
    is_publisher_model,
    publisher_model,
)
from airflow_provider_video_actions.job import VideoActionsValueError, VideoInstance, check_region

#: The location served by ``aiplatform.googleapis.com``; Google's Gemini batch samples default to it.
GLOBAL_REGION = "global"


class GeminiFamily(ModelFamily):
    """Gemini publisher models (and tuned Gemini models with ``model_family="gemini"``): prompt in, JSON answer out."""

    name: ClassVar[str] = "gemini"
    mime_types: ClassVar[Mapping[str, str]] = MIME_TYPES

    def claims(self, model: str) -> bool:
        """``gemini-x``, ``publishers/google/models/gemini-x`` or the full ``projects/P/locations/L/publishers/...``."""
        return is_publisher_model(model)

    def resource_name(self, model: str, project_id: str, region: str) -> str:
        """The publisher path (kept whole when given with project and location), or a tuned model's full name."""
        if published := publisher_model(model, project_id, region):
            return published
        if isinstance(model, str) and "publishers/" in model:
            raise VideoActionsValueError(
                f"model {model!r} is not a Gemini model this provider can run: use 'gemini-<version>', "
                "'publishers/google/models/gemini-<version>' or its full "
                "'projects/P/locations/L/publishers/google/models/gemini-<version>' path."
            )
        if region == GLOBAL_REGION:
            raise VideoActionsValueError(
                f"model {model!r} is a tuned Gemini model: Google's global endpoint does not run batch jobs of "
                "tuned models; set region to the model's region."
            )
        return model_resource_name(model, project_id, region, "tuned Gemini")

    def check_region(self, region: Any) -> str:
        """A Vertex AI region, or ``global`` (endpoint ``aiplatform.googleapis.com``)."""
        return region if region == GLOBAL_REGION else check_region(region)

    def check_request(self, request: FamilyRequest) -> None:
        """A label set is required; Google serves the model, and Gemini batch takes no service account or CMEK."""
        if request.action_labels is None:
            raise VideoActionsValueError(
                "this is a Gemini model: give action_labels, the labels it may answer "
                "(a list of names, or a dict of name -> one-line description)."
            )
        check_action_labels(request.action_labels)
        refused = {
            "machine_type": "Google serves Gemini models; remove machine_type and the accelerator and replica settings",
            "service_account": "Gemini batch jobs do not support custom service accounts; remove service_account",
            "encryption_key": "Gemini batch jobs do not support customer-managed encryption keys (CMEK); "
            "remove encryption_key",
        }
        for param, fix in refused.items():
            if getattr(request, param):
                raise VideoActionsValueError(f"{param} is not for Gemini models: {fix}.")
        check_fps(request.fps)
        check_media_resolution(request.media_resolution)

    def ask(self, request: FamilyRequest) -> GeminiAsk:
        """What every request line asks."""
        return GeminiAsk(
            check_action_labels(request.action_labels),
            request.confidence_threshold,
            request.max_predictions,
            request.prompt,
            check_fps(request.fps),
            check_media_resolution(request.media_resolution),
        )

    def request_lines(self, instances: Iterable[VideoInstance], request: FamilyRequest) -> Iterator[str]:
        """One request line per instance, labelled with its index."""
        return self.ask(request).request_lines(instances)

    def input_limits(self, request: FamilyRequest) -> tuple[int, int]:
        """Google's limits, or lower ones the task asked for (a limit can be lowered, never raised past Google's)."""
        max_requests = min(request.max_requests_per_job or MAX_REQUESTS_PER_JOB, MAX_REQUESTS_PER_JOB)
        return max_requests, min(request.max_input_bytes or MAX_INPUT_BYTES, MAX_INPUT_BYTES)

    def check_input(self, lines: int, size: int, request: FamilyRequest) -> None:
        """Refuse an input over Google's limits before any job exists (one job per task instance)."""
        max_requests, max_bytes = self.input_limits(request)
        if lines > max_requests:
            raise VideoActionsValueError(
                f"{lines} requests pass max_requests_per_job={max_requests} (Google's Gemini batch limit is "
                f"{MAX_REQUESTS_PER_JOB:,} per job): split the videos over several tasks, e.g. mapped tasks."
            )
        if size > max_bytes:
            raise VideoActionsValueError(
                f"the request file is {size:,} bytes, over max_input_bytes={max_bytes:,} (Google's Gemini batch "
                f"limit is {MAX_INPUT_BYTES:,} bytes): split the videos over several tasks, e.g. mapped tasks."
            )

    def model_parameters(self, request: FamilyRequest) -> None:
        """Gemini takes none: the prompt states the threshold and limit and the parser enforces them."""
        return None

    def summary_part(self, request: FamilyRequest) -> dict[str, Any]:
        """The label set, threshold and limit the parse task holds answers to."""
        return GeminiSummary.from_ask(self.ask(request)).to_summary()

    def answer_decoder(
        self, job: Mapping[str, Any] | None, action_labels: Any = None, open_read: OpenRead | None = None
    ) -> Any:
        """A decoder with the job's rules, joining answers to instances through the job's instances file."""
        from airflow_provider_video_actions.families.gemini.answers import AnswerRules, GeminiDecoder, InstanceIndex

        uris = list(job.get("instances_uris") or []) if isinstance(job, Mapping) else []
        return GeminiDecoder(AnswerRules.from_job(job, action_labels), InstanceIndex(uris, open_read))


GEMINI = GeminiFamily()
