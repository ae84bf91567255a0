"""``citearchive schedule``: capture due sources unattended, one crawl process per batch.

An APScheduler 3.x BlockingScheduler (UTC) runs one job, ``tick``, from an in-memory job
store of its own (a job store is never shared between schedulers). A tick asks the index
how many sources are due and, if any are, runs one batch as a child ``citearchive run-once
--limit N``: the Twisted reactor cannot restart in one process, a browser leak dies with
its process, and each batch gets one Chromium. The run lock makes a batch exit 5 at once
while another run (cron, a second daemon) holds it; the daemon then waits for its next tick.

SIGTERM or SIGINT stops new ticks and forwards SIGTERM to a running batch, whose crawl
stores the captures in flight and exits; a second signal, or a batch that outlives the
bound, is killed at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil
from pathlib import Path

import click
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_SCHEDULER_STARTED,
    JobExecutionEvent,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from crawler.app import App
from crawler.config import DEFAULT_CONFIG_NAMES, Config, ScheduleConfig, load_config
from crawler.errors import CitearchiveError, LockedError
from crawler.sources import load_citation_list
from storage.ids import source_id

logger = logging.getLogger(__name__)

JOB_ID = "tick"
EXIT_LOCKED = LockedError.exit_code
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# On top of the page and settle timeouts: storing the captures in flight, closing Chromium.
STOP_GRACE_SECONDS = 120.0
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class BatchReport:
    """How one batch ended: exit code (negative: killed by that signal), output, duration."""

    code: int
    summary: str  # the run's summary line from stdout
    seconds: float
    error: str = ""  # the last line on stderr (the one-line error of a failed run)
    more: bool | None = None  # set by a fleet enqueuer: tick again at once (None: by due)


def pending_sources(config: Config) -> int:
    """Sources due now, plus entries of the configured citation lists not registered yet.

    ``run-once`` registers the lists when it starts; without counting their new entries a
    daemon with nothing else due would never start the batch that registers them.
    """
    citations = [c for path in config.citation_lists for c in load_citation_list(path)]
    app = App.open(config)
    try:
        unregistered = set()
        for citation in citations:
            sid = source_id(app.canonical(citation.url))
            row = app.index.get_source(sid)
            if row is None or row.removed_at is not None:  # registering brings it back
                unregistered.add(sid)
        return app.count_due() + len(unregistered)
    finally:
        app.close()


class ChildBatch:
    """Runs each batch as a child process; ``stop`` forwards SIGTERM, then kills after a bound."""

    def __init__(self, command: list[str], stop_timeout: float) -> None:
        self.command = command
        self.stop_timeout = stop_timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._stopping = False
        self._killer: threading.Timer | None = None

    @classmethod
    def for_config(cls, config: Config, config_file: Path | None) -> ChildBatch:
        command = [sys.executable, "-m", "crawler.cli"]
        if config_file is not None:
            command += ["--config", str(config_file)]
        command += ["run-once", "--limit", str(config.schedule.batch_size)]
        bound = config.crawl.page_timeout + config.crawl.settle_timeout + STOP_GRACE_SECONDS
        return cls(command, bound)

    def __call__(self) -> BatchReport:
        started = time.monotonic()
        with self._lock:
            if self._stopping:
                return BatchReport(-signal.SIGTERM, "", 0.0, "not started: stopping")
            # A session of its own: a terminal's Ctrl-C reaches the daemon alone, which
            # forwards SIGTERM to the crawl only (Chromium must live to finish its pages).
            self._proc = proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        try:
            out, err = proc.communicate()
        finally:
            with self._lock:
                if self._killer is not None:
                    self._killer.cancel()
                    self._killer = None
                self._proc = None
        seconds = time.monotonic() - started
        return BatchReport(proc.returncode, _last_line(out), seconds, _last_line(err))

    def stop(self, force: bool) -> None:
        """Start no more batches; SIGTERM the running one (SIGKILL if ``force``)."""
        with self._lock:
            self._stopping = True
            proc = self._proc
            if proc is None:
                return
            if not force and self._killer is None:
                proc.send_signal(signal.SIGTERM)
                self._killer = threading.Timer(self.stop_timeout, self._kill, [proc])
                self._killer.daemon = True
                self._killer.start()
                return
        self._kill(proc)

    def _kill(self, proc: subprocess.Popen[str]) -> None:
        with self._lock:
            if self._proc is not proc or proc.returncode is not None:
                return
            logger.warning("killing batch process %d", proc.pid, extra={"pid": proc.pid})
            # The whole group: the crawl and its Playwright driver.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def _signame(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


class Daemon:
    """The scheduler loop; the clock, the due count and the batch runner are injectable."""

    def __init__(
        self,
        schedule: ScheduleConfig,
        count_due: Callable[[], int],
        run_batch: Callable[[], BatchReport],
        *,
        stop_batch: Callable[[bool], None] = lambda force: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.schedule = schedule
        self.count_due = count_due
        self.run_batch = run_batch
        self.stop_batch = stop_batch
        self.now = now
        self._lock = threading.Lock()
        self._stopping = False
        self._idle = threading.Event()
        self._idle.set()
        self.scheduler = BlockingScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(1)},
            timezone=UTC,
        )
        self.scheduler.add_job(
            self._job,
            IntervalTrigger(seconds=schedule.check_seconds, timezone=UTC),
            id=JOB_ID,
            name=JOB_ID,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=ceil(schedule.misfire_grace_seconds),
            next_run_time=now(),
        )
        self.scheduler.add_listener(self._after_job, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self.scheduler.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)

    @property
    def next_tick(self) -> datetime | None:
        job = self.scheduler.get_job(JOB_ID)
        return job.next_run_time if job is not None else None

    def tick(self) -> bool:
        """Look at the index, run at most one batch; True when more is due right away."""
        with self._lock:
            if self._stopping:
                return False
            self._idle.clear()
        try:
            return self._tick()
        finally:
            self._idle.set()

    def _tick(self) -> bool:
        try:
            due = self.count_due()
        except (CitearchiveError, OSError) as exc:
            logger.error("cannot count due sources: %s", exc, extra={"error": str(exc)})
            return False
        if due == 0:
            logger.debug("nothing due", extra={"due": 0})
            return False
        report = self.run_batch()
        self._log_batch(due, report)
        if report.more is not None:
            return report.more and not self._stopping
        return report.code == 0 and due > self.schedule.batch_size and not self._stopping

    def _log_batch(self, due: int, report: BatchReport) -> None:
        extra = {"due": due, "exit_code": report.code, "seconds": round(report.seconds, 1)}
        extra["summary"] = report.summary
        end = f"exit {report.code}" if report.code >= 0 else "killed by " + _signame(-report.code)
        how = f"{end}, {report.seconds:.1f} s"
        if report.code == 0:
            logger.info("batch: %s (%s)", report.summary, how, extra=extra)
        elif report.code == EXIT_LOCKED:
            logger.info(
                "batch not run: another run holds the lock; next try in %g s (%s)",
                self.schedule.check_seconds,
                how,
                extra=extra,
            )
        else:
            text = "; ".join(t for t in (report.summary, report.error) if t) or "no output"
            level = logging.INFO if self._stopping and report.code < 0 else logging.ERROR
            logger.log(level, "batch failed: %s (%s)", text, how, extra=extra)

    def _job(self) -> bool:
        # Unscheduled while it runs: a tick skipped for max_instances during a long batch
        # would only log a warning every check_seconds.
        with contextlib.suppress(JobLookupError):
            self.scheduler.pause_job(JOB_ID)
        return self.tick()

    def _after_job(self, event: JobExecutionEvent) -> None:
        # Listeners run after the executor has counted the job as finished, so a tick
        # scheduled for now is not skipped as a second running instance.
        if event.job_id != JOB_ID or self._stopping:
            return
        more = event.code == EVENT_JOB_EXECUTED and event.retval is True
        wait = timedelta(seconds=0 if more else self.schedule.check_seconds)
        with contextlib.suppress(JobLookupError):
            self.scheduler.modify_job(JOB_ID, next_run_time=self.now() + wait)

    def _on_started(self, _event: SchedulerEvent) -> None:
        if self._stopping:  # stop() came before the scheduler was running
            self._shutdown()

    def _shutdown(self) -> None:
        with contextlib.suppress(SchedulerNotRunningError):
            self.scheduler.shutdown(wait=False)

    def run(self) -> None:
        """Tick until stop(); returns once a running batch has ended."""
        logger.info(
            "scheduler started: looking for due sources every %g s, batches of %d",
            self.schedule.check_seconds,
            self.schedule.batch_size,
            extra={"check_seconds": self.schedule.check_seconds},
        )
        self.scheduler.start()  # blocks until _shutdown()
        self._idle.wait()
        logger.info("scheduler stopped")

    def stop(self, force: bool = False, why: str = "asked") -> None:
        """No new ticks; a running batch gets SIGTERM, or SIGKILL if forced or asked twice."""
        with self._lock:
            again, self._stopping = self._stopping, True
        force = force or again
        logger.log(
            logging.WARNING if force else logging.INFO,
            "%s: stopping %s a running batch store its captures in flight",
            why,
            "now, without letting" if force else "after letting",
            extra={"why": why, "force": force},
        )
        if not again:
            self._shutdown()
        self.stop_batch(force)

    def serve(self) -> None:
        """run() with SIGTERM and SIGINT wired to stop(); a second signal forces it."""
        read_fd, write_fd = os.pipe()

        def on_signal(signum: int, _frame: object) -> None:
            # Only a byte: stopping takes locks, which the interrupted code may hold.
            os.write(write_fd, bytes([signum]))

        previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
        watcher = threading.Thread(target=self._watch, args=(read_fd,), daemon=True)
        watcher.start()
        try:
            self.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(write_fd)
            watcher.join()
            os.close(read_fd)

    def _watch(self, fd: int) -> None:
        while data := os.read(fd, 1):
            self.stop(why=_signame(data[0]))


def _config_file(given: str | None) -> Path | None:
    """The config file a child run must read: the given one or the default that exists."""
    if given is not None:
        return Path(given).resolve()
    found = next((Path(n) for n in DEFAULT_CONFIG_NAMES if Path(n).is_file()), None)
    return found.resolve() if found is not None else None


@click.command("schedule")
@click.pass_context
def schedule_cmd(ctx: click.Context) -> None:
    """Run the scheduler in the foreground: due sources are captured batch by batch."""
    config_file = _config_file(ctx.obj["config_path"])
    config = load_config(config_file)
    if config.queue.broker:  # a fleet: each tick enqueues, the workers capture
        from crawler.fleet.guard import scheduler_guard
        from crawler.fleet.scheduling import FleetEnqueuer

        FleetEnqueuer.check(config)
        pending_sources(config)
        with scheduler_guard(config):  # a second scheduler of this fleet exits 5
            enqueue = FleetEnqueuer(config)
            _serve(
                Daemon(config.schedule, lambda: pending_sources(config), enqueue),
                ctx.obj["log_level"],
            )
        return
    pending_sources(config)  # a bad store, index or citation list fails now, not every tick
    batch = ChildBatch.for_config(config, config_file)
    daemon = Daemon(config.schedule, lambda: pending_sources(config), batch, stop_batch=batch.stop)
    _serve(daemon, ctx.obj["log_level"])


def _serve(daemon: Daemon, log_level: str) -> None:
    # The batch lines are this command's output: INFO on stderr even without -v.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    level = min(logging.INFO, logging.getLevelName(log_level))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        daemon.serve()
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
