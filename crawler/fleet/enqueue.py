"""run-once and schedule with a broker: due sources enqueued as tasks of source ids.

``run-once`` waits for its tasks through the result backend and prints the same summary
as an in-process run. A Redis that restarts without its data loses queued tasks and
results: the waiter notices (the server's run_id changes) and sends every unfinished
task again under its own id — leases and the enqueue time make a second delivery skip
what was captured, so nothing is lost and nothing is captured twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis
from celery import Celery
from celery.result import AsyncResult
from kombu.exceptions import OperationalError

from crawler.app import App
from crawler.config import Config
from crawler.errors import BrokerUnavailable
from crawler.fleet.app import SOCKET_TIMEOUT_S, TASK_NAME, check_fleet_store, make_app
from crawler.notify import deliver, events_for_run
from crawler.pipelines import CaptureResult
from crawler.runonce import RunSummary
from crawler.sources import load_citation_list, register
from storage.ids import new_capture_id, utc_now_rfc3339
from storage.objectstore import redact_url
from storage.runlog import RunLog

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # how often run-once looks at its tasks' states
WORKER_CHECK_SECONDS = 60.0  # how often a waiting run-once asks whether any worker is alive
PING_SECONDS = 1.0  # how long workers have to answer that ping
TRANSIENT = (redis.RedisError, OperationalError, OSError)


@dataclass
class Enqueued:
    """Tasks sent for one run: task id -> its source ids."""

    run_id: str
    enqueued_at: str
    tasks: dict[str, list[str]] = field(default_factory=dict)

    @property
    def sources(self) -> int:
        return sum(len(ids) for ids in self.tasks.values())

    def line(self) -> str:
        return f"enqueued {self.sources} due sources in {len(self.tasks)} tasks (run {self.run_id})"


def send(
    app: Celery, config: Config, enqueued: Enqueued, task_ids: list[str] | None = None
) -> None:
    """Send the tasks ``task_ids`` (again), or every task of ``enqueued``."""
    try:
        for tid in task_ids if task_ids is not None else list(enqueued.tasks):
            app.send_task(
                TASK_NAME,
                args=(enqueued.tasks[tid], enqueued.run_id, enqueued.enqueued_at),
                task_id=tid,
                queue=config.queue.queue_name,
            )
    # RuntimeError: Celery's result consumer gave up reconnecting (the app must be rebuilt).
    except (*TRANSIENT, RuntimeError) as exc:
        raise BrokerUnavailable(f"[queue] broker {redact_url(config.queue.broker)}: {exc}") from exc


def check_broker(config: Config) -> None:
    """BrokerUnavailable now if a Redis broker does not answer (nothing enqueued yet)."""
    url = config.queue.broker
    if not url.startswith(("redis://", "rediss://")):
        return
    try:
        with _client(url) as client:
            client.ping()
    except TRANSIENT as exc:
        raise BrokerUnavailable(f"[queue] broker {redact_url(url)}: {exc}") from exc


def enqueue_sources(
    app: Celery, config: Config, source_ids: Sequence[str], run_id: str | None = None
) -> Enqueued:
    """Send ``source_ids`` in tasks of ``[queue] batch_size`` sources."""
    enqueued = Enqueued(run_id or new_capture_id(), utc_now_rfc3339())
    size = config.queue.batch_size
    for start in range(0, len(source_ids), size):
        enqueued.tasks[new_capture_id()] = list(source_ids[start : start + size])
    send(app, config, enqueued)
    return enqueued


def queue_depth(config: Config) -> int | None:
    """Tasks waiting in the queue (Redis LLEN); None when the broker is not Redis."""
    url = config.queue.broker
    if not url.startswith(("redis://", "rediss://")):
        return None
    with _client(url) as client:
        return int(client.llen(config.queue.queue_name))


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S
    )


def _server_id(client: redis.Redis | None) -> str | None:
    """The Redis server's run_id: it changes when the server restarts."""
    if client is None:
        return None
    try:
        return str(client.info("server")["run_id"])
    except TRANSIENT:
        return None


@dataclass
class Waited:
    """What run-once got back: finished tasks' summaries, failed tasks' errors, and the
    tasks (id -> source ids) still unfinished when ``[queue] wait_timeout_s`` ran out."""

    summaries: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unfinished: dict[str, list[str]] = field(default_factory=dict)


def wait(app: Celery, config: Config, enqueued: Enqueued) -> Waited:
    """Each task's summary once all have finished (or the wait timeout ran out)."""
    url = config.queue.broker if config.queue.broker.startswith("redis") else None
    client = _client(url) if url else None
    server = _server_id(client)
    pending = dict(enqueued.tasks)
    waited = Waited()
    summaries, errors = waited.summaries, waited.errors
    rebuilt: Celery | None = None
    timeout = config.queue.wait_timeout_s
    started = time.monotonic()
    watch = _WorkerWatch(started, timeout)
    try:
        while pending:
            if timeout and time.monotonic() - started >= timeout:
                waited.unfinished = pending
                break
            watch.check(rebuilt or app, len(pending))
            _collect(rebuilt or app, pending, summaries, errors)
            now = _server_id(client)
            if pending and None not in (now, server) and now != server:
                logger.warning("Redis restarted: sending %d unfinished task(s) again", len(pending))
                try:
                    send(rebuilt or app, config, enqueued, list(pending))
                    server = now
                except BrokerUnavailable as exc:
                    logger.warning("cannot send again yet: %s", exc)
                    if rebuilt is not None:
                        rebuilt.close()
                    rebuilt = make_app(config)  # a fresh result consumer for the next try
            server = server or now
            if pending:
                time.sleep(POLL_SECONDS)  # the result backend is polled: no event to wait on
    finally:
        if client is not None:
            client.close()
        if rebuilt is not None:
            rebuilt.close()
    return waited


class _WorkerWatch:
    """Says so (a warning) when no worker answers while run-once waits, and once more when
    one does again: a cron job waiting for a fleet that is down is not silent."""

    def __init__(self, started: float, timeout: float) -> None:
        first = min(WORKER_CHECK_SECONDS, timeout / 2) if timeout else WORKER_CHECK_SECONDS
        self._next = started + first
        self._missing = False

    def check(self, app: Celery, pending: int) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + WORKER_CHECK_SECONDS
        try:
            alive = bool(answering_workers(app))
        except TRANSIENT:
            return  # the broker is away: the Redis-restart handling above speaks for it
        if not alive and not self._missing:
            logger.warning(
                "%d task(s) waiting and no worker answers: start `citearchive worker`", pending
            )
        elif alive and self._missing:
            logger.warning("a worker answers again: %d task(s) waiting", pending)
        self._missing = not alive


def answering_workers(app: Celery) -> list[str]:
    """The workers that answer a ping within PING_SECONDS (broker errors propagate)."""
    replies = app.control.ping(timeout=PING_SECONDS) or []
    return sorted(name for reply in replies for name in reply)


def _collect(app: Celery, pending: dict, summaries: list[dict], errors: list[str]) -> None:
    """Move the finished tasks out of ``pending``: summaries, or errors of failed ones."""
    for tid in list(pending):
        try:
            result = AsyncResult(tid, app=app)
            state = result.state
            value = result.result if state in ("SUCCESS", "FAILURE") else None
        except TRANSIENT as exc:
            logger.warning("waiting for tasks: %s", exc)
            return
        if state == "SUCCESS":
            summaries.append(value)
            del pending[tid]
        elif state == "FAILURE":
            errors.append(f"task {tid}: {type(value).__name__}: {value}")
            del pending[tid]


def run_once(
    config: Config, *, everything: bool, limit: int | None, wait_for_tasks: bool = True
) -> RunSummary | Enqueued:
    """``run-once`` with a broker: register, enqueue what is due, wait, summarise."""
    check_fleet_store(config)
    check_broker(config)
    citations = [c for path in config.citation_lists for c in load_citation_list(path)]
    app = App.open(config)
    celery = make_app(config)
    try:
        if citations:
            register(app.archive, app.index, citations, app.canonical)
        due = app.due_sources(everything, limit)
        runs = RunLog(app.index)
        run_id = runs.start("run-once", len(due), worker="fleet")
        enqueued = enqueue_sources(celery, config, [s.id for s in due], run_id)
        if not wait_for_tasks:
            runs.finish(run_id, "enqueued", {}, [])
            return enqueued
        waited = wait(celery, config, enqueued)
        summaries, errors = waited.summaries, waited.errors
        summary = _summarise(run_id, len(due), summaries)
        summary.unfinished = sum(len(ids) for ids in waited.unfinished.values())
        errors += [f"{r.url}: {r.error}" for r in summary.results if r.verdict == "error"]
        errors += [e for s in summaries for e in s["errors"]]
        if waited.unfinished:
            errors.append(
                f"{len(waited.unfinished)} task(s) not finished after "
                f"{config.queue.wait_timeout_s:g} s: left queued for the workers"
            )
        status = "failed" if summary.not_stored or errors else "ok"
        status = "unfinished" if waited.unfinished else status
        captures = [r.capture_id for r in summary.results if r.capture_id]
        runs.finish(run_id, status, dict(summary.counts), errors, captures)
        events = events_for_run(app.index, config, summary.results)
        summary.notifications = deliver(app.index, config, events)
        return summary
    finally:
        celery.close()
        app.close()


def _summarise(run_id: str, due: int, summaries: list[dict]) -> RunSummary:
    """One result per source (a duplicate delivery reports the same capture again)."""
    by_source: dict[str, CaptureResult] = {}
    for summary in summaries:
        for r in summary["results"]:
            fields = {k: r[k] for k in ("source_id", "url", "capture_id", "verdict", "reason")}
            by_source.setdefault(r["source_id"], CaptureResult(**fields, error=r.get("error")))
    notes = sorted({s["store_note"] for s in summaries if s.get("store_note")})
    result = RunSummary(run_id, due, list(by_source.values()), interrupted=False)
    result.store_note = "; ".join(notes) or None
    return result
