"""A thin layer over gcp-storage-emulator where it differs from GCS in ways the provider's reads meet.

Ranged reads: GCS answers a range that starts at or past an object's end (every range of an empty object)
with 416 and ``Content-Range: bytes */SIZE``, which the storage client turns into ``b""`` for an empty
object; the package answers 206, which the client refuses. :func:`install` wraps the package's download
handler once per process, wherever its routes reach it.

Generations: GCS answers a download pinned to a generation (``?generation=``) that is no longer the object's
with 404; the package ignores the parameter and serves whatever the object holds now.
"""

from __future__ import annotations

import re
import threading
from http import HTTPStatus
from typing import Any

from gcp_storage_emulator import server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

_RANGE_START = re.compile(r"^\s*bytes=(?P<start>[0-9]+)-[0-9]*\s*$")
_lock = threading.Lock()
_package_download = objects.download


def download(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> None:
    """The package's download, but 416 (as GCS) for a range starting at or past the object's end, and 404 for a
    generation that is not the object's."""
    if _generation_gone(request, storage):
        response.status = HTTPStatus.NOT_FOUND
        return
    match = _RANGE_START.match(request.get_header("range", None) or "")
    if match:
        try:
            size = len(storage.get_file(request.params["bucket_name"], request.params["object_id"]))
        except NotFound:
            size = None  # the package answers 404 itself
        if size is not None and int(match["start"]) >= size:
            response.status = HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE
            response["Content-Range"] = f"bytes */{size}"
            return
    _package_download(request, response, storage, *args, **kwargs)


def _generation_gone(request: Any, storage: Any) -> bool:
    """Whether the download names a generation (``?generation=``) and the object has another (or is gone)."""
    wanted = request.query.get("generation")
    if not wanted:
        return False
    try:
        found = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
    except NotFound:
        return True
    return str(found.get("generation")) != wanted[0]


def install() -> None:
    """Route every download of the package (media routes and ``?alt=media``) through :func:`download`."""
    with _lock:
        objects.download = download  # objects.get calls it by this module-level name for ?alt=media
        for _, handlers in server.HANDLERS:
            for method, handler in handlers.items():
                if handler is _package_download:
                    handlers[method] = download
