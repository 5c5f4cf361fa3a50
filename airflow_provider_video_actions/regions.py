"""The Vertex AI regions the provider accepts without ``allow_unlisted_region``: Google's published list.

The list is Google's "Vertex AI locations" page (plus ``global`` for Gemini, which its family checks).
A misspelled region otherwise surfaces late, as a DNS failure of ``<region>-aiplatform.googleapis.com``;
regions Google opens after this list was written pass with ``allow_unlisted_region=True``.
"""

from __future__ import annotations

import difflib

from airflow_provider_video_actions.errors import VideoActionsValueError

#: Vertex AI's regional endpoints, from Google's "Vertex AI locations" page.
VERTEX_AI_REGIONS = frozenset(
    {
        "africa-south1",
        "asia-east1",
        "asia-east2",
        "asia-northeast1",
        "asia-northeast2",
        "asia-northeast3",
        "asia-south1",
        "asia-south2",
        "asia-southeast1",
        "asia-southeast2",
        "australia-southeast1",
        "australia-southeast2",
        "europe-central2",
        "europe-north1",
        "europe-north2",
        "europe-southwest1",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "europe-west12",
        "me-central1",
        "me-central2",
        "me-west1",
        "northamerica-northeast1",
        "northamerica-northeast2",
        "northamerica-south1",
        "southamerica-east1",
        "southamerica-west1",
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west2",
        "us-west3",
        "us-west4",
    }
)


def check_listed_region(region: str, *, allow_unlisted: bool = False, also: frozenset[str] = frozenset()) -> str:
    """The region if it is on Google's list (or in ``also``, e.g. Gemini's ``global``), else refuse it, naming the
    nearest listed ones: a misspelling never reaches DNS. ``allow_unlisted`` lets regions newer than the list pass."""
    if allow_unlisted or region in VERTEX_AI_REGIONS or region in also:
        return region
    near = difflib.get_close_matches(region, sorted(VERTEX_AI_REGIONS | also), n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(map(repr, near))}?" if near else ""
    raise VideoActionsValueError(
        f"region {region!r} is not one of Vertex AI's published regions.{hint} If Google opened it after this "
        "provider's list was written, pass allow_unlisted_region=True."
    )
