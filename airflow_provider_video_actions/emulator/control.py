"""HTTP control API of a running emulator, for other processes: counters, call log, fault knobs, timeline, holds.

The emulator run as its own process (``python -m airflow_provider_video_actions.emulator``) serves it on
127.0.0.1 and announces it as ``VIDEO_ACTIONS_EMULATOR_CONTROL=http://127.0.0.1:PORT`` with a per-run token,
``VIDEO_ACTIONS_EMULATOR_TOKEN``. Every request must carry ``Authorization: Bearer TOKEN``, name the server
in its ``Host`` header (``127.0.0.1:PORT``, ``localhost:PORT`` or an opted-in name), send no ``Origin`` but
the server's own, and POST ``application/json`` bodies only: a web page in a browser can neither read nor
turn the knobs (no cross-site form posts, no DNS rebinding). JSON in, JSON out:

- ``GET /state``: ``calls``, ``faults``, ``list_filters`` (counters), ``created`` (job names), ``timeline``,
  ``jobs`` (name, display name, state, labels, times).
- ``GET /calls?since=EPOCH``: the call log, one entry per JobService call (time, method, target, outcome).
- ``POST /<knob>`` with the knob's keyword arguments: ``inject_faults``, ``fail_next``, ``lose_next_response``,
  ``force_outcome``, ``reset_knobs``, ``hold``/``release`` (keep jobs of a display name PAUSED once they have
  run / let them finish), ``hold_cancels``/``release_cancels`` (accept cancels of a display name's jobs but apply
  them only on release, as Vertex AI cancels asynchronously), ``timeline`` (change state timings), ``add_model``
  (serve one more model). Status codes are names (``"UNAVAILABLE"``). A display name also covers the names
  that start with it and a dot: ``my_dag.predict`` covers the provider's default ``my_dag.predict.<run id>``.

The client is :class:`EmulatorControl`; the same from a shell::

    python -m airflow_provider_video_actions.emulator.control state
    python -m airflow_provider_video_actions.emulator.control hold display_name=my_dag.predict
    python -m airflow_provider_video_actions.emulator.control timeline cancelling_seconds=60
"""

from __future__ import annotations

import argparse
import dataclasses
import hmac
import json
import math
import os
import secrets
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from airflow_provider_video_actions.emulator.server import Emulator

#: The environment variable naming the control API's base URL.
CONTROL_ENV = "VIDEO_ACTIONS_EMULATOR_CONTROL"
#: The environment variable holding the control API's token (new for every run of the emulator).
TOKEN_ENV = "VIDEO_ACTIONS_EMULATOR_TOKEN"
_LOOPBACK = "127.0.0.1"
_LOCAL_NAMES = (_LOOPBACK, "localhost")


def _status_code(name: str) -> grpc.StatusCode:
    """A gRPC status code from its name, or ValueError listing the names."""
    try:
        return grpc.StatusCode[name]
    except KeyError:
        raise ValueError(f"unknown gRPC status code {name!r}; use one of {[c.name for c in grpc.StatusCode]}") from None


def _set_timeline(emulator: Emulator, **fields: Any) -> dict[str, Any]:
    """Change timeline fields (finite, non-negative numbers); the next tick uses them."""
    known = {f.name: f.type for f in dataclasses.fields(emulator.timeline)}
    unknown = set(fields) - set(known)
    if unknown:
        raise ValueError(f"unknown timeline fields {sorted(unknown)}; known: {sorted(known)}")
    for name, value in fields.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"timeline.{name} must be a finite number >= 0, got {value!r}")
    emulator.timeline = dataclasses.replace(emulator.timeline, **fields)
    return dataclasses.asdict(emulator.timeline)


def _faults(knob: str) -> Callable[..., None]:
    """``fail_next`` or ``lose_next_response`` with the status code given by name."""

    def apply(emulator: Emulator, method: str, count: int = 1, code: str | None = None) -> None:
        """Queue ``count`` faults for ``method`` (the knob's default code unless named)."""
        kwargs = {} if code is None else {"code": _status_code(code)}
        getattr(emulator, knob)(method, count, **kwargs)

    return apply


def _inject_faults(
    emulator: Emulator, rate: float, methods: list[str] | None = None, code: str = "UNAVAILABLE", seed: int = 0
) -> None:
    """``inject_faults`` with the status code given by name."""
    emulator.inject_faults(rate, methods, _status_code(code), seed)


#: POST /<name> -> what it does to the emulator (keyword arguments from the JSON body).
KNOBS: dict[str, Callable[..., Any]] = {
    "inject_faults": _inject_faults,
    "fail_next": _faults("fail_next"),
    "lose_next_response": _faults("lose_next_response"),
    "force_outcome": lambda emulator, state, display_name=None: emulator.force_outcome(state, display_name),
    "reset_knobs": lambda emulator: emulator.reset_knobs(),
    "hold": lambda emulator, display_name: emulator.force_outcome("JOB_STATE_PAUSED", display_name),
    "release": lambda emulator, display_name: emulator.force_outcome(None, display_name),
    "hold_cancels": lambda emulator, display_name: emulator.hold_cancels(display_name),
    "release_cancels": lambda emulator, display_name: emulator.release_cancels(display_name),
    "timeline": _set_timeline,
    "add_model": lambda emulator, model: emulator.add_model(model),
}


def state(emulator: Emulator) -> dict[str, Any]:
    """Counters, created jobs, timeline and a short view of every job."""
    return {
        "calls": dict(emulator.calls),
        "faults": dict(emulator.faults),
        "list_filters": dict(emulator.list_filters),
        "created": list(emulator.created),
        "timeline": dataclasses.asdict(emulator.timeline),
        "models": emulator.service.models.known(),
        "jobs": [
            {
                "name": job.name,
                "display_name": job.display_name,
                "state": job.state.name,
                "labels": dict(job.labels),
                "create_time": job.create_time.isoformat(),
                "update_time": job.update_time.isoformat(),
            }
            for job in emulator.jobs()
        ],
    }


class _Handler(BaseHTTPRequestHandler):
    """Routes GET /state, GET /calls and POST /<knob> to the emulator (``server.emulator``)."""

    server: ControlServer

    def do_GET(self) -> None:
        """Read-only views."""
        if refusal := self.server.refusal(self.headers, post=False):
            self._answer(*refusal)
            return
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/state":
            self._answer(HTTPStatus.OK, state(self.server.emulator))
        elif url.path == "/calls":
            since = float(urllib.parse.parse_qs(url.query).get("since", ["0"])[0])
            entries = [e for e in self.server.emulator.call_log.entries() if e["time"] >= since]
            self._answer(HTTPStatus.OK, {"calls": entries})
        else:
            self._not_found(url.path)

    def do_POST(self) -> None:
        """Apply a knob with the JSON body's keyword arguments."""
        if refusal := self.server.refusal(self.headers, post=True):
            self._answer(*refusal)
            return
        knob = KNOBS.get(self.path.strip("/"))
        if knob is None:
            self._not_found(self.path)
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object of keyword arguments")
            result = knob(self.server.emulator, **body)
        except (TypeError, ValueError, KeyError) as exc:
            self._answer(HTTPStatus.BAD_REQUEST, {"error": f"{self.path}: {exc}"})
            return
        self._answer(HTTPStatus.OK, {"ok": True, "result": result})

    def _not_found(self, path: str) -> None:
        """404 naming what exists."""
        routes = ["GET /state", "GET /calls?since=EPOCH", *(f"POST /{name}" for name in KNOBS)]
        self._answer(HTTPStatus.NOT_FOUND, {"error": f"no route {path!r}; routes: {routes}"})

    def _answer(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        """Send a JSON response."""
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the JobService calls are what the log is for."""


def new_token() -> str:
    """A random control token in hex: never starting with ``-``, which ``--token TOKEN`` would take for an option
    (a URL-safe token did, one time in 64)."""
    return secrets.token_hex(32)


class ControlServer(ThreadingHTTPServer):
    """The control API of one emulator: it decides every job's outcome, so each request must prove it is ours.

    It binds 127.0.0.1 unless ``host`` is given (the CLI's ``--allow-remote``); ``names`` are further host
    names a client may put in its ``Host`` header (e.g. ``host.docker.internal``).
    """

    daemon_threads = True

    def __init__(
        self,
        emulator: Emulator,
        port: int = 0,
        token: str | None = None,
        host: str = _LOOPBACK,
        names: Iterable[str] = (),
    ) -> None:
        """Bind (port 0 picks a free port; the token is random unless given); ``start()`` serves in a thread."""
        super().__init__((host, port), _Handler)
        self.emulator = emulator
        self.token = token or new_token()
        self.names = frozenset({*_LOCAL_NAMES, *names})
        self._thread = threading.Thread(target=self.serve_forever, name="emulator-control", daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{_LOOPBACK}:{self.server_address[1]}"

    def env(self, host: str = _LOOPBACK) -> dict[str, str]:
        """The environment variables a client (:class:`EmulatorControl`) reads: URL (naming ``host``) and token."""
        return {CONTROL_ENV: f"http://{host}:{self.server_address[1]}", TOKEN_ENV: self.token}

    def refusal(self, headers: Any, post: bool) -> tuple[HTTPStatus, dict[str, str]] | None:
        """Why a request is refused (status and error), or None: foreign Host or Origin, no token, not JSON."""
        port = self.server_address[1]
        allowed = {f"{name}:{port}" for name in self.names}
        host = headers.get("Host", "")
        if host not in allowed:
            return HTTPStatus.FORBIDDEN, {"error": f"Host {host!r} is not this server; use one of {sorted(allowed)}"}
        origin = headers.get("Origin")
        if origin is not None and origin not in {f"http://{name}" for name in allowed}:
            return HTTPStatus.FORBIDDEN, {"error": f"cross-origin request from {origin!r} refused"}
        sent = headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {self.token}".encode()):
            return HTTPStatus.UNAUTHORIZED, {
                "error": f"missing or wrong token: send 'Authorization: Bearer ${TOKEN_ENV}' (the env file has it)"
            }
        content_type = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if post and content_type != "application/json":
            return HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {
                "error": f"the body must be application/json, got Content-Type {content_type or 'none'!r}"
            }
        return None

    def start(self) -> ControlServer:
        """Serve in the background; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self.shutdown()
        self.server_close()


class EmulatorControlError(RuntimeError):
    """The control API refused a request (the message says why)."""


class EmulatorControl:
    """Client of a running emulator's control API (defaults: ``$VIDEO_ACTIONS_EMULATOR_CONTROL`` and its token)."""

    def __init__(self, url: str | None = None, timeout: float = 10.0, token: str | None = None) -> None:
        """Point at ``url`` with ``token``; ValueError if neither they nor the environment variables are set."""
        url = url or os.environ.get(CONTROL_ENV)
        if not url:
            raise ValueError(f"no control URL: pass url= or set {CONTROL_ENV} (the emulator's --env-file has it)")
        token = token or os.environ.get(TOKEN_ENV)
        if not token:
            raise ValueError(f"no control token: pass token= or set {TOKEN_ENV} (the emulator's --env-file has it)")
        self.url, self.timeout, self.token = url.rstrip("/"), timeout, token

    @classmethod
    def of(cls, server: ControlServer) -> EmulatorControl:
        """A client of an in-process control server."""
        return cls(server.url, token=server.token)

    def state(self) -> dict[str, Any]:
        """Counters, created jobs, timeline and jobs (see :func:`state`)."""
        return self._request("GET", "/state")

    def calls(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Call log entries at or after ``since`` (epoch seconds)."""
        return self._request("GET", f"/calls?since={since}")["calls"]

    def knob(self, name: str, **kwargs: Any) -> Any:
        """Apply a knob (``POST /<name>``) and return its result."""
        return self._request("POST", f"/{name}", kwargs)["result"]

    def inject_faults(
        self, rate: float, methods: list[str] | None = None, code: str = "UNAVAILABLE", seed: int = 0
    ) -> None:
        """Fail that share of calls to ``methods`` (None = all) with ``code``."""
        self.knob("inject_faults", rate=rate, methods=methods, code=code, seed=seed)

    def fail_next(self, method: str, count: int = 1, code: str = "UNAVAILABLE") -> None:
        """Fail the next ``count`` calls to ``method``."""
        self.knob("fail_next", method=method, count=count, code=code)

    def lose_next_response(self, method: str, count: int = 1, code: str = "DEADLINE_EXCEEDED") -> None:
        """Do the next ``count`` calls to ``method`` but answer ``code``."""
        self.knob("lose_next_response", method=method, count=count, code=code)

    def force_outcome(self, state: str | None, display_name: str | None = None) -> None:
        """End jobs (all, or of a display name) in ``state``; None removes the rule."""
        self.knob("force_outcome", state=state, display_name=display_name)

    def hold(self, display_name: str) -> None:
        """Keep jobs of this display name PAUSED once they have run, until :meth:`release`."""
        self.knob("hold", display_name=display_name)

    def release(self, display_name: str) -> None:
        """Let held jobs of this display name finish."""
        self.knob("release", display_name=display_name)

    def hold_cancels(self, display_name: str) -> None:
        """Accept cancels of this display name's jobs without applying them, until :meth:`release_cancels`."""
        self.knob("hold_cancels", display_name=display_name)

    def release_cancels(self, display_name: str) -> None:
        """Apply the cancels accepted while held, and stop holding them."""
        self.knob("release_cancels", display_name=display_name)

    def reset_knobs(self) -> None:
        """No forced outcomes, no faults, no held cancels."""
        self.knob("reset_knobs")

    def add_model(self, model: str) -> str:
        """Serve one more model (an ID, ``projects/P/locations/L/models/ID`` or a Gemini name)."""
        return self.knob("add_model", model=model)

    def set_timeline(self, **fields: float) -> dict[str, Any]:
        """Change state timings (``queued_seconds``, ``cancelling_seconds``...); return the whole timeline."""
        return self.knob("timeline", **fields)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One JSON request; EmulatorControlError with the server's message on an HTTP error."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise EmulatorControlError(json.load(exc).get("error", str(exc))) from None


def _value(text: str) -> Any:
    """A CLI value: JSON if it parses (numbers, null, lists), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> None:
    """``control [--url URL] state|calls|KNOB [key=value ...]``: print the JSON answer."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_video_actions.emulator.control",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", help=f"control API base URL (default ${CONTROL_ENV})")
    parser.add_argument("--token", help=f"control API token (default ${TOKEN_ENV})")
    parser.add_argument("command", choices=["state", "calls", *KNOBS])
    parser.add_argument("arguments", nargs="*", metavar="key=value", help="keyword arguments (values as JSON)")
    args = parser.parse_args(argv)
    kwargs = {}
    for argument in args.arguments:
        key, sep, value = argument.partition("=")
        if not sep:
            parser.error(f"arguments are key=value, got {argument!r}")
        kwargs[key] = _value(value)
    try:
        control = EmulatorControl(args.url, token=args.token)
        if args.command == "state":
            answer = control.state()
        elif args.command == "calls":
            answer = control.calls(**kwargs)
        else:
            answer = control.knob(args.command, **kwargs)
    except (ValueError, EmulatorControlError) as exc:
        parser.exit(2, f"error: {exc}\n")
    json.dump(answer, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
