"""kill -9 of a real `citearchive run-once` at chosen points, on disk and on S3.

Kill points are real and reproducible without any hook in the product:
- S3: the child talks to moto through a small TCP proxy in this process, which sees each
  request line. It kills the child's process group when the k-th blob PUT arrives (before
  forwarding it), when the k-th manifest PUT arrives (before forwarding it), or once the
  server has stored the k-th manifest but before its answer reaches the child.
- Disk: inotify on the store's directories fires when a blob write starts (its prefix
  directory is created), when a manifest's temp file appears, or when the manifest is
  renamed into place; the child is killed then.
- Both: at a seeded random time after the first page request reached the site, killing
  the Python process alone, so the run lock is taken again while its Chromium still runs.
Where each kill landed is then read from the store itself (orphan blobs, manifests the index
lacks, temp files) and counted per phase.

After every kill: the archive verifies clean (no manifest names a missing blob, every blob
hashes to its name and size, every chain holds) and the run lock is free. At the end a rerun
captures every due source, and the index built incrementally equals a `reindex` into a
fresh file once `verify --repair` has recorded the manifests stored just before a kill.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import queue
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import s3server
from fixture_site import default_pages, respond

from crawler.app import App
from crawler.cli import main
from crawler.config import load_config
from crawler.sources import Citation, register
from crawler.verify import verify
from storage.index import Index
from storage.runlog import RunLog

SEED = 20261127
KILLS_PER_BACKEND = 10
MAX_ROUNDS = 16
PAGES = ("/static.html", "/js.html")


class Site:
    """Two pages of the fixture site; every page request is announced on ``requested``."""

    def __init__(self) -> None:
        self.requested: queue.Queue[str] = queue.Queue()
        pages = default_pages()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path in PAGES:
                    site.requested.put(self.path)
                entry = pages.get(path)
                if entry is None:
                    self.send_error(404)
                    return
                status, ctype, body, headers = entry
                # Each source's page differs a little: its capture stores new blobs.
                mark = f"<p>Copy {self.path.partition('?')[2]}</p></body>".encode()
                respond(self, status, ctype, body.replace(b"</body>", mark), headers)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, n: int) -> str:
        return f"{self.base}{PAGES[n % len(PAGES)]}?n={n}"

    def drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.requested.get_nowait()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Victim:
    """The run-once child in a process group of its own; ``kill`` is kill -9 of the group,
    or of the Python process alone (its Chromium and driver then outlive it a moment)."""

    def __init__(self, log: Path) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed_at: str | None = None
        self.log = log
        self._lock = threading.Lock()

    def start(self, config: Path, env: dict[str, str]) -> None:
        self.killed_at = None
        with self.log.open("wb") as log:  # a file, not a pipe: the children inherit it
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "crawler.cli", "--config", str(config), "run-once"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
            )

    def kill(self, where: str, leader_only: bool = False) -> bool:
        with self._lock:
            if self.proc is None or self.killed_at is not None or self.proc.poll() is not None:
                return False
            if leader_only:
                os.kill(self.proc.pid, signal.SIGKILL)
            else:
                os.killpg(self.proc.pid, signal.SIGKILL)  # Chromium and its driver die too
            self.killed_at = where
            return True

    def wait(self, at_exit: Callable[[bool], None]) -> tuple[int, str]:
        """Wait for the Python process; ``at_exit(group_alive)`` runs before the rest of
        its process group is killed."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=180)
            at_exit(_group_alive(self.proc.pid))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # nothing may outlive the round
        return code, self.log.read_text(errors="replace")


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies waiting to be reaped do not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


# S3: a proxy that sees request lines and can kill the client at one of them.


class KillingProxy:
    """TCP proxy to the S3 server; ``arm(kind, k)`` kills the victim at the k-th
    ``blob``/``manifest`` PUT (before it reaches the server) or at the k-th manifest's
    answer (``stored``: the server has the manifest, the client never hears so)."""

    def __init__(self, upstream: str, bucket: str, victim: Victim) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.victim = victim
        self.request = re.compile(
            rb"(PUT|GET|HEAD|DELETE|POST) /" + re.escape(bucket.encode()) + rb"/(\S*) HTTP/1\.1"
        )
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._armed: tuple[str, int] | None = None
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.cut_keys: list[str] = []  # bucket keys of blob PUTs cut part-way
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, kind: str | None, k: int = 0) -> None:
        with self._lock:
            self._armed = (kind, k) if kind else None
            self._seen = Counter()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream, timeout=30)
            last: list[str | None] = [None]
            threading.Thread(target=self._up, args=(client, server, last), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, last), daemon=True).start()

    def _fires(self, event: str) -> bool:
        with self._lock:
            self._seen[event] += 1
            return self._armed is not None and self._armed == (event, self._seen[event])

    def _up(self, client: socket.socket, server: socket.socket, last: list) -> None:
        cut: str | None = None  # a blob PUT whose headers went through: cut its body
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if cut is not None:
                    return self._cut(client, server, data, cut)
                for method, key in self.request.findall(data):
                    key = key.decode().split("?")[0]
                    kind = _kind(method.decode(), key)
                    last[0] = kind
                    if not (kind and self._fires(kind)):
                        continue
                    if kind == "manifest" and self.victim.kill("manifest PUT held back"):
                        return _close(client, server)
                    if data.partition(b"\r\n\r\n")[2]:
                        return self._cut(client, server, data, key)
                    cut = key  # Expect: 100-continue: the body comes next
                server.sendall(data)
        _close(client, server)

    def _cut(self, client: socket.socket, server: socket.socket, data: bytes, key: str) -> None:
        """Send the server part of a blob PUT, then kill the client mid-upload."""
        head, sep, body = data.partition(b"\r\n\r\n")
        part = head + sep + body[: len(body) // 2] if body else data[: len(data) // 2]
        with contextlib.suppress(OSError):
            server.sendall(part)
        if self.victim.kill("blob PUT cut mid-body"):
            self.cut_keys.append(key)
        _close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, last: list) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                answer = data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 100")
                fires = answer and last[0] == "manifest" and self._fires("stored")
                if fires and self.victim.kill("manifest stored, answer held back"):
                    return _close(client, server)
                client.sendall(data)
        _close(client, server)

    def close(self) -> None:
        self.listener.close()


def _kind(method: str, key: str) -> str | None:
    if method != "PUT":
        return None
    if "/blobs/" in f"/{key}":
        return "blob"
    if "/captures/" in f"/{key}":
        return "manifest"
    return None


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


# Disk: inotify, so the kill follows the store's own file events.

IN_MOVED_TO, IN_CREATE, IN_ISDIR = 0x80, 0x100, 0x40000000
_EVENT = struct.Struct("iIII")


class StoreWatch:
    """Kills the victim at the k-th blob write (a new blobs/sha256/ab directory), the k-th
    manifest temp file in captures/<source>/ (``manifest``) or the k-th manifest renamed into
    place (``renamed``); the watched directories are made beforehand."""

    def __init__(self, root: Path, victim: Victim) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.root = root
        self.victim = victim
        self.kinds: dict[int, str] = {}
        self._armed: tuple[str, int] | None = None
        self._seen: Counter[str] = Counter()
        self.watch(root / "blobs" / "sha256", "blob")
        threading.Thread(target=self._read, daemon=True).start()

    def watch(self, path: Path, kind: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        mask = IN_CREATE | IN_MOVED_TO
        wd = self.libc.inotify_add_watch(self.fd, str(path).encode(), mask)
        assert wd >= 0, os.strerror(ctypes.get_errno())
        self.kinds[wd] = kind

    def arm(self, kind: str | None, k: int = 0) -> None:
        self._armed = (kind, k) if kind else None
        self._seen = Counter()

    def _read(self) -> None:
        while data := os.read(self.fd, 65536):
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                kind = _event_kind(self.kinds.get(wd), mask, name)
                if kind is not None:
                    self._seen[kind] += 1
                    if self._armed == (kind, self._seen[kind]):
                        self.victim.kill(f"{kind} (disk)")


def _event_kind(watched: str | None, mask: int, name: bytes) -> str | None:
    if watched == "blob" and mask & IN_CREATE and mask & IN_ISDIR:
        return "blob"  # a blob write starts by making its prefix directory
    if watched == "manifest" and mask & IN_CREATE and name.startswith(b".#"):
        return "manifest"  # the manifest's temp file: blobs are all stored
    if watched == "manifest" and mask & IN_MOVED_TO and not name.startswith(b".#"):
        return "renamed"  # the manifest is in place; its index row comes next
    return None


# What a kill left behind, read from the store.


def leftovers(app: App, root: Path | None) -> dict:
    report = verify(app.archive, app.index)
    assert report.clean, [p.__dict__ for p in report.damage]
    temp = 0
    if root is not None:
        temp = sum(1 for p in root.rglob(".#*") if p.is_file())
    return {
        "orphans": len(report.orphans),
        "unindexed": len(report.unindexed),
        "temp": temp,
        "manifests": report.manifests,
        "unindexed_keys": report.unindexed,
    }


def phase(before: dict, after: dict) -> str:
    if after["unindexed"] > before["unindexed"]:
        return "after manifest, before index row"
    if after["orphans"] > before["orphans"] or after["temp"] > before["temp"]:
        return "after blobs (or mid-blob), before manifest"
    if after["manifests"] > before["manifests"]:
        return "between completed captures"
    return "before anything was stored"


def lock_is_free(app: App) -> None:
    with app.run_lock():
        pass


def run_rounds(
    config: Path,
    site: Site,
    victim: Victim,
    arm: Callable[[str | None, int], None],
    kinds: list[str],
    root: Path | None,
    env: dict[str, str],
    on_register: Callable[[list[str]], None] = lambda ids: None,
) -> tuple[Counter[str], Counter[str], list[str]]:
    rng = random.Random(f"{SEED}-{kinds}")
    app = App.open(load_config(config))
    phases: Counter[str] = Counter()
    points: Counter[str] = Counter()

    def check_lock(group_alive: bool) -> None:
        # The kernel drops a flock when its last holder dies; Chromium and the driver
        # must not hold it (Python opens files non-inheritable).
        lock_is_free(app)
        if group_alive and "Python process only" in (victim.killed_at or ""):
            points["(lock taken while the killed run's children still ran)"] += 1

    unindexed: set[str] = set()
    n = 0
    try:
        for _ in range(MAX_ROUNDS):
            if sum(phases.values()) >= KILLS_PER_BACKEND:
                break
            urls = [site.url(n), site.url(n + 1)]
            n += 2
            records = register(app.archive, app.index, [Citation(u) for u in urls])
            on_register([r["id"] for r in records])
            before = leftovers(app, root)
            kind = rng.choice(kinds)
            k = rng.randint(1, 6 if kind == "blob" else 2)
            arm(None if kind == "time" else kind, k)
            site.drain()
            victim.start(config, env)
            timer = None
            if kind == "time":
                delay = rng.uniform(0.0, 2.5)
                site.requested.get(timeout=120)
                where = "random time after a page (Python process only)"
                timer = threading.Timer(delay, victim.kill, [where, True])
                timer.start()
            code, err = victim.wait(check_lock)
            arm(None, 0)
            if timer is not None:
                timer.cancel()
                timer.join()
            if victim.killed_at is None:
                assert code == 0, err  # the trigger never came: the run must have succeeded
                continue
            assert code == -signal.SIGKILL, (code, err)
            after = leftovers(app, root)
            phases[phase(before, after)] += 1
            points[victim.killed_at] += 1
            unindexed.update(after["unindexed_keys"])
    finally:
        app.close()
    return phases, points, sorted(unindexed)


def finish_and_compare(config: Path, tmp_path: Path, unindexed: list[str], capsys) -> None:
    """A rerun completes every due source; the incremental index equals a reindex once the
    manifests stored just before a kill are recorded."""
    # In a process of its own: Twisted's reactor cannot run twice in this one.
    rerun = subprocess.run(
        [sys.executable, "-m", "crawler.cli", "--config", str(config), "run-once"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.startswith("captured "), rerun.stdout
    # `reindex` into a fresh index file: the same store, another [index] url.
    fresh_config = tmp_path / "fresh.toml"
    fresh_url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    fresh_config.write_text(f'{config.read_text()}\n[index]\nurl = "{fresh_url}"\n')
    assert main(["--config", str(fresh_config), "reindex"]) == 0
    capsys.readouterr()
    app = App.open(load_config(config))
    fresh = Index(fresh_url)
    try:
        assert app.due_sources(False) == []
        for source in app.index.list_sources():
            assert app.index.captures(source.id), f"{source.canonical_url} never captured"
        incremental, rebuilt = app.index.dump(), fresh.dump()
        assert rebuilt["captures"], "reindex found no captures"
        missing = {c["manifest_key"] for c in rebuilt["captures"]} - {
            c["manifest_key"] for c in incremental["captures"]
        }
        # The only difference: manifests a kill left without their index row, less those
        # the rerun recorded before capturing (crawler/reconcile.py); repair records the rest.
        assert missing <= set(unindexed)
        assert main(["--config", str(config), "verify", "--repair"]) == 0
        capsys.readouterr()
        report = verify(app.archive, app.index)
        assert report.clean and report.orphans == [] and report.unindexed == []
        assert app.index.dump() == rebuilt
        runs = Counter(r.status for r in RunLog(app.index).recent(100))
        # A killed run never logs its end; the next run, under the lock, marks it killed.
        assert runs["running"] == 0, runs
        with capsys.disabled():
            print(f"run log after the kills: {dict(runs)}")
    finally:
        fresh.close()
        app.close()


@pytest.fixture
def site() -> Iterator[Site]:
    running = Site()
    yield running
    running.stop()


def crash_config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[store]\nurl = "{store_url}"\n\n[crawl]\nallow_private_networks = true\n'
        "settle_timeout = 2\npage_timeout = 20\n\n[politeness]\nper_host_delay = 0\n"
    )
    return path


@pytest.mark.browser
def test_kill_9_on_disk(tmp_path, site, capsys):
    root = tmp_path / "store"
    config = crash_config(tmp_path, root.as_uri())
    victim = Victim(tmp_path / "run.log")
    watch = StoreWatch(root, victim)

    def watch_sources(ids: list[str]) -> None:
        for sid in ids:
            watch.watch(root / "captures" / sid, "manifest")

    phases, points, unindexed = run_rounds(
        config,
        site,
        victim,
        watch.arm,
        ["blob", "manifest", "renamed", "time"],
        root,
        {},
        watch_sources,
    )
    with capsys.disabled():
        print(f"\ndisk: kill points {dict(points)}; landed {dict(phases)}")
    assert sum(phases.values()) >= KILLS_PER_BACKEND
    assert phases["after blobs (or mid-blob), before manifest"] >= 1
    assert phases["after manifest, before index row"] >= 1
    finish_and_compare(config, tmp_path, unindexed, capsys)


@pytest.mark.browser
def test_kill_9_on_s3(tmp_path, site, s3_bucket, s3_endpoint, capsys):
    config = crash_config(tmp_path, f"s3://{s3_bucket}/arch")
    victim = Victim(tmp_path / "run.log")
    proxy = KillingProxy(s3_endpoint, s3_bucket, victim)
    try:
        phases, points, unindexed = run_rounds(
            config,
            site,
            victim,
            proxy.arm,
            ["blob", "manifest", "stored", "time"],
            None,
            {"AWS_ENDPOINT_URL_S3": proxy.url},
        )
    finally:
        proxy.close()
    with capsys.disabled():
        print(f"\nS3: kill points {dict(points)}; landed {dict(phases)}")
    # A PUT cut part-way left nothing under its key: S3 stores whole objects or none.
    assert proxy.cut_keys
    admin = s3server.admin_client(s3_endpoint)
    for key in proxy.cut_keys:
        listed = admin.list_objects_v2(Bucket=s3_bucket, Prefix=key).get("Contents", [])
        for obj in listed:  # stored by a later, complete PUT of the same bytes: it hashes
            body = admin.get_object(Bucket=s3_bucket, Key=obj["Key"])["Body"].read()
            assert hashlib.sha256(body).hexdigest() == key.rsplit("/", 1)[1]
    assert sum(phases.values()) >= KILLS_PER_BACKEND
    assert phases["after blobs (or mid-blob), before manifest"] >= 1
    assert phases["after manifest, before index row"] >= 1
    finish_and_compare(config, tmp_path, unindexed, capsys)
