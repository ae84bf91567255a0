"""Fleet mode end to end: `citearchive worker`s over a real redis-server, PostgreSQL 15 and
moto's S3 server, real Chromium, a loopback site; run-once enqueues and waits.

Each worker is a `citearchive worker` process in a session of its own, with its own
working directory, HOME and config copy (relative paths such as the spool resolve there):
they share only the network. Short leases (10 s) and small batches keep the suite short.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from cliutil import run_cli, write_config
from procgroups import stop_groups
from redisserver import free_port

from crawler.config import load_config
from crawler.fleet.app import TASK_NAME, make_app
from storage.index import Index
from storage.leases import Leases
from storage.runlog import RunLog

pytestmark = pytest.mark.browser

WAIT_S = 300  # bound on any one wait: a hung fleet fails the test instead of hanging it


class Site:
    """A loopback site of numbered pages; a gated page holds its answer until released."""

    def __init__(self, pages: int, gated: str | None = None) -> None:
        self.paths = [f"/p{n}.html" for n in range(pages)]
        self.hits: Counter[str] = Counter()
        self.arrivals: list[float] = []  # monotonic time of each request: the site's own log
        self.order: list[str] = []
        self.gated = gated
        self.arrived = threading.Event()  # the gated page was asked for
        self.release = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                site.arrivals.append(time.monotonic())
                site.order.append(path)
                site.hits[path] += 1
                if path == site.gated:
                    site.arrived.set()
                    site.release.wait(WAIT_S)
                body, status = site.body(path)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the browser that asked was killed

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def body(self, path: str) -> tuple[bytes, int]:
        n = int(path.removeprefix("/p").removesuffix(".html")) if path in self.paths else -1
        if n < 0 or n % 12 == 11:  # some cited pages are gone
            return b"<!DOCTYPE html><title>Not found</title><h1>Not found</h1>", 404
        text = f"Page {n}: the council voted {n * 7} to {n % 5} on item {n * 13}."
        return (
            f"<!DOCTYPE html><title>Page {n}</title><article><p>{text}</p></article>"
        ).encode(), 200

    def urls(self) -> list[str]:
        return [self.base + p for p in self.paths]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Fleet:
    """Workers started as `citearchive worker` subprocesses, each in its own folder."""

    root: Path
    config_text: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def config(self, name: str) -> Path:
        home = self.root / name
        (home / "home").mkdir(parents=True, exist_ok=True)
        path = home / "citearchive.toml"
        path.write_text(self.config_text)
        return path

    def start(self, name: str) -> None:
        config, home = self.config(name), self.root / name
        command = [sys.executable, "-m", "crawler.cli", "--config", str(config), "worker"]
        self.procs[name] = subprocess.Popen(
            [*command, "--hostname", f"{name}@%h"],
            cwd=home,
            env={**os.environ, "HOME": str(home / "home"), "PYTHONPATH": _pythonpath()},
            stdin=subprocess.DEVNULL,
            stdout=(home / "worker.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group: kill -9 takes the crawl with it
        )

    def kill(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs.pop(name).wait(30)

    def stop(self) -> None:
        killed = stop_groups(self.procs.values())
        names = [name for name, proc in self.procs.items() if proc in killed]
        if names:
            pytest.fail(f"worker(s) {', '.join(names)} did not stop on SIGTERM")

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.parent.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.root.glob("*/worker.log"))
        )


def _pythonpath() -> str:
    root = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])


def fleet_config(tmp_path: Path, bucket: str, index_url: str, redis_url: str) -> str:
    queue = f'\n[queue]\nbroker = "{redis_url}"\nbatch_size = 5\nlease_seconds = 10\n'
    index = f'\n[index]\nurl = "{index_url}"\n'
    path = write_config(tmp_path / "c.toml", f"s3://{bucket}/archive", extra=queue + index)
    return path.read_text()


@pytest.fixture
def fleet(tmp_path: Path, s3_bucket: str, pg_index_url: str, redis_url: str) -> Iterator[Fleet]:
    text = fleet_config(tmp_path, s3_bucket, pg_index_url, redis_url)
    fleet = Fleet(tmp_path / "fleet", text)
    try:
        yield fleet
    finally:
        fleet.stop()


def spawn(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=config.parent,
    )


def finish(proc: subprocess.Popen[str], fleet: Fleet) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"run-once did not finish: {out}\n{err}\n{fleet.logs()}")
    return proc.returncode, out, err


def captures_by_url(index_url: str) -> dict[str, list]:
    with Index(index_url) as index:
        return {s.canonical_url: index.captures(s.id) for s in index.list_sources()}


def assert_exactly_once(index_url: str, urls: list[str], fleet: Fleet) -> dict[str, str]:
    """Every URL captured once; its verdict, by URL."""
    found = captures_by_url(index_url)
    counts = {url: len(found.get(url, [])) for url in urls}
    assert all(n == 1 for n in counts.values()), (
        {u: n for u, n in counts.items() if n != 1},
        fleet.logs(),
    )
    return {url: found[url][0].verdict for url in urls}


def assert_store_whole(config: Path) -> str:
    """`citearchive verify`: every manifest's blobs present, every hash chain whole."""
    res = run_cli(config, "verify")
    assert res.code == 0, (res.out, res.err)
    return res.out


def no_stuck_leases(index_url: str) -> None:
    with Index(index_url) as index:
        leases = Leases(index)
        assert leases.live_count() == 0
        assert leases.expired() == []


def test_three_workers_capture_each_page_once_with_single_process_verdicts(
    fleet: Fleet, tmp_path: Path, pg_index_url: str
) -> None:
    site = Site(60)
    # Three tasks of 20: a crawl process (and a Chromium) per task costs seconds each.
    fleet.config_text = fleet.config_text.replace("batch_size = 5", "batch_size = 20")
    try:
        for name in ("w1", "w2", "w3"):
            fleet.start(name)  # they start while the reference runs
        # The reference: the same pages captured by one process, no broker.
        alone = write_config(tmp_path / "alone.toml", (tmp_path / "alone-store").as_uri())
        assert run_cli(alone, "add", *site.urls()).code == 0
        res = run_cli(alone, "run-once", "--all")
        assert res.code == 0, res.err
        reference = {
            url: caps[0].verdict
            for url, caps in captures_by_url(load_config(alone).index_url).items()
        }
        control = fleet.config("control")
        assert run_cli(control, "add", *site.urls()).code == 0
        code, out, err = finish(spawn(control, "run-once", "--all"), fleet)
        assert code == 0, (out, err, fleet.logs())
        assert "captured 60 of 60 due sources" in out
        verdicts = assert_exactly_once(pg_index_url, site.urls(), fleet)
        assert verdicts == reference
        assert Counter(verdicts.values()) == Counter({"new": 55, "gone": 5})
        assert all(site.hits[p] >= 1 for p in site.paths)
        # runs: a batch record per task, naming its worker and its captures.
        runs = json.loads(run_cli(control, "runs", "--json", "--limit", "100").out)
        batches = [r for r in runs if r["kind"] == "batch"]
        captured = [c for r in batches for c in r["captures"]]
        assert sorted(captured) == sorted(
            c.id for caps in captures_by_url(pg_index_url).values() for c in caps
        )
        assert {r["worker"].split("@")[0] for r in batches} <= {"w1", "w2", "w3"}
        assert len({r["worker"] for r in batches}) >= 2  # the work was shared
        status = json.loads(run_cli(control, "status", "--json").out)
        assert len(status["sources"]) == 60
        assert status["fleet"]["queue_depth"] == 0
        assert status["fleet"]["leased"] == 0
        assert sorted(w.split("@")[0] for w in status["fleet"]["workers"]) == ["w1", "w2", "w3"]
        no_stuck_leases(pg_index_url)
    finally:
        site.stop()


def test_kill_9_mid_batch_loses_nothing_and_doubles_nothing(
    fleet: Fleet, pg_index_url: str
) -> None:
    site = Site(10, gated="/p3.html")
    try:
        control = fleet.config("control")
        assert run_cli(control, "add", *site.urls()).code == 0
        fleet.start("w1")
        run = spawn(control, "run-once", "--all")
        assert site.arrived.wait(WAIT_S), fleet.logs()  # w1 is in the middle of a batch
        fleet.start("w2")
        fleet.kill("w1")
        site.release.set()
        code, out, err = finish(run, fleet)
        assert code == 0, (out, err, fleet.logs())
        assert "captured 10 of 10 due sources" in out
        assert_exactly_once(pg_index_url, site.urls(), fleet)
        assert "10 sources, 10 manifests" in assert_store_whole(control)
        no_stuck_leases(pg_index_url)
        # w1's batch was closed as killed by the worker that took its sources over; every
        # capture is named by exactly one batch record, w1's pre-death ones by w1's.
        runs = json.loads(run_cli(control, "runs", "--json").out)
        batches = [r for r in runs if r["kind"] == "batch"]
        assert not [r for r in runs if r["status"] == "running"], runs
        killed = [r for r in batches if r["worker"].startswith("w1@")]
        assert [r["status"] for r in killed] == ["killed"], batches
        assert "w2@" in killed[0]["errors"][0]
        named = sorted(c for r in batches for c in r["captures"])
        assert named == sorted(
            c.id for caps in captures_by_url(pg_index_url).values() for c in caps
        )
    finally:
        site.stop()


def test_redis_and_postgresql_restarted_mid_run(
    fleet: Fleet, pg_index_url: str, redis_server, pg_server
) -> None:
    site = Site(11, gated="/p2.html")  # tasks of 5, 5, 1
    try:
        control = fleet.config("control")
        assert run_cli(control, "add", *site.urls()).code == 0
        fleet.start("w1")
        fleet.start("w2")
        run = spawn(control, "run-once", "--all")
        assert site.arrived.wait(WAIT_S), fleet.logs()
        redis_server.restart()  # queued tasks and results are gone with it
        pg_server.restart()
        site.release.set()
        code, out, err = finish(run, fleet)
        assert code == 0, (out, err, fleet.logs())
        assert "captured 11 of 11 due sources" in out
        assert "Redis restarted: sending" in err  # the queued task was lost, and sent again
        assert_exactly_once(pg_index_url, site.urls(), fleet)
        no_stuck_leases(pg_index_url)
    finally:
        site.stop()


def test_two_deliveries_of_one_source_at_once_capture_it_once(
    fleet: Fleet, pg_index_url: str
) -> None:
    site = Site(1, gated="/p0.html")
    try:
        control = fleet.config("control")
        assert run_cli(control, "add", *site.urls()).code == 0
        [source] = json.loads(run_cli(control, "status", "--json").out)["sources"]
        config = load_config(control)
        app = make_app(config)
        fleet.start("w1")
        fleet.start("w2")
        sent = [
            app.send_task(TASK_NAME, args=([source["id"]], "r1", "2000-01-01T00:00:00.000000Z"))
            for _ in range(2)
        ]
        assert site.arrived.wait(WAIT_S), fleet.logs()
        # Mid-capture: status sees the source leased, and both workers alive.
        mid = json.loads(run_cli(control, "status", "--json").out)["fleet"]
        site.release.set()
        results = [r.get(timeout=WAIT_S) for r in sent]
        assert mid["leased"] == 1
        assert sorted(w.split("@")[0] for w in mid["workers"]) == ["w1", "w2"]
        app.close()
        assert_exactly_once(pg_index_url, site.urls(), fleet)
        assert site.hits["/p0.html"] == 1
        [capture] = captures_by_url(pg_index_url)[site.urls()[0]]
        # Both report the one capture (a delivery that finds it stored reports it too).
        assert [r["results"][0]["capture_id"] for r in results] == [capture.id, capture.id]
        runs = json.loads(run_cli(control, "runs", "--json").out)
        [batch] = [r for r in runs if capture.id in (r["captures"] or [])]
        assert batch["worker"].split("@")[0] in ("w1", "w2")
        no_stuck_leases(pg_index_url)
    finally:
        site.stop()


def test_workers_hold_one_per_host_delay_together(fleet: Fleet, pg_index_url: str) -> None:
    """Two workers crawl one host at once; the host's own log shows the fleet's delay
    between any two requests (each worker alone would only space its own)."""
    delay = 0.6
    site = Site(8)
    fleet.config_text = fleet.config_text.replace("batch_size = 5", "batch_size = 4").replace(
        "per_host_delay = 0\nper_host_concurrency = 8",
        f"per_host_delay = {delay}\nper_host_concurrency = 1",
    )
    try:
        fleet.start("w1")
        fleet.start("w2")
        control = fleet.config("control")
        assert run_cli(control, "add", *site.urls()).code == 0
        code, out, err = finish(spawn(control, "run-once", "--all"), fleet)
        assert code == 0, (out, err, fleet.logs())
        assert_exactly_once(pg_index_url, site.urls(), fleet)
        runs = json.loads(run_cli(control, "runs", "--json").out)
        assert len({r["worker"] for r in runs if r["kind"] == "batch"}) == 2  # both crawled
        # Page navigations: the requests politeness governs (Chromium's favicon fetch and
        # the soft-404 probe are not Scrapy requests).
        pages = [t for t, p in zip(site.arrivals, site.order, strict=True) if p in site.paths]
        gaps = [b - a for a, b in itertools.pairwise(pages)]
        assert len(pages) == 8
        # 0.1 s for what happens between the claim and the request reaching the site (the
        # browser starting its navigation), not for our code.
        assert min(gaps) >= delay - 0.1, sorted(gaps)
    finally:
        site.stop()


@pytest.mark.parametrize("command", [["worker"], ["run-once"], ["schedule"]])
def test_a_local_store_is_refused_with_a_broker(tmp_path: Path, command: list[str]) -> None:
    queue = '\n[queue]\nbroker = "redis://127.0.0.1:1/0"\n'
    config = write_config(tmp_path / "c.toml", (tmp_path / "store").as_uri(), extra=queue)
    res = run_cli(config, *command)
    assert res.code == 2
    [line] = res.err.strip().splitlines()
    assert "file: store" in line and "[store] shared = true" in line
    assert not (tmp_path / "store").exists()  # nothing written


def test_status_without_a_broker_loads_no_celery(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", (tmp_path / "store").as_uri())
    code = (
        "import sys; from crawler.cli import main; "
        f"rc = main(['--config', {str(config)!r}, 'status']); "
        "assert 'celery' not in sys.modules and 'redis' not in sys.modules; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "fleet" not in proc.stdout
    res = run_cli(config, "run-once", "--no-wait")  # nothing to enqueue for
    assert res.code == 2 and "--no-wait" in res.err and "[queue] broker" in res.err


def test_schedule_with_a_broker_enqueues_due_sources_as_tasks(fleet: Fleet, redis_server) -> None:
    control = fleet.config("control")
    urls = [f"http://127.0.0.1:9/p{n}.html" for n in range(7)]
    assert run_cli(control, "add", *urls).code == 0
    ids = {s["id"] for s in json.loads(run_cli(control, "status", "--json").out)["sources"]}
    daemon = spawn(control, "schedule")
    try:
        # A blocking pop outlasts the fixture client's 5 s socket timeout: a client of its own.
        with redis.Redis.from_url(redis_server.url, socket_timeout=WAIT_S) as client:
            tasks = []
            for _ in range(2):  # batches of 5: two tasks
                popped = client.blpop(["citearchive"], timeout=WAIT_S)
                assert popped is not None, daemon.stderr
                message = json.loads(popped[1])
                assert message["headers"]["task"] == TASK_NAME
                args = json.loads(base64.b64decode(message["body"]))[0]
                tasks.append(args[0])
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert sorted(len(t) for t in tasks) == [2, 5]
    assert {sid for t in tasks for sid in t} == ids
    assert "enqueued 7 due sources in 2 tasks" in err


def test_sigterm_lets_the_worker_finish_its_batch(fleet: Fleet, pg_index_url: str) -> None:
    site = Site(3, gated="/p1.html")
    try:
        control = fleet.config("control")
        assert run_cli(control, "add", *site.urls()).code == 0
        fleet.start("w1")
        run = spawn(control, "run-once", "--all")
        assert site.arrived.wait(WAIT_S), fleet.logs()
        worker = fleet.procs["w1"]
        worker.send_signal(signal.SIGTERM)  # the worker alone, as `kill PID` does
        site.release.set()
        assert worker.wait(WAIT_S) == 0, fleet.logs()  # warm: after its batch, not during
        code, out, err = finish(run, fleet)
        assert code == 0, (out, err, fleet.logs())
        assert "captured 3 of 3 due sources: 3 new" in out
        assert_exactly_once(pg_index_url, site.urls(), fleet)
        no_stuck_leases(pg_index_url)
    finally:
        site.stop()


def test_run_once_no_wait_only_enqueues(fleet: Fleet, redis_server) -> None:
    control = fleet.config("control")
    urls = [f"http://127.0.0.1:9/p{n}.html" for n in range(12)]
    assert run_cli(control, "add", *urls).code == 0
    res = run_cli(control, "run-once", "--no-wait")
    assert res.code == 0, res.err
    assert res.out.startswith("enqueued 12 due sources in 3 tasks (run ")
    with redis_server.client() as client:
        assert client.llen("citearchive") == 3
    runs = json.loads(run_cli(control, "runs", "--json").out)
    assert [(r["kind"], r["status"], r["due"]) for r in runs] == [("run-once", "enqueued", 12)]
    assert captures_by_url(load_config(control).index_url) == {u: [] for u in urls}


@pytest.mark.parametrize("command", [["run-once"], ["schedule"]])
def test_a_broker_that_does_not_answer_is_one_line_and_exit_4(
    tmp_path: Path, command: list[str]
) -> None:
    broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    queue = f'\n[queue]\nbroker = "{broker}"\n'
    config = write_config(tmp_path / "c.toml", "s3://bucket/archive", extra=queue)
    res = run_cli(config, *command, timeout=60)
    assert res.code == 4, res.err
    [line] = res.err.strip().splitlines()
    assert line.startswith(f"citearchive: error: [queue] broker {broker}: ")


def test_a_local_run_left_running_is_closed_but_a_fleet_batch_is_not(tmp_path: Path) -> None:
    # (An older index's run log gaining the fleet columns: tests/test_migrations.py.)
    with Index(f"sqlite:///{tmp_path}/index.sqlite") as index:
        runs = RunLog(index)
        batch = runs.start("batch", 2, worker="w1@host")
        runs.finish(batch, "ok", {"new": 2}, [], ["c1", "c2"])
        running = runs.start("batch", 1, worker="w2@host")  # a worker elsewhere is on it
        local = runs.start("run-once", 1)  # killed: no lock holder runs it now
        assert runs.close_abandoned() == 1
        status = {r.id: r.status for r in runs.recent()}
        new = next(r for r in runs.recent() if r.id == batch)
    assert (status[running], status[local]) == ("running", "killed")
    assert (new.worker, new.captures, new.status) == ("w1@host", ["c1", "c2"], "ok")


def test_run_once_with_no_worker_warns_stops_at_its_timeout_and_leaves_tasks_queued(
    fleet: Fleet, pg_index_url: str
) -> None:
    site = Site(3)
    try:
        fleet.config_text = fleet.config_text.replace(
            "lease_seconds = 10\n", "lease_seconds = 10\nwait_timeout_s = 4\n"
        )
        control = fleet.config("control")
        assert run_cli(control, "add", *site.urls()).code == 0
        code, out, err = finish(spawn(control, "run-once", "--all"), fleet)
        assert code == 8, (out, err)
        assert "captured 0 of 3 due sources (3 still queued for the workers" in out
        assert "no worker answers: start `citearchive worker`" in err
        assert err.strip().splitlines()[-1] == (
            "citearchive: stopped waiting after [queue] wait_timeout_s = 4 s; "
            "3 source(s) stay queued"
        )
        [run] = json.loads(run_cli(control, "runs", "--json").out)
        assert (run["kind"], run["status"]) == ("run-once", "unfinished")
        assert site.hits.total() == 0
        # The tasks were not lost: a worker started later captures each source once.
        fleet.start("w1")
        deadline = time.monotonic() + WAIT_S
        while len(captures_by_url(pg_index_url)) < 3 or not all(
            captures_by_url(pg_index_url).values()
        ):
            assert time.monotonic() < deadline, fleet.logs()
            time.sleep(0.5)  # the index is polled: the test has no event from the worker
        assert_exactly_once(pg_index_url, site.urls(), fleet)
    finally:
        site.stop()
