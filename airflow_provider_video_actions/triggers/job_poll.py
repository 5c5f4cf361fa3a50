"""One poll for all waits: list the provider's jobs once per interval and share what it saw.

Waits that share a :class:`PollKey` (connection, impersonation, project, region, interval) read
the same snapshots: ``{job name: job summary}`` of the jobs labelled ``airflow_provider=video-actions``
created since the oldest one still running, from one paged, field-masked list call per interval.
The interval starts short and backs off to the user's ``poll_interval``. Transient errors are retried
inside the loop, and a permanent one yields an empty snapshot (each wait then reads its own job and
reports its own error): the loop never ends by itself, because on Airflow >= 3.3 its end would fail
every task in the group. The triggerer runs it as a shared stream there; :func:`subscribe` fans one
loop per key out to every wait in the process elsewhere (older Airflow, ``dag.test``, worker mode).
It cannot see which jobs are waited on: a job missing from a snapshot is read directly by its wait.
A poll whose list failed yields ``None`` instead of a snapshot, so waits can tell "not listed" from
"list down" and read their own jobs while the list stays down. google-cloud is imported in a thread
on first use: its import takes seconds, which would stall every other trigger in the triggerer.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import random
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import ModuleType
from typing import TYPE_CHECKING, Any

from airflow_provider_video_actions.job import (
    PROVIDER_LABEL,
    PROVIDER_LABEL_VALUE,
    TERMINAL_STATES,
    job_summary,
    parse_job_name,
)

if TYPE_CHECKING:
    from airflow_provider_video_actions.hooks.batch_prediction import VideoActionBatchPredictionAsyncHook

log = logging.getLogger(__name__)
HOOKS_MODULE = "airflow_provider_video_actions.hooks.batch_prediction"

#: First interval of a new poll loop; it grows by BACKOFF per poll up to the key's poll interval.
FIRST_INTERVAL = 1.0
BACKOFF = 1.5
#: How far back the first list of a loop looks; older jobs are read directly by their waits.
FIRST_LOOKBACK = timedelta(days=3)
#: Slack on the "created since" bound, for clock differences between here and Vertex AI.
CLOCK_SLACK = timedelta(minutes=10)
#: The job fields a summary needs: the list returns only these.
SUMMARY_FIELDS = (
    "name,display_name,model,state,output_info,input_config,completion_stats,error,"
    "partial_failures,labels,create_time,start_time,end_time,update_time"
)

#: ``{job name: job summary}`` of one list call; ``None`` stands for a poll whose list failed.
Snapshot = dict[str, dict[str, Any]]


_hooks_module: ModuleType | None = None


async def hooks_module() -> ModuleType:
    """The hooks module, with google-cloud-aiplatform: imported in a thread the first time, not in the event loop.

    Not read from ``sys.modules``: a module is there while its (seconds-long) import is still running
    in another thread; ``import_module`` waits for that import to finish.
    """
    global _hooks_module
    if _hooks_module is None:
        _hooks_module = await asyncio.to_thread(importlib.import_module, HOOKS_MODULE)
    return _hooks_module


@dataclass(frozen=True)
class PollKey:
    """What one shared poll loop is for: everything the list call depends on."""

    gcp_conn_id: str
    impersonation_chain: str | tuple[str, ...] | None
    project_id: str
    region: str
    poll_interval: float

    @classmethod
    def for_job(cls, job_name: str, gcp_conn_id: str, impersonation_chain: Any, poll_interval: float) -> PollKey:
        """The key of the loop that watches ``job_name``."""
        project_id, region, _ = parse_job_name(job_name)
        return cls(gcp_conn_id, _hashable(impersonation_chain), project_id, region, float(poll_interval))


def _hashable(impersonation_chain: Any) -> str | tuple[str, ...] | None:
    """An impersonation chain usable in a key (trigger kwargs bring it back from JSON as a list)."""
    return tuple(impersonation_chain) if isinstance(impersonation_chain, list) else impersonation_chain


_hooks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, VideoActionBatchPredictionAsyncHook]] = (
    weakref.WeakKeyDictionary()
)


async def shared_hook(gcp_conn_id: str, impersonation_chain: Any) -> VideoActionBatchPredictionAsyncHook:
    """One async hook (so one gRPC channel per region) per connection and event loop."""
    module = await hooks_module()
    chain = _hashable(impersonation_chain)
    hooks = _hooks.setdefault(asyncio.get_running_loop(), {})
    if (gcp_conn_id, chain) not in hooks:
        hooks[(gcp_conn_id, chain)] = module.VideoActionBatchPredictionAsyncHook(
            gcp_conn_id=gcp_conn_id, impersonation_chain=impersonation_chain
        )
    return hooks[(gcp_conn_id, chain)]


def list_filter(since: datetime) -> str:
    """The provider's jobs created since ``since`` (RFC 3339, UTC)."""
    stamp = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f'labels.{PROVIDER_LABEL}="{PROVIDER_LABEL_VALUE}" AND create_time>="{stamp}"'


def next_since(snapshot: Snapshot, now: datetime) -> datetime:
    """Where the next list starts: the oldest job still running, or just before now."""
    live = [s["create_time"] for s in snapshot.values() if s["state"] not in TERMINAL_STATES and s["create_time"]]
    oldest = min((datetime.fromisoformat(t) for t in live), default=now)
    return oldest - CLOCK_SLACK


async def job_snapshots(key: PollKey) -> AsyncIterator[Snapshot | None]:
    """Yield a snapshot of the provider's recent jobs every interval (``None`` when the list failed), forever."""
    hooks = await hooks_module()
    since = datetime.now(timezone.utc) - FIRST_LOOKBACK
    interval, failures = min(FIRST_INTERVAL, key.poll_interval), _Failures(key)
    loop = asyncio.get_running_loop()
    while True:
        next_poll = loop.time() + interval  # a fixed rate: the list's own time does not stretch the interval
        try:
            hook = await shared_hook(key.gcp_conn_id, key.impersonation_chain)
            jobs = await hook.list_jobs(key.project_id, key.region, list_filter(since), SUMMARY_FIELDS)
            snapshot = {job.name: job_summary(job) for job in jobs}
            since = next_since(snapshot, datetime.now(timezone.utc)) if snapshot else since
        except Exception as exc:
            # Whatever failed (the call, credentials, an odd job), each wait now reads its own job; the
            # loop never ends by itself (see the module doc).
            delay = failures.record(exc, transient=hooks.is_transient(exc))
            yield None
            await asyncio.sleep(delay)
            continue
        failures.clear()
        yield snapshot
        await asyncio.sleep(max(0.0, next_poll - loop.time()))
        interval = min(interval * BACKOFF, key.poll_interval)


class _Failures:
    """A streak of failed lists: backoff with jitter, and one warning per streak or change of error, not per poll."""

    def __init__(self, key: PollKey) -> None:
        self.key, self.count, self.last = key, 0, ""

    def record(self, exc: Exception, *, transient: bool) -> float:
        """Log the failure if it is new, and return how long to wait before listing again."""
        self.count += 1
        message = f"{type(exc).__name__}: {exc}"
        if message != self.last:
            kind = "transient; retrying with backoff" if transient else "waits read their jobs directly meanwhile"
            log.warning("Listing jobs in %s/%s failed (%s): %s", self.key.project_id, self.key.region, kind, message)
            self.last = message
        return min(self.key.poll_interval, 2.0 ** (self.count - 1)) * random.uniform(0.5, 1.0)

    def clear(self) -> None:
        """The list works again: say so once."""
        if self.count:
            log.info(
                "Listing jobs in %s/%s works again after %d failures", self.key.project_id, self.key.region, self.count
            )
        self.count, self.last = 0, ""


class _Fanout:
    """One poll loop in this process, its latest snapshot, and the waits reading it."""

    def __init__(self, key: PollKey) -> None:
        self.latest: Snapshot | None = None
        self.version, self.readers = 0, 0
        self.changed = asyncio.Condition()
        self.task = asyncio.ensure_future(self._pump(key))

    async def _pump(self, key: PollKey) -> None:
        async for snapshot in job_snapshots(key):
            async with self.changed:
                self.latest, self.version = snapshot, self.version + 1
                self.changed.notify_all()

    def _newer_than(self, version: int) -> Any:
        return lambda: self.version > version

    async def read(self) -> AsyncIterator[Snapshot | None]:
        """Every snapshot from now on (the current one first, if there is one)."""
        seen = max(self.version - 1, 0)
        while True:
            async with self.changed:
                await self.changed.wait_for(self._newer_than(seen))
                snapshot, seen = self.latest, self.version
            yield snapshot


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[PollKey, _Fanout]] = weakref.WeakKeyDictionary()


async def subscribe(key: PollKey) -> AsyncIterator[Snapshot | None]:
    """Snapshots from the process-wide loop for ``key``, started by the first reader, stopped by the last."""
    fanouts = _fanouts.setdefault(asyncio.get_running_loop(), {})
    fanout = fanouts.get(key) or fanouts.setdefault(key, _Fanout(key))
    fanout.readers += 1
    try:
        async for snapshot in fanout.read():
            yield snapshot
    finally:
        fanout.readers -= 1
        if not fanout.readers:
            fanout.task.cancel()
            del fanouts[key]
