"""`citearchive schedule`: tick logic with a fake clock and batch runner, then real processes.

The real-process tests prove what an unattended run promises: overlapping runs never
capture twice (the lock), SIGTERM ends the scheduler and a run with exit 0, and no manifest
ever points at a blob that is not stored.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.triggers.interval import IntervalTrigger
from cliutil import Result, run_cli, spawn_cli
from fixture_site import html, respond

from crawler.app import App
from crawler.config import ScheduleConfig, load_config
from crawler.daemon import JOB_ID, BatchReport, ChildBatch, Daemon

# Tick logic: a frozen clock, a fake due count and a fake batch runner.

T0 = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _clock_now() -> None:
    """T0 is "now" when each test starts: the real scheduler under test runs on the wall
    clock, and a T0 taken at import is minutes old late in a long suite (a misfire)."""
    global T0
    T0 = datetime.now(UTC).replace(microsecond=0)


OK = BatchReport(0, "captured 2 of 2 due sources: 2 new", 1.5)


class FakeBatches:
    """Hands out prepared reports and counts the calls."""

    def __init__(self, *reports: BatchReport) -> None:
        self.reports = list(reports)
        self.calls = 0

    def __call__(self) -> BatchReport:
        self.calls += 1
        return self.reports.pop(0) if self.reports else OK


def schedule(**values) -> ScheduleConfig:
    return ScheduleConfig(**{"check_seconds": 3600, "batch_size": 200, **values})


def counts(*values: int):
    remaining = list(values)
    return lambda: remaining.pop(0) if remaining else 0


def run_ticks(daemon: Daemon, ticks: int) -> datetime | None:
    """Run the real scheduler until ``ticks`` jobs have finished; the next tick's time."""
    done = threading.Event()
    seen = []

    def finished(_event) -> None:  # registered after the daemon's own listener: runs after it
        seen.append(1)
        if len(seen) == ticks:
            done.set()

    daemon.scheduler.add_listener(finished, EVENT_JOB_EXECUTED)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert done.wait(30), f"{len(seen)} of {ticks} ticks ran"
        next_tick = daemon.next_tick  # a stopped scheduler no longer lists its jobs
    finally:
        daemon.stop()
        runner.join(30)
    assert not runner.is_alive()
    return next_tick


def test_the_job_is_one_coalescing_interval_tick_in_a_private_memory_store():
    daemon = Daemon(schedule(check_seconds=90, misfire_grace_seconds=300), counts(), FakeBatches())
    job = daemon.scheduler.get_job(JOB_ID)
    assert isinstance(job.trigger, IntervalTrigger)
    assert job.trigger.interval == timedelta(seconds=90)
    assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 300)
    assert daemon.scheduler.timezone == UTC
    other = Daemon(schedule(), counts(), FakeBatches())
    stores = daemon.scheduler._jobstores, other.scheduler._jobstores
    assert isinstance(stores[0]["default"], MemoryJobStore)
    assert stores[0]["default"] is not stores[1]["default"]


def test_nothing_due_runs_no_batch():
    batches = FakeBatches()
    daemon = Daemon(schedule(), counts(0), batches, now=lambda: T0)
    assert run_ticks(daemon, 1) == T0 + timedelta(hours=1)  # the first tick runs at once
    assert batches.calls == 0


def test_due_sources_get_one_batch_and_one_log_line(caplog):
    caplog.set_level("INFO", logger="crawler.daemon")
    batches = FakeBatches()
    daemon = Daemon(schedule(), counts(3), batches, now=lambda: T0)
    assert daemon.tick() is False  # not a full batch: wait for the next tick
    assert batches.calls == 1
    [line] = [r for r in caplog.records if r.getMessage().startswith("batch")]
    assert line.getMessage() == "batch: captured 2 of 2 due sources: 2 new (exit 0, 1.5 s)"
    assert (line.exit_code, line.due, line.seconds) == (0, 3, 1.5)


def test_a_full_batch_brings_the_next_tick_at_once():
    batches = FakeBatches()
    daemon = Daemon(schedule(batch_size=200), counts(450, 250, 50), batches, now=lambda: T0)
    # An hour between ticks: three ticks in this test mean none of them waited.
    assert run_ticks(daemon, 3) == T0 + timedelta(hours=1)  # the last one was not full
    assert batches.calls == 3


def test_lock_held_is_logged_and_retried_at_the_next_tick(caplog):
    caplog.set_level("INFO", logger="crawler.daemon")
    locked = BatchReport(5, "", 0.8, "citearchive: error: x.lock: another run is in progress")
    batches = FakeBatches(locked)
    daemon = Daemon(schedule(), lambda: 500, batches, now=lambda: T0)
    assert run_ticks(daemon, 1) == T0 + timedelta(hours=1)  # full, yet not at once: it waits
    assert batches.calls == 1
    [line] = [r for r in caplog.records if r.getMessage().startswith("batch")]
    assert "another run holds the lock; next try in 3600 s (exit 5" in line.getMessage()
    again = Daemon(schedule(), lambda: 500, batches, now=lambda: T0)
    assert again.tick() is True and batches.calls == 2  # the next tick runs the batch


def test_missed_ticks_coalesce_into_one_run():
    batches = FakeBatches()
    # Ten ticks overdue (a suspended machine, a stalled process), all within the grace time.
    clock = iter([datetime.now(UTC) - timedelta(seconds=600)])
    settings = schedule(check_seconds=60, misfire_grace_seconds=900)
    daemon = Daemon(
        settings, lambda: 5, batches, now=lambda: next(clock, None) or datetime.now(UTC)
    )
    after = datetime.now(UTC)
    next_tick = run_ticks(daemon, 1)  # without coalescing the executor would run every one
    assert batches.calls == 1
    assert next_tick >= after + timedelta(seconds=60)


def test_count_errors_are_logged_and_the_daemon_goes_on(caplog):
    from crawler.errors import StorageError

    def broken() -> int:
        raise StorageError("index sqlite:///x: cannot select due sources: locked")

    daemon = Daemon(schedule(), broken, FakeBatches(), now=lambda: T0)
    assert run_ticks(daemon, 1) == T0 + timedelta(hours=1)
    assert "cannot count due sources" in caplog.text


def test_signals_stop_taking_ticks_forward_sigterm_then_force():
    """serve() in this (main) thread; the fake batch signals the process like systemd would."""
    stops: list[bool] = []
    asked = threading.Event()

    def stop_batch(force: bool) -> None:
        stops.append(force)
        asked.set()

    def batch() -> BatchReport:
        os.kill(os.getpid(), signal.SIGTERM)
        assert asked.wait(10)  # forwarded, not forced
        asked.clear()
        os.kill(os.getpid(), signal.SIGINT)  # a second signal: forced
        assert asked.wait(10)
        return BatchReport(0, "captured 1 of 3 due sources: 1 new (interrupted)", 2.0)

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    calls = []
    daemon = Daemon(
        schedule(batch_size=1), lambda: calls.append(1) or 3, batch, stop_batch=stop_batch
    )
    daemon.serve()  # returns once the batch has ended
    assert stops == [False, True]
    assert len(calls) == 1  # a full batch, but no tick after the stop
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


# The child-process runner.


def fifo_child(tmp_path: Path, on_term: str, name: str = "ready") -> tuple[list[str], Path]:
    """A child that reports, through a FIFO, that its SIGTERM handling is in place."""
    fifo = tmp_path / name
    os.mkfifo(fifo)
    code = (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, {on_term})\n"
        f"open({str(fifo)!r}, 'w').close()\n"
        "time.sleep(120)\n"
    )
    return [sys.executable, "-c", code], fifo


def run_in_thread(batch: ChildBatch) -> tuple[threading.Thread, list[BatchReport]]:
    reports: list[BatchReport] = []
    thread = threading.Thread(target=lambda: reports.append(batch()))
    thread.start()
    return thread, reports


def test_child_batch_forwards_sigterm(tmp_path):
    on_term = "lambda *a: (print('captured 1 of 2 due sources: 1 new'), sys.exit(0))"
    command, fifo = fifo_child(tmp_path, on_term)
    batch = ChildBatch(command, stop_timeout=60)
    thread, reports = run_in_thread(batch)
    open(fifo).close()  # returns once the child's handler is in place
    batch.stop(force=False)
    thread.join(30)
    assert reports[0].code == 0 and reports[0].summary == "captured 1 of 2 due sources: 1 new"
    assert batch().error == "not started: stopping"


def test_child_batch_is_killed_after_the_bound_or_when_forced(tmp_path):
    command, fifo = fifo_child(tmp_path, "signal.SIG_IGN")
    batch = ChildBatch(command, stop_timeout=0.2)
    thread, reports = run_in_thread(batch)
    open(fifo).close()
    batch.stop(force=False)  # ignored by the child: killed when the bound passes
    thread.join(30)
    assert reports[0].code == -signal.SIGKILL

    command, fifo = fifo_child(tmp_path, "signal.SIG_IGN", "ready-again")
    batch = ChildBatch(command, stop_timeout=600)
    thread, reports = run_in_thread(batch)
    open(fifo).close()
    batch.stop(force=True)
    thread.join(30)
    assert reports[0].code == -signal.SIGKILL


def test_child_batch_command(tmp_path):
    from crawler.config import Config

    config = Config.model_validate({"schedule": {"batch_size": 7}, "base_dir": tmp_path})
    batch = ChildBatch.for_config(config, tmp_path / "c.toml")
    assert batch.command == [
        sys.executable,
        "-m",
        "crawler.cli",
        "--config",
        str(tmp_path / "c.toml"),
        "run-once",
        "--limit",
        "7",
    ]
    assert batch.stop_timeout == 30 + 10 + 120


# Real processes against a local site whose pages can be held back.


class GatedSite:
    """Pages /p<n>.html on 127.0.0.1; each page request is announced on ``requested`` and,
    once ``free`` page requests have gone through, held until ``release()``."""

    def __init__(self, pages: int, free: int | None = None) -> None:
        self.paths = [f"/p{n}.html" for n in range(pages)]
        self.requested: queue.Queue[str] = queue.Queue()
        self.free = free
        self._gate = threading.Event()
        self._lock = threading.Lock()
        self._served = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path not in site.paths:  # soft-404 probes, favicons
                    respond(self, 404, "text/html", html("Not found", "<h1>Not found</h1>"), {})
                    return
                with site._lock:
                    site._served += 1
                    held = site.free is None or site._served > site.free
                site.requested.put(path)
                if held:
                    site._gate.wait(120)
                body = html(f"Page {path}", f"<article><h1>Page {path}</h1><p>Text.</p></article>")
                respond(self, 200, "text/html; charset=utf-8", body, {})

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.urls = [f"http://127.0.0.1:{self.server.server_port}{p}" for p in self.paths]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self) -> None:
        self._gate.set()

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gated() -> Iterator[list[GatedSite]]:
    sites: list[GatedSite] = []
    yield sites
    for site in sites:
        site.stop()


def config_file(tmp_path: Path, page_timeout: float = 60, schedule_toml: str = "") -> Path:
    """One page at a time, so a stop leaves pages that never started."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[store]\nurl = "file://{tmp_path / "store"}"\n\n'
        f"[crawl]\nallow_private_networks = true\nconcurrency = 1\nsettle_timeout = 2\n"
        f"page_timeout = {page_timeout}\n\n"
        "[politeness]\nper_host_delay = 0\n\n"
        f"[schedule]\n{schedule_toml}"
    )
    return path


def captures_per_source(config: Path) -> dict[str, int]:
    """Each source's capture count, after proving the archive consistent.

    Every hash chain verifies, every manifest's blobs are stored, and the index lists
    exactly the stored manifests with artifacts whose blobs exist.
    """
    app = App.open(load_config(config))
    try:
        found = {}
        for source in app.index.list_sources():
            app.archive.verify_chain(source.id)
            manifests = list(app.archive.iter_manifests(source.id))
            for stored in manifests:
                for ref in stored.manifest["artifacts"].values():
                    assert app.archive.has_blob(ref["sha256"]), stored.key
            rows = app.index.captures(source.id)
            assert sorted(r.manifest_key for r in rows) == sorted(m.key for m in manifests)
            for row in rows:
                for ref in row.artifacts.values():
                    assert app.archive.has_blob(ref["sha256"]), row.manifest_key
            found[source.canonical_url] = len(rows)
        return found
    finally:
        app.close()


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> Result:
    out, err = proc.communicate(timeout=timeout)
    return Result(proc.returncode, out, err)


@pytest.mark.browser
def test_overlapping_runs_capture_once(tmp_path, gated):
    site = GatedSite(3)  # every page waits: the first run cannot end before the second tries
    gated.append(site)
    config = config_file(tmp_path)
    assert run_cli(config, "add", *site.urls).code == 0
    runs = [spawn_cli(config, "run-once"), spawn_cli(config, "run-once")]
    ended: queue.Queue[tuple[int, Result]] = queue.Queue()
    for n, proc in enumerate(runs):
        threading.Thread(target=lambda n=n, p=proc: ended.put((n, finish(p))), daemon=True).start()
    loser, refused = ended.get(timeout=120)  # exits while the other is still crawling
    site.release()
    winner, done = ended.get(timeout=180)
    assert {loser, winner} == {0, 1}
    assert refused.code == 5, refused.err
    assert refused.err.strip().endswith("another citearchive run is in progress")
    assert refused.out == ""
    assert done.code == 0, done.err
    assert done.out.strip() == "captured 3 of 3 due sources: 3 new"
    assert captures_per_source(config) == dict.fromkeys(site.urls, 1)


class Watched:
    """A process whose stderr is read line by line as it comes: a line is an event."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, needle: str, timeout: float = 120) -> str:
        while (line := self._queue.get(timeout=timeout)) is not None:
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} never came:\n{self.log}")

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def finish(self, timeout: float = 180) -> Result:
        try:
            code = self.proc.wait(timeout)
        finally:
            self.proc.kill()  # only if the test failed: nothing may outlive it
        self._reader.join(timeout)
        return Result(code, self.proc.stdout.read(), self.log)


@pytest.mark.browser
def test_schedule_runs_batches_and_stops_cleanly_on_sigterm(tmp_path, gated):
    # Four pages in batches of two: the first batch goes through, the second one's first
    # page is held, so SIGTERM reaches the daemon while a batch is crawling. The held page
    # times out (the capture in flight is stored as unreachable), the other is left over.
    site = GatedSite(4, free=2)
    gated.append(site)
    config = config_file(
        tmp_path, page_timeout=3, schedule_toml="check_seconds = 1\nbatch_size = 2\n"
    )
    assert run_cli(config, "add", *site.urls).code == 0
    daemon = Watched(spawn_cli(config, "schedule"))
    first = daemon.wait_for("crawler.daemon: batch")
    assert "batch: captured 2 of 2 due sources: 2 new (exit 0," in first
    held = [site.requested.get(timeout=120) for _ in range(3)][-1]
    daemon.proc.send_signal(signal.SIGTERM)
    rest = daemon.finish()
    assert rest.code == 0, rest.err
    assert "SIGTERM: stopping" in rest.err and "scheduler stopped" in rest.err
    assert (
        "batch: captured 1 of 2 due sources: 1 unreachable (interrupted: 1 left for the next run)"
        in rest.err
    )
    assert rest.err.count("crawler.daemon: batch") == 2
    after_stop = captures_per_source(config)
    held_url = next(u for u in site.urls if u.endswith(held))
    assert after_stop[held_url] == 1 and sum(after_stop.values()) == 3

    site.release()
    again = run_cli(config, "run-once")
    assert again.code == 0 and again.out.strip() == "captured 1 of 1 due sources: 1 new"
    assert captures_per_source(config) == dict.fromkeys(site.urls, 1)


@pytest.mark.browser
def test_run_once_stops_on_sigterm_with_exit_0_and_a_consistent_archive(tmp_path, gated):
    site = GatedSite(4)  # every page is held until released
    gated.append(site)
    config = config_file(tmp_path)
    assert run_cli(config, "add", *site.urls).code == 0
    run = Watched(spawn_cli(config, "-v", "run-once"))
    site.requested.get(timeout=120)  # the first page is in flight
    run.proc.send_signal(signal.SIGTERM)
    run.wait_for("Received SIGTERM, shutting down gracefully")
    site.release()  # Scrapy takes no new requests now: only the page in flight ends
    done = run.finish()
    assert done.code == 0, done.err
    assert done.out.strip() == (
        "captured 1 of 4 due sources: 1 new (interrupted: 3 left for the next run)"
    )
    assert sum(captures_per_source(config).values()) == 1

    rerun = run_cli(config, "run-once")
    assert rerun.code == 0 and rerun.out.strip() == "captured 3 of 3 due sources: 3 new"
    assert captures_per_source(config) == dict.fromkeys(site.urls, 1)
    runs = json.loads(run_cli(config, "runs", "--json").out)
    assert [r["status"] for r in runs] == ["ok", "interrupted"]
