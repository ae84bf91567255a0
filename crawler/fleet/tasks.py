"""The fleet's one task, "citearchive.capture_batch": lease, capture in a child, release.

A task carries source ids only. Delivery is at least once (late acks), so each source is
leased in the index before capture (storage/leases.py): a second delivery, or a duplicate
task, skips what another holder has or what was captured since the task was enqueued.
Sources another live worker holds are tried again later (a Celery retry of the task with
those ids only), so a redelivered task never captures twice and never drops a source.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery, Task

from crawler.config import Config, load_config
from crawler.errors import StorageError
from crawler.fleet.app import TASK_NAME
from storage.index import Index
from storage.leases import Leases
from storage.runlog import RunLog

logger = logging.getLogger(__name__)

MAX_RETRIES = 50  # of a task whose sources other workers hold
UNSTORED_RETRIES = 2  # of a task whose captures could not be stored (an outage)
PR_SET_PDEATHSIG = 1


@dataclass
class BatchReport:
    """What one delivery of a task did: the JSON summary it returns."""

    task_id: str
    run_id: str
    worker: str
    results: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # leased by another holder: retried
    interrupted: bool = False
    retry_unstored: bool = False  # try captures that could not be stored once more
    store_note: str | None = None
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "task_id": self.task_id,
            "run_id": self.run_id,
            "worker": self.worker,
            "results": self.results,
            "skipped": self.skipped,
            "interrupted": self.interrupted,
            "store_note": self.store_note,
            "errors": self.errors,
        }


def register_tasks(app: Celery, config_file: Path | None, log_level: str = "WARNING") -> None:
    """Define the capture task on ``app``; it reads ``config_file`` (the worker's config)."""

    @app.task(name=TASK_NAME, bind=True, max_retries=MAX_RETRIES, acks_late=True)
    def capture_batch(
        self: Task,
        source_ids: list[str],
        run_id: str,
        enqueued_at: str,
        carried: list[dict] | None = None,
    ) -> dict:
        config = load_config(config_file)
        report = BatchReport(self.request.id, run_id, self.request.hostname or _hostname())
        report.results = list(carried or [])
        report.retry_unstored = self.request.retries < UNSTORED_RETRIES
        holder = f"{report.worker}/{os.getpid()}/{self.request.id}"
        try:
            _capture_leased(config, config_file, log_level, source_ids, enqueued_at, holder, report)
        except StorageError as exc:  # the index did not answer: try the whole task later
            logger.warning("batch %s: %s; retrying", self.request.id, exc)
            raise self.retry(exc=exc, countdown=_retry_seconds(config)) from exc
        if report.held and self.request.retries < MAX_RETRIES:
            raise self.retry(
                args=(report.held, run_id, enqueued_at),
                kwargs={"carried": report.results},
                countdown=0 if report.interrupted else _retry_seconds(config),
            )
        for sid in report.held:
            report.errors.append(f"{sid}: still leased by another worker; left for a later run")
        return report.summary()


def _retry_seconds(config: Config) -> float:
    return max(1.0, config.queue.lease_seconds / 3)


def _hostname() -> str:
    return f"citearchive@{socket.gethostname()}"


def _capture_leased(
    config: Config,
    config_file: Path | None,
    log_level: str,
    source_ids: list[str],
    enqueued_at: str,
    holder: str,
    report: BatchReport,
) -> None:
    ttl = config.queue.lease_seconds
    with Index(config.index_url) as index:
        leases = Leases(index)
        dead = leases.dead_holders(source_ids)
        taken = leases.take(source_ids, holder, ttl, not_captured_since=enqueued_at)
        for dead_holder, their_sources in dead.items():
            _close_dead_batch(index, dead_holder, their_sources, report.worker)
        for sid in source_ids:
            if sid not in taken:
                _not_taken(index, sid, enqueued_at, report)
        if not taken:
            return
        runs = RunLog(index)
        batch_run = runs.start("batch", len(taken), worker=report.worker, lease_holder=holder)
        before = len(report.results)
        try:
            with _renewing(lambda: leases.renew(taken, holder, ttl), ttl / 3):
                _run_child(config_file, taken, enqueued_at, log_level, report)
        finally:
            with contextlib.suppress(StorageError):  # an unreleased lease expires by itself
                leases.release(taken, holder)
        for record in report.skipped:
            if record["source_id"] in taken and record["why"] == "captured":
                _add_latest(index, record["source_id"], report)
        done = {r["source_id"] for r in report.results} | {s["source_id"] for s in report.skipped}
        left = [sid for sid in taken if sid not in done]
        if report.interrupted:
            report.held += left  # the worker is stopping: another one takes them
        else:
            report.errors += [f"{sid}: the crawl ended without capturing it" for sid in left]
        mine = report.results[before:]
        _record_batch(runs, batch_run, report, mine, bool(left))
        if report.retry_unstored:
            # Not stored (the store or the index failed): leased again by the retry, which
            # records a manifest stored without its index row, or captures it again.
            unstored = [r for r in mine if r["verdict"] == "error" and not r.get("capture_id")]
            report.results = [r for r in report.results if r not in unstored]
            report.held += [r["source_id"] for r in unstored]


def _record_batch(
    runs: RunLog, batch_run: str, report: BatchReport, mine: list[dict], left: bool
) -> None:
    """The batch's run record: its worker, counts, errors and the captures it stored."""
    counts = dict(Counter(r["verdict"] for r in mine))
    errors = [f"{r['url']}: {r['error']}" for r in mine if r["verdict"] == "error"]
    status = "interrupted" if report.interrupted else ("failed" if left or errors else "ok")
    captures = [r["capture_id"] for r in mine if r.get("capture_id")]
    runs.finish(batch_run, status, counts, errors + report.errors, captures)


def _close_dead_batch(index: Index, holder: str, source_ids: list[str], taker: str) -> None:
    """Close the batch of a worker that died holding these leases: killed, with the
    captures it stored before dying (only its lease allowed them since it started)."""
    runs = RunLog(index)
    batch = runs.running_batch(holder)
    if batch is None:
        return  # closed already (by another taker, or by its worker after all)
    mine = [
        capture
        for sid in sorted(source_ids)
        for capture in index.captures(sid)
        if capture.captured_at >= batch.started_at
    ]
    counts = dict(Counter(capture.verdict for capture in mine))
    reason = f"its worker stopped renewing its leases (killed or cut off); {taker} took over"
    runs.finish(batch.id, "killed", counts, [reason], [c.id for c in mine])


def _not_taken(index: Index, sid: str, enqueued_at: str, report: BatchReport) -> None:
    """Why a source was not leased: captured since the task was enqueued, gone, or held."""
    row = index.get_source(sid)
    if row is None or row.removed_at is not None:
        report.skipped.append({"source_id": sid, "why": "not registered"})
    elif row.last_captured_at is not None and row.last_captured_at >= enqueued_at:
        report.skipped.append({"source_id": sid, "why": "captured"})
        _add_latest(index, sid, report)
    else:
        report.held.append(sid)


def _add_latest(index: Index, sid: str, report: BatchReport) -> None:
    """The capture another delivery stored, reported as this task's result for ``sid``."""
    if any(r["source_id"] == sid for r in report.results):
        return  # an earlier attempt of this task reported it already
    row = index.latest_capture(sid)
    source = index.get_source(sid)
    if row is None or source is None:
        return
    report.results.append(
        {
            "source_id": sid,
            "url": source.canonical_url,
            "capture_id": row.id,
            "verdict": row.verdict,
            "reason": row.reason or "",
            "error": row.error,
            "worker": None,  # stored by an earlier delivery
        }
    )


@contextlib.contextmanager
def _renewing(renew: Callable[[], None], every: float):
    """Renew the batch's leases every ``every`` seconds while the crawl runs."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(every):
            try:
                renew()
            except StorageError as exc:  # keep trying: the lease lasts 3 periods
                logger.warning("cannot renew leases: %s", exc)

    thread = threading.Thread(target=loop, name="lease-renewal", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _die_with_parent() -> None:
    """In the crawl child: SIGKILL when the worker dies, so no orphan captures unleased."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _run_child(
    config_file: Path | None,
    source_ids: list[str],
    enqueued_at: str,
    log_level: str,
    report: BatchReport,
) -> None:
    """Capture ``source_ids`` in ``python -m crawler.fleet.batch``; fill ``report``."""
    request = {
        "config": str(config_file) if config_file is not None else None,
        "source_ids": source_ids,
        "enqueued_at": enqueued_at,
        "log_level": log_level,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.fleet.batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent,  # only a prctl call: safe in a threaded parent
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(request))
    proc.stdin.close()
    finished = False
    for line in proc.stdout:
        finished |= _read_line(line, report)
    code = proc.wait()
    if not finished:
        report.errors.append(f"crawl process ended with exit code {code} before finishing")
    elif code != 0:
        report.errors.append(f"crawl process exit code {code}")


def _read_line(line: str, report: BatchReport) -> bool:
    """One line from the crawl child into ``report``; True for the closing line."""
    try:
        record = json.loads(line)
    except ValueError:
        return False  # not ours (a library printed to stdout)
    if "result" in record:
        report.results.append({**record["result"], "worker": report.worker})
    elif "skipped" in record:
        report.skipped.append({"source_id": record["skipped"], "why": record["why"]})
    elif "error" in record:
        report.errors.append(record["error"])
    elif "done" in record:
        report.interrupted = bool(record["done"]["interrupted"])
        report.store_note = record["done"]["store_note"]
        return True
    return False
