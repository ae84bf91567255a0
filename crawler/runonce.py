"""One unattended run: register the configured lists, capture what is due, log the run.

Used by ``citearchive run-once`` (cron, systemd timers) and, one process per batch, by
``citearchive schedule``. The run lock makes an overlapping run fail at once instead of
capturing a source twice.
"""

from __future__ import annotations

import signal
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from crawler.app import App
from crawler.config import Config
from crawler.notify import DeliveryReport, deliver, events_for_run
from crawler.pipelines import CaptureResult
from crawler.reconcile import record_unindexed
from crawler.sources import load_citation_list, register
from storage.runlog import RunLog
from storage.spool import begin_run, end_run

VERDICT_ORDER = ("new", "changed", "unchanged", "moved", "gone", "restored", "unreachable", "error")


@dataclass
class RunSummary:
    run_id: str
    due: int
    results: list[CaptureResult]
    interrupted: bool
    notifications: DeliveryReport | None = None
    store_note: str | None = None  # an outage of the store: downtime, captures spooled
    # Fleet mode: sources whose tasks had not finished when run-once stopped waiting.
    unfinished: int = 0

    @property
    def counts(self) -> Counter[str]:
        return Counter(r.verdict for r in self.results)

    @property
    def not_stored(self) -> int:
        """Captures lost to a storage failure (an interruption is not a failure)."""
        missing = 0 if self.interrupted else self.due - len(self.results) - self.unfinished
        return missing + self.counts["error"]

    def line(self) -> str:
        counts = self.counts
        parts = [f"{counts[v]} {v}" for v in VERDICT_ORDER if counts[v]]
        text = f"captured {len(self.results)} of {self.due} due sources"
        if parts:
            text += ": " + ", ".join(parts)
        if self.interrupted:
            text += f" (interrupted: {self.due - len(self.results)} left for the next run)"
        if self.unfinished:
            text += f" ({self.unfinished} still queued for the workers: not waited for)"
        problem = self.notifications and self.notifications.problem()
        if problem:
            text += f"; {problem}"
        if self.store_note:
            text += f"; {self.store_note}"
        return text


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Until the crawl installs its own handlers, SIGTERM/SIGINT only ask the run to stop.

    A run stopped before its crawl starts then ends cleanly as "interrupted" (logged, exit
    0) instead of dying mid-setup; once Scrapy runs, its handlers finish the captures in
    flight.
    """

    def ask(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, ask) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def execute(
    config: Config, *, everything: bool, limit: int | None, log_level: str, kind: str = "run-once"
) -> RunSummary:
    """Run once under the lock; LockedError if another run holds it."""
    from crawler.progress import run_with_progress  # Scrapy/Playwright only when crawling

    citations = [c for path in config.citation_lists for c in load_citation_list(path)]
    stop = threading.Event()
    app = App.open(config)
    try:
        with app.run_lock(), _stop_on_signals(stop):
            begin_run(app.archive, app.index, [])  # earlier runs' spool first: it is older
            if citations:
                register(app.archive, app.index, citations, app.canonical)
            due = app.due_sources(everything, limit)
            begin_run(app.archive, app.index, [s.id for s in due])
            if record_unindexed(app.archive, app.index, [s.id for s in due]):
                due = app.due_sources(everything, limit)  # some were captured after all
            runs = RunLog(app.index)
            runs.close_abandoned()  # under the lock: a run still "running" was killed
            run_id = runs.start(kind, len(due))
            try:
                outcome = run_with_progress(config, due, log_level, stop)
            except BaseException as exc:
                runs.finish(run_id, "failed", {}, [f"{type(exc).__name__}: {exc}"])
                raise
            summary = RunSummary(run_id, len(due), outcome.results, outcome.interrupted)
            summary.store_note = end_run(app.archive)
            errors = [f"{r.url}: {r.error}" for r in outcome.results if r.verdict == "error"]
            errors += [f"store: {summary.store_note}"] if summary.store_note else []
            status = (
                "interrupted" if summary.interrupted else ("failed" if summary.not_stored else "ok")
            )
            runs.finish(run_id, status, dict(summary.counts), errors)
            # Under the lock, so two runs never send the same pending notification.
            events = events_for_run(app.index, config, summary.results)
            summary.notifications = deliver(app.index, config, events)
            return summary
    finally:
        app.close()
