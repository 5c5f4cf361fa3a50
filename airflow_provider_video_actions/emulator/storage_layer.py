"""A thin layer over gcp-storage-emulator where it is looser than GCS in ways the provider relies on.

- Preconditions: ``ifGenerationMatch`` (``0``: the object must not exist), ``ifGenerationNotMatch``,
  ``ifMetagenerationMatch`` and ``ifMetagenerationNotMatch`` on uploads (simple, multipart and every
  request of a resumable one), deletes, metadata reads and downloads answer 412 when they do not hold
  (304 for a read whose ``NotMatch`` fails), as GCS does; the package ignores them. Every request of a
  resumable upload is checked, so one whose object appeared after it started fails at its last request.
  (The package serves one request at a time, so a check and its write cannot interleave with another.)
- Listings: ``maxResults`` pages (``nextPageToken`` / ``pageToken``) over objects and prefixes together,
  in name order, and ``startOffset`` / ``endOffset`` bound the names; the package returns everything.
- Ranged reads: a range that starts at or past an object's end (every range of an empty object) is 416
  with ``Content-Range: bytes */SIZE``, which the storage client turns into ``b""`` for an empty object;
  the package answers 206, which the client refuses.
- Generations: a download pinned to a generation (``?generation=``) the object no longer has is 404, as on
  GCS; the package ignores the parameter and serves whatever the object holds now.
- Faults: :func:`cut_next_downloads` makes the next downloads lose their connection half way through the
  body (after a whole ``Content-Length``), as a network does; the storage client retries them.

:func:`install` routes the package's handlers through these once per process, wherever its routes reach them.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from gcp_storage_emulator import server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

Handler = Callable[..., Any]

_RANGE_START = re.compile(r"^\s*bytes=(?P<start>[0-9]+)-[0-9]*\s*$")
#: Precondition query parameter -> (object field, whether it must equal the value).
_PRECONDITIONS = {
    "ifGenerationMatch": ("generation", True),
    "ifGenerationNotMatch": ("generation", False),
    "ifMetagenerationMatch": ("metageneration", True),
    "ifMetagenerationNotMatch": ("metageneration", False),
}
_PRECONDITION_FAILED = "At least one of the pre-conditions you specified did not hold."
_install_lock = threading.Lock()
#: Downloads still to be cut short (:func:`cut_next_downloads`), for every emulated GCS of this process.
_cuts = [0]
_cuts_lock = threading.Lock()
#: The package's own handlers, as imported (before :func:`install` replaces them).
_PACKAGE: dict[str, Handler] = {
    name: getattr(objects, name) for name in ("download", "get", "insert", "upload_partial", "delete", "ls")
}


def _query(request: Any, name: str) -> str | None:
    """One query parameter's value, or None."""
    values = request.query.get(name)
    return values[0] if values else None


def _current(storage: Any, bucket: str, name: str | None) -> dict | None:
    """The live object's resource, or None when it (or its bucket) does not exist."""
    if not name:
        return None
    try:
        return storage.get_file_obj(bucket, name)
    except NotFound:
        return None


def _failed_precondition(request: Any, resource: dict | None, *, read: bool) -> HTTPStatus | None:
    """The status GCS answers when a precondition of the request does not hold for ``resource``, else None."""
    for parameter, (field, must_equal) in _PRECONDITIONS.items():
        wanted = _query(request, parameter)
        if wanted is None:
            continue
        if not wanted.isdigit():
            return HTTPStatus.BAD_REQUEST
        if resource is None:  # only "must not exist" (generation 0) and the NotMatch conditions hold
            holds = wanted == "0" if parameter == "ifGenerationMatch" else not must_equal
        else:
            holds = (str(resource.get(field)) == wanted) == must_equal
        if not holds:
            return HTTPStatus.NOT_MODIFIED if read and not must_equal else HTTPStatus.PRECONDITION_FAILED
    return None


def _refuse(response: Any, status: HTTPStatus) -> None:
    """Answer a failed precondition (or a malformed one) with GCS's JSON error."""
    response.status = status
    if status != HTTPStatus.NOT_MODIFIED:
        message = _PRECONDITION_FAILED if status == HTTPStatus.PRECONDITION_FAILED else "Invalid precondition value."
        response.json({"error": {"code": status.value, "message": message, "errors": [{"message": message}]}})


def _checked_read(serve: Handler) -> Handler:
    """A read handler that answers a failed precondition before ``serve`` serves the object."""

    def handle(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> None:
        resource = _current(storage, request.params["bucket_name"], request.params["object_id"])
        if resource is not None and (status := _failed_precondition(request, resource, read=True)):
            _refuse(response, status)
            return
        serve(request, response, storage, *args, **kwargs)

    return handle


def _checked_write(write: Handler, target: Callable[[Any, Any], tuple[str, str | None]]) -> Handler:
    """A write handler that checks preconditions against the object ``target(request, storage)`` names, then lets
    ``write`` write."""

    def handle(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> None:
        try:
            bucket, name = target(request, storage)
        except NotFound:
            bucket, name = "", None  # the package answers 404 itself
        resource = _current(storage, bucket, name)
        if name is not None and (status := _failed_precondition(request, resource, read=False)):
            _refuse(response, status)
            return
        write(request, response, storage, *args, **kwargs)

    return handle


def _insert_target(request: Any, storage: Any) -> tuple[str, str | None]:
    """The object a simple, multipart or resumable-start upload names (the query's ``name`` wins, as in the package)."""
    if "upload_id" in request.query:  # some clients POST a resumable session's requests
        return _upload_target(request, storage)
    name = _query(request, "name")
    if name is None:  # multipart: {"meta": {...}}; resumable start: the metadata itself
        data = request.data
        meta = data.get("meta", data) if isinstance(data, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
    return request.params["bucket_name"], name


def _upload_target(request: Any, storage: Any) -> tuple[str, str | None]:
    """The object a resumable upload session writes."""
    resource = storage.get_resumable_file_obj(_query(request, "upload_id"))
    return resource["bucket"], resource["name"]


def _object_target(request: Any, storage: Any) -> tuple[str, str | None]:
    """The object of an object URL."""
    return request.params["bucket_name"], request.params["object_id"]


def cut_next_downloads(count: int = 1) -> None:
    """Cut the next ``count`` object downloads short: a whole ``Content-Length``, half the body, then the connection
    closes (0 cuts none). For tests of the reader's unhappy path; :meth:`Emulator.reset_knobs` sets it back to 0."""
    with _cuts_lock:
        _cuts[0] = count


def _take_cut() -> bool:
    """Whether this download is one to cut short (counting it)."""
    with _cuts_lock:
        if _cuts[0] <= 0:
            return False
        _cuts[0] -= 1
        return True


def _close_cut_short(response: Any) -> None:
    """Send the response's status and headers with its whole length, then half its body, and drop the connection."""
    content = response._content.encode() if isinstance(response._content, str) else response._content
    handler = response._handler
    handler.send_response(response.status.value, response.status.phrase)
    for key, value in response._headers.items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(content)))
    handler.end_headers()
    handler.wfile.write(content[: len(content) // 2])
    handler.close_connection = True


def download(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> None:
    """The package's download, but 416 (as GCS) for a range starting at or past the object's end, 404 for a
    generation that is not the object's, and cut short when :func:`cut_next_downloads` says so."""
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
    _PACKAGE["download"](request, response, storage, *args, **kwargs)
    if response.status in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT) and _take_cut():
        response.close = lambda: _close_cut_short(response)


def ls(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> None:
    """The package's listing, bounded by ``startOffset``/``endOffset`` and paged by ``maxResults``/``pageToken``."""
    _PACKAGE["ls"](request, response, storage, *args, **kwargs)
    if response.status != HTTPStatus.OK:
        return
    listing = json.loads(response._content)  # the package's Response has no reader for what it wrote
    start, end = _query(request, "startOffset") or "", _query(request, "endOffset")
    entries = sorted(
        [(item["name"], "item", item) for item in listing.get("items") or []]
        + [(prefix, "prefix", prefix) for prefix in listing.get("prefixes") or []],
        key=lambda entry: entry[0],
    )
    entries = [entry for entry in entries if entry[0] >= start and (end is None or entry[0] < end)]
    token, size = _query(request, "pageToken"), _query(request, "maxResults")
    if token is not None:
        after = _decode_token(token)
        if after is None:
            _refuse_listing(response, f"Invalid pageToken {token!r}")
            return
        entries = [entry for entry in entries if entry[0] > after]
    if size is not None and (not size.isdigit() or int(size) < 1):
        _refuse_listing(response, f"Invalid maxResults {size!r}: give a positive integer")
        return
    page = entries[: int(size)] if size is not None else entries
    body: dict[str, Any] = {
        "kind": "storage#objects",
        "prefixes": [value for _, kind, value in page if kind == "prefix"],
        "items": [value for _, kind, value in page if kind == "item"],
    }
    if len(page) < len(entries):
        body["nextPageToken"] = base64.urlsafe_b64encode(page[-1][0].encode()).decode()
    response.json(body)


def _decode_token(token: str) -> str | None:
    """The last name a page held, from its ``nextPageToken``; None for a token this server did not give."""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _refuse_listing(response: Any, message: str) -> None:
    """400 for a listing parameter GCS would refuse."""
    response.status = HTTPStatus.BAD_REQUEST
    response.json({"error": {"code": 400, "message": message, "errors": [{"message": message}]}})


#: Package handler name -> the handler installed in its place.
_LAYER: dict[str, Handler] = {
    "download": _checked_read(download),
    "get": _checked_read(_PACKAGE["get"]),
    "insert": _checked_write(_PACKAGE["insert"], _insert_target),
    "upload_partial": _checked_write(_PACKAGE["upload_partial"], _upload_target),
    "delete": _checked_write(_PACKAGE["delete"], _object_target),
    "ls": ls,
}


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
    """Route every route of the package (and its module-level names, which its own handlers call) through the layer."""
    with _install_lock:
        for name, handler in _LAYER.items():
            setattr(objects, name, handler)  # objects.get calls download by this name for ?alt=media
        replaced = {_PACKAGE[name]: handler for name, handler in _LAYER.items()}
        for _, handlers in server.HANDLERS:
            for method, handler in handlers.items():
                if handler in replaced:
                    handlers[method] = replaced[handler]
