"""Two workers on two "machines": network namespaces that reach the fleet only over veth.

Each worker runs in a network namespace of its own (``ip netns``), linked to the host's
by a veth pair. Redis, PostgreSQL, moto's S3 server and the site listen only on the
host side of the first link (10.X.1.1), and the namespaces have no other way out, so
every broker message, index row, stored blob and page the workers handle crossed a veth
link, as between machines. Needs root and a kernel that allows namespaces: skipped
elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
import s3server
from cliutil import run_cli, write_config
from moto.server import ThreadedMotoServer
from pgserver import PgServer
from procgroups import stop_groups
from redisserver import RedisServer

from crawler.config import load_config
from crawler.fleet.app import make_app
from storage.index import Index
from storage.runlog import RunLog

pytestmark = pytest.mark.browser

PAGES = 2
WAIT_S = 300
NET = f"10.{100 + os.getpid() % 100}"  # this run's subnets: NET.1.0/24, NET.2.0/24
SERVER = f"{NET}.1.1"  # every server listens here only


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


class Namespaces:
    """Namespaces 1..n, each with lo and one veth to the host: NET.i.2 <-> NET.i.1."""

    def __init__(self, count: int) -> None:
        self.tag = f"ca{os.getpid() % 100000}"
        self.names = [f"{self.tag}w{i}" for i in range(1, count + 1)]

    def create(self) -> None:
        for i, ns in enumerate(self.names, start=1):
            host_if, ns_if = f"{ns}h", f"{ns}n"
            ip("netns", "add", ns)
            ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
            ip("link", "set", ns_if, "netns", ns)
            ip("addr", "add", f"{NET}.{i}.1/24", "dev", host_if)
            ip("link", "set", host_if, "up")
            ip("-n", ns, "addr", "add", f"{NET}.{i}.2/24", "dev", ns_if)
            ip("-n", ns, "link", "set", ns_if, "up")
            ip("-n", ns, "link", "set", "lo", "up")  # the egress proxy listens on 127.0.0.1
            if i > 1:  # the servers' address is on the first link: route to it over ours
                ip("-n", ns, "route", "add", f"{SERVER}/32", "via", f"{NET}.{i}.1")

    def delete(self) -> None:
        for ns in self.names:  # deleting a namespace deletes its veth end, and so the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)

    def links(self, ns: str) -> list[str]:
        out = subprocess.run(
            ["ip", "-n", ns, "-o", "link"], capture_output=True, text=True, timeout=30
        ).stdout
        return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    spaces = Namespaces(2)
    try:
        spaces.create()
    except (subprocess.CalledProcessError, OSError) as exc:
        spaces.delete()
        detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else exc
        pytest.skip(f"cannot create network namespaces here: {detail}")
    try:
        yield spaces
    finally:
        spaces.delete()


class Site:
    """Numbered pages on SERVER; records which address each request came from."""

    def __init__(self) -> None:
        self.clients: Counter[str] = Counter()
        self.hits: Counter[str] = Counter()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.clients[self.client_address[0]] += 1
                site.hits[self.path] += 1
                body = f"<!DOCTYPE html><title>{self.path}</title><p>Page {self.path}</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body.encode())))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((SERVER, 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://{SERVER}:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers(namespaces: Namespaces, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Redis, PostgreSQL (clients from NET trusted), moto S3 and the site, all on SERVER."""
    work = Path(tempfile.mkdtemp(prefix="citearchive-netns-"))
    pg_work = Path(tempfile.mkdtemp(prefix="citearchive-pg-"))  # chowned: PostgreSQL runs as nobody
    rds = RedisServer(work, host=SERVER)
    pg = PgServer(pg_work, host=SERVER)
    moto = ThreadedMotoServer(ip_address=SERVER, port=0, verbose=False)
    site = None
    try:
        rds.start()
        pg.init()
        with (pg.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {NET}.0.0/16 trust\n")
        pg.start()
        moto.start()
        endpoint = "http://{}:{}".format(*moto.get_host_and_port())
        s3server.use_s3_endpoint(monkeypatch, endpoint, tmp_path / "aws")
        bucket = s3server.create_bucket(endpoint)
        site = Site()
        yield rds, pg.create_database(), bucket, site
    finally:
        if site is not None:
            site.stop()
        moto.stop()
        pg.stop()
        rds.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(pg_work, ignore_errors=True)


def start_worker(ns: str, config: Path, name: str) -> subprocess.Popen:
    home = config.parent
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "crawler.cli", "--config",
         str(config), "worker", "--hostname", f"{name}@%h"],
        cwd=home,
        env={**os.environ, "HOME": str(home)},
        stdin=subprocess.DEVNULL,
        stdout=(home / "worker.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def worker_logs(root: Path) -> str:
    return "\n".join(
        (root / n / "worker.log").read_text(errors="replace")[-3000:] for n in ("w1", "w2")
    )


def wait_ready(config: Path, count: int, procs: list[subprocess.Popen], root: Path) -> None:
    """Until ``count`` workers answer a ping (each has connected over its veth link)."""
    app = make_app(load_config(config))
    for _ in range(WAIT_S):
        if len(app.control.ping(timeout=1.0)) >= count:  # waits for the answers itself
            return
        if any(p.poll() is not None for p in procs):
            break
    pytest.fail(f"workers not ready:\n{worker_logs(root)}")


def test_two_workers_in_their_own_namespaces_share_a_run(
    tmp_path: Path, namespaces: Namespaces, servers
) -> None:
    rds, index_url, bucket, site = servers
    for ns in namespaces.names:  # no other way out than the veth link
        assert namespaces.links(ns) == sorted(["lo", f"{ns}n"])
    queue = f'\n[queue]\nbroker = "{rds.url}"\nbatch_size = 1\nlease_seconds = 30\n'
    extra = queue + f'\n[index]\nurl = "{index_url}"\n'
    store = f"s3://{bucket}/archive"
    configs = []
    for name in ("w1", "w2", "control"):
        (tmp_path / name).mkdir()
        configs.append(write_config(tmp_path / name / "citearchive.toml", store, extra=extra))
    workers = zip(namespaces.names, configs[:2], ["w1", "w2"], strict=True)
    procs = [start_worker(ns, config, name) for ns, config, name in workers]
    try:
        wait_ready(configs[2], 2, procs, tmp_path)
        urls = [f"{site.base}/p{n}.html" for n in range(PAGES)]
        assert run_cli(configs[2], "add", *urls).code == 0
        res = run_cli(configs[2], "run-once", "--all", timeout=WAIT_S)
        assert res.code == 0, (res.out, res.err, worker_logs(tmp_path))
        assert f"captured {PAGES} of {PAGES} due sources" in res.out
        # Both workers hold broker connections from their own namespace's address.
        with redis.Redis.from_url(rds.url, socket_timeout=5) as admin:
            peers = {c["addr"].rsplit(":", 1)[0] for c in admin.client_list()}
    finally:
        stop_groups(procs)
    assert {f"{NET}.1.2", f"{NET}.2.2"} <= peers
    # Each page captured once, by the two workers between them, fetched over the links.
    with Index(index_url) as index:
        counts = {s.canonical_url: len(index.captures(s.id)) for s in index.list_sources()}
        batches = [r for r in RunLog(index).recent(100) if r.kind == "batch"]
    assert counts == dict.fromkeys(urls, 1)
    assert {r.worker.split("@")[0] for r in batches} == {"w1", "w2"}, batches
    assert set(site.clients) == {f"{NET}.1.2", f"{NET}.2.2"}, site.clients
    assert all(site.hits[f"/p{n}.html"] >= 1 for n in range(PAGES))
    # The blobs the workers wrote to S3 over the links are whole.
    verified = run_cli(configs[2], "verify")
    assert verified.code == 0, (verified.out, verified.err)
