"""Two runs on one store at once: `run-once --all` twice on S3, `schedule` twice on disk.

The pages are held until the test releases them, so the two processes really overlap: the
first to take the run lock cannot finish before the other has tried. Either way no source
may be captured twice for one due time, and the store must verify clean afterwards.

The run lock is a flock on a local file beside the index (for an S3 store without an index
URL: beside the config), so processes sharing one config share it; processes on two
machines, or with two configs, do not (see docs/verify.md): the last test shows what two
uncoordinated writers do to a hash chain, and that verify reports it.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cliutil import spawn_cli
from test_daemon import GatedSite, Watched, captures_per_source

from crawler.app import App
from crawler.config import load_config
from crawler.verify import verify
from storage.archive import Archive
from storage.ids import new_capture_id
from storage.localstore import LocalStore


@pytest.fixture
def gated() -> Iterator[list[GatedSite]]:
    sites: list[GatedSite] = []
    yield sites
    for site in sites:
        site.stop()


def config_file(tmp_path: Path, store_url: str, schedule_toml: str = "") -> Path:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[store]\nurl = "{store_url}"\n\n'
        "[crawl]\nallow_private_networks = true\nconcurrency = 1\nsettle_timeout = 2\n"
        "page_timeout = 60\n\n[politeness]\nper_host_delay = 0\n\n"
        f"[schedule]\n{schedule_toml}"
    )
    return path


def verified_clean(config: Path) -> None:
    app = App.open(load_config(config))
    try:
        report = verify(app.archive, app.index)
    finally:
        app.close()
    assert report.clean, report.damage
    assert report.orphans == [] and report.unindexed == []


@pytest.mark.browser
def test_two_run_once_all_at_the_same_moment_on_s3(tmp_path, gated, s3_bucket):
    site = GatedSite(3)
    gated.append(site)
    config = config_file(tmp_path, f"s3://{s3_bucket}/arch")
    add = subprocess.run(
        [sys.executable, "-m", "crawler.cli", "--config", str(config), "add", *site.urls],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert add.returncode == 0, add.stderr
    runs = [spawn_cli(config, "run-once", "--all") for _ in range(2)]
    ended: queue.Queue[tuple[int, int, str, str]] = queue.Queue()
    for n, proc in enumerate(runs):

        def wait(n: int = n, proc: subprocess.Popen[str] = proc) -> None:
            out, err = proc.communicate(timeout=300)
            ended.put((n, proc.returncode, out, err))

        threading.Thread(target=wait, daemon=True).start()
    # Pages are held: the lock holder cannot end, so the first to end is the refused one.
    loser, code, out, err = ended.get(timeout=180)
    assert code == 5 and out == "", err
    assert err.strip().endswith("another citearchive run is in progress")
    assert "citearchive-index.lock" in err  # beside the config, shared by both processes
    site.release()
    winner, code, out, err = ended.get(timeout=300)
    assert {loser, winner} == {0, 1}
    assert code == 0, err
    assert out.strip() == "captured 3 of 3 due sources: 3 new"
    assert captures_per_source(config) == dict.fromkeys(site.urls, 1)
    verified_clean(config)


class Merged:
    """Both daemons' batch lines on one queue, as they come."""

    def __init__(self, daemons: list[Watched]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        for daemon in daemons:
            threading.Thread(target=self._pump, args=(daemon,), daemon=True).start()

    def _pump(self, daemon: Watched) -> None:
        while True:
            try:
                line = daemon.wait_for("crawler.daemon: batch", timeout=300)
            except (AssertionError, queue.Empty):  # the daemon ended
                return
            self.lines.put(line)


@pytest.mark.browser
def test_two_schedulers_on_one_store_never_capture_twice(tmp_path, gated):
    site = GatedSite(4)  # held until one daemon's batch has been refused by the lock
    gated.append(site)
    config = config_file(
        tmp_path, (tmp_path / "store").as_uri(), "check_seconds = 1\nbatch_size = 2\n"
    )
    add = subprocess.run(
        [sys.executable, "-m", "crawler.cli", "--config", str(config), "add", *site.urls],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert add.returncode == 0, add.stderr
    daemons = [Watched(spawn_cli(config, "schedule")) for _ in range(2)]
    merged = Merged(daemons)
    try:
        line = merged.lines.get(timeout=180)
        assert "batch not run: another run holds the lock" in line, line
        site.release()
        captured = 0
        while captured < len(site.urls):
            line = merged.lines.get(timeout=180)
            found = re.search(r"batch: captured (\d+) of", line)
            captured += int(found.group(1)) if found else 0
            assert "batch failed" not in line, line
    finally:
        for daemon in daemons:
            daemon.proc.send_signal(signal.SIGTERM)
        results = [daemon.finish() for daemon in daemons]
    assert [r.code for r in results] == [0, 0], [r.err for r in results]
    assert captures_per_source(config) == dict.fromkeys(site.urls, 1)
    verified_clean(config)


class HeldManifestPuts:
    """A store whose manifest puts wait for ``go``: the writer has read the latest manifest
    and chained to it, but has not stored its own yet."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.url = store.url
        self.chained = threading.Event()
        self.go = threading.Event()

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        if key.startswith("captures/"):
            self.chained.set()
            assert self.go.wait(30)
        self.store.put(key, data, content_type=content_type)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def _manifest(sid: str, when: str) -> dict:
    return {"id": new_capture_id(), "source_id": sid, "captured_at": when, "artifacts": {}}


def test_writers_without_a_shared_lock_fork_the_chain_and_verify_names_it(tmp_path):
    # What two machines (or two configs) on one S3 store can do, since the run lock is a
    # local flock: both chain a capture to the same latest manifest. Nothing prevents it
    # yet (issue 11: leases); verify must at least report it.
    store = LocalStore(tmp_path / "store")
    sid = "s1"
    Archive(store).write_manifest(_manifest(sid, "2026-01-01T00:00:00Z"))
    held = HeldManifestPuts(store)
    first = threading.Thread(
        target=Archive(held).write_manifest, args=[_manifest(sid, "2026-01-02T00:00:00Z")]
    )
    first.start()
    assert held.chained.wait(30)
    second = Archive(store).write_manifest(_manifest(sid, "2026-01-03T00:00:00Z"))
    held.go.set()
    first.join(30)
    report = verify(Archive(store))
    assert [(p.kind, p.key, p.latest) for p in report.damage] == [("chain", second.key, True)]
