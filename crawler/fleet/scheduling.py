"""``schedule`` with a broker: each tick enqueues the due sources instead of capturing them."""

from __future__ import annotations

import time

from crawler.app import App
from crawler.config import Config
from crawler.daemon import BatchReport
from crawler.errors import CitearchiveError
from crawler.fleet.app import check_fleet_store, make_app
from crawler.fleet.enqueue import TRANSIENT, check_broker, enqueue_sources, queue_depth
from crawler.sources import load_citation_list, register

TICK_TASKS = 100  # at most this many tasks enqueued by one tick


class FleetEnqueuer:
    """The daemon's batch runner in fleet mode: enqueue the due sources, if the queue is empty.

    A tick while tasks still wait adds nothing: the workers are behind, and sources they
    have not reached yet are still due (they would be enqueued twice).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.app = make_app(config)

    @staticmethod
    def check(config: Config) -> None:
        """UsageError now for a config a fleet cannot use."""
        check_fleet_store(config)
        check_broker(config)

    def __call__(self) -> BatchReport:
        started = time.monotonic()
        try:
            line = self._enqueue()
        except (CitearchiveError, *TRANSIENT) as exc:
            return BatchReport(1, "", time.monotonic() - started, str(exc), more=False)
        return BatchReport(0, line, time.monotonic() - started, more=False)

    def _enqueue(self) -> str:
        waiting = queue_depth(self.config)
        if waiting:
            return f"{waiting} task(s) still queued: nothing enqueued"
        config = self.config
        citations = [c for path in config.citation_lists for c in load_citation_list(path)]
        app = App.open(config)
        try:
            if citations:
                register(app.archive, app.index, citations, app.canonical)
            due = app.due_sources(False, TICK_TASKS * config.queue.batch_size)
        finally:
            app.close()
        return enqueue_sources(self.app, config, [s.id for s in due]).line()
