"""One safe path segment per run id, for per-run output folders: ``gs://bucket/moments/{{ run_id | path_segment }}/``.

The segment is a reversible escape of the run id, so two different runs never share a folder: letters,
digits, ``-``, ``_`` and ``.`` (not as the first character) are kept; every other character becomes
``~`` and two upper-case hex digits per UTF-8 byte (``:`` is ``~3A``, ``~`` itself ``~7E``). It is
percent-encoding with ``~`` for ``%``: ``urllib.parse.unquote(segment.replace("~", "%"))`` gives the
run id back. The package's operators render their templated fields with ``path_segment`` as a Jinja
filter, so a DAG uses ``{{ run_id | path_segment }}`` without defining it (a DAG's own
``user_defined_filters`` entry of that name wins).
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING, Any

from airflow_provider_video_actions.job import VideoActionsValueError, brief

if TYPE_CHECKING:
    import jinja2

#: Characters a segment keeps as they are: safe in gs:// and file:// URIs and in POSIX file names.
KEPT_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.")
#: Starts each escaped byte; an unreserved URI character that GCS, shells' globs and POSIX leave alone.
ESCAPE = "~"
#: The longest segment made: NAME_MAX, the longest file or folder name of ext4, XFS and APFS (bytes;
#: a segment is ASCII). Ordinary run ids (``manual__2026-12-05T20:11:45.123456+00:00``) take about 50.
MAX_SEGMENT_LENGTH = 255
#: The Jinja filter name the operators provide.
FILTER_NAME = "path_segment"


def _escaped(character: str) -> str:
    """One character as ``~XX`` per UTF-8 byte (lone surrogates too, so every string has a segment)."""
    return "".join(f"{ESCAPE}{byte:02X}" for byte in character.encode("utf-8", "surrogatepass"))


def path_segment(run_id: str) -> str:
    """The run id as one path segment, distinct for distinct run ids; refuses what cannot be one.

    Never contains ``/``, control characters or anything but ``[A-Za-z0-9._~-]``; never starts with
    ``.`` (so it is never ``.`` or ``..``, nor a hidden file); at most :data:`MAX_SEGMENT_LENGTH` long.
    """
    if not isinstance(run_id, str) or not run_id:
        raise VideoActionsValueError(
            f"path_segment takes a run id, a non-empty string; got {brief(run_id)} ({type(run_id).__name__}). "
            "Pass the run's id: {{ run_id | path_segment }}."
        )
    segment = "".join(
        c if c in KEPT_CHARACTERS and not (i == 0 and c == ".") else _escaped(c) for i, c in enumerate(run_id)
    )
    if len(segment) > MAX_SEGMENT_LENGTH:
        raise VideoActionsValueError(
            f"path_segment: the run id {brief(run_id)} ({len(run_id)} characters) makes a {len(segment)}-character "
            f"path segment, over the {MAX_SEGMENT_LENGTH} a folder name may have. Trigger the run with a shorter run "
            "id, or one mostly of letters, digits, '-', '_' and '.' (kept as they are; any other character takes "
            "3 to 12)."
        )
    return segment


def with_path_segment_filter(env: jinja2.Environment) -> jinja2.Environment:
    """``env``, or an overlay of it with the ``path_segment`` filter when it has no filter of that name."""
    if FILTER_NAME in env.filters:
        return env
    overlay = env.overlay()
    overlay.filters = {**env.filters, FILTER_NAME: path_segment}
    return overlay


class PathSegmentFilterMixin:
    """Renders an operator's templated fields with the ``path_segment`` filter available.

    Overrides ``render_template``, which every rendering path calls (plain and mapped tasks, Airflow 2
    and 3); ``get_template_env`` would not do: Airflow 3's task runner passes the DAG's environment in.
    A run id the filter refuses fails the task without a retry, as every bad parameter does.
    """

    def render_template(
        self, content: Any, context: Any, jinja_env: jinja2.Environment | None = None, seen_oids: Any = None
    ) -> Any:
        """Render with the DAG's environment (or the default one) plus the ``path_segment`` filter."""
        env = with_path_segment_filter(jinja_env or self.get_template_env())  # type: ignore[attr-defined]
        return super().render_template(content, context, env, seen_oids)  # type: ignore[misc]
