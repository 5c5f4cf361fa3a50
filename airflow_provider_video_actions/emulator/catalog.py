"""The models and regions the emulator serves: any other model's create answers NOT_FOUND, as Vertex AI does.

A model is known by its ID (``1234567890``: that model in every project and region), by its full name
(``projects/P/locations/L/models/ID``: only there), or, for Gemini, by its publisher name
(``gemini-2.5-flash`` or ``publishers/google/models/gemini-2.5-flash``). Versions (``ID@2``) are any
version of a known model. Regions are Vertex AI's published list, plus ``global`` for Gemini.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Iterable

import grpc

from airflow_provider_video_actions.emulator.errors import AbortError
from airflow_provider_video_actions.regions import VERTEX_AI_REGIONS

#: The example DAGs' and the demo's action recognition model.
DEMO_MODELS = ("1234567890",)
#: Gemini publisher models known without a flag (``--model gemini-x`` adds others).
GEMINI_MODELS = (
    "gemini-2.0-flash",
    "gemini-2.0-flash-001",
    "gemini-2.0-flash-lite",
    "gemini-2.0-flash-lite-001",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.5-pro",
)
GLOBAL = "global"
#: An action recognition model's display name is this prefix and its ID.
MODEL_DISPLAY_PREFIX = "video-action-recognition-"
PUBLISHER_PREFIX = "publishers/google/models/"

_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_MODEL_NAME = re.compile(rf"^projects/[^/]+/locations/[^/]+/models/(?P<id>{_ID})(?:@[A-Za-z0-9_-]+)?$")
_PUBLISHER_NAME = re.compile(rf"^(?:projects/[^/]+/locations/[^/]+/)?{PUBLISHER_PREFIX}(?P<id>gemini-{_ID})$")
_BARE_ID = re.compile(rf"^{_ID}$")


def publisher_model(model: str) -> str | None:
    """The Gemini publisher model ID a job's ``model`` names, or None for any other model."""
    match = _PUBLISHER_NAME.match(model)
    return match["id"] if match else None


class ModelCatalog:
    """The models one emulator serves: the demo's and Google's Gemini models, plus any added."""

    def __init__(self, models: Iterable[str] = ()) -> None:
        """Know the defaults and ``models`` (each as :meth:`add` takes it)."""
        self._lock = threading.Lock()
        self._ids: set[str] = set(DEMO_MODELS)
        self._names: set[str] = set()
        self._gemini: set[str] = set(GEMINI_MODELS)
        for model in models:
            self.add(model)

    def add(self, model: str | int) -> str:
        """Serve one more model: an ID, ``projects/P/locations/L/models/ID``, ``gemini-x`` or its publisher name.

        Returns the form it was recorded in; ValueError for anything else. A whole number is an ID (the
        control CLI reads ``model=555`` as JSON).
        """
        if isinstance(model, int) and not isinstance(model, bool) and model >= 0:
            model = str(model)
        if not isinstance(model, str):
            raise ValueError(f"model must be a string, got {model!r}")
        gemini = publisher_model(model) or (model if model.startswith("gemini-") and _BARE_ID.match(model) else None)
        with self._lock:
            if gemini:
                self._gemini.add(gemini)
                return PUBLISHER_PREFIX + gemini
            if _MODEL_NAME.match(model):
                name = model.split("@", 1)[0]
                self._names.add(name)
                return name
            if _BARE_ID.match(model):
                self._ids.add(model.split("@", 1)[0])
                return model
        raise ValueError(
            f"cannot serve model {model!r}: give a model ID (1234567890), projects/P/locations/L/models/ID, "
            "gemini-<version> or publishers/google/models/gemini-<version>"
        )

    def known(self) -> list[str]:
        """Every model served, IDs first, then full names, then Gemini publisher names."""
        with self._lock:
            return [*sorted(self._ids), *sorted(self._names), *(PUBLISHER_PREFIX + g for g in sorted(self._gemini))]

    def check(self, location: str, model: str) -> None:
        """NOT_FOUND (in Vertex AI's words) unless ``model`` is served; ``global`` takes Gemini models only."""
        parent = model.split("/models/", 1)[0]
        if gemini := publisher_model(model):
            with self._lock:
                if gemini in self._gemini:
                    return
            raise AbortError(
                grpc.StatusCode.NOT_FOUND,
                f"Publisher Model `{model}` was not found or your project does not have access to it. "
                f"Please ensure you are using a valid model version (the emulator serves {self._hint()})",
            )
        if location == GLOBAL:
            raise AbortError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"List of found errors:\t1.Field: parent; Message: location `global` serves Gemini publisher "
                f"models only, not model {model!r}; use the model's region",
            )
        match = _MODEL_NAME.match(model)
        with self._lock:
            if match and (match["id"] in self._ids or f"{parent}/models/{match['id']}" in self._names):
                return
        raise AbortError(
            grpc.StatusCode.NOT_FOUND,
            f"Model `{model}` was not found or your project does not have access to it "
            f"(the emulator serves {self._hint()})",
        )

    def display_name(self, model: str) -> str:
        """A model's display name, as GetModel reports it and its jobs' output folders are named.

        ``video-action-recognition-<ID>`` for an action recognition model, the model ID for a Gemini model.
        """
        if gemini := publisher_model(model):
            return gemini
        return f"{MODEL_DISPLAY_PREFIX}{model.split('@', 1)[0].rstrip('/').rsplit('/', 1)[-1]}"

    def _hint(self) -> str:
        """The served models and how to add one, for NOT_FOUND messages."""
        return f"{', '.join(self.known())}; add one with --model ID_OR_NAME or the control API's add_model"


def check_location(location: str) -> None:
    """INVALID_ARGUMENT for a location Vertex AI does not serve (``global`` is Gemini's, checked with the model)."""
    if location != GLOBAL and location not in VERTEX_AI_REGIONS:
        close = difflib.get_close_matches(location, sorted(VERTEX_AI_REGIONS), n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else f"regions: {', '.join(sorted(VERTEX_AI_REGIONS))}"
        raise AbortError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"List of found errors:\t1.Field: parent; Message: Location `{location}` is not a Vertex AI region "
            f"({hint}; {GLOBAL} serves Gemini)",
        )
