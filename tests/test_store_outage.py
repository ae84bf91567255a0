"""The S3 store goes away mid-run (refused, 5xx, timeouts): no capture is lost.

Real Chromium, real moto server on loopback. Between citearchive and moto sits a loopback
TCP proxy that a test arms: once the first manifest of the run has been stored it starts
an outage (refuse connections, answer 500/503, or accept and never answer), and one page
of the fixture site only answers once the outage has begun, so at least one capture is
stored during it.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import s3server
from cliutil import Result, run_cli
from fixture_site import html

from crawler.cli import main
from crawler.errors import StoreUnavailable
from storage.archive import Archive
from storage.index import Index
from storage.localstore import LocalStore
from storage.runlog import RunLog
from storage.s3store import S3Store
from storage.spool import SpoolingStore

pytestmark = pytest.mark.browser

PREFIX = "arch"
URL_OF_SOURCE = "https://example.org/alert"
SECRETS = (s3server.SECRET_ACCESS_KEY, s3server.ACCESS_KEY_ID)


class OutageProxy:
    """Loopback TCP proxy to moto; after the first manifest PUT it plays an outage.

    The outage starts with the first request after the first manifest PUT was answered.
    Modes: "pass" relays; "refuse" closes the listening socket (connection refused) and
    reopens it on the same port after ``outage_seconds``; "error" answers 500/503 to the
    next ``error_answers`` requests; "hang" accepts and never answers until ``restore()``.
    """

    def __init__(self, upstream_port: int, bucket: str, outage: str) -> None:
        self.upstream_port = upstream_port
        self.outage = outage
        self.outage_seconds: float | None = None
        self.error_answers = 0
        self.errors_sent = 0
        self.marker = f"PUT /{bucket}/{PREFIX}/captures/".encode()
        self.mode = "pass"
        self.tripped = threading.Event()
        self.restored = threading.Event()
        self._due = False
        self.cut_at_request: int | None = None  # or: the outage starts at this request
        self.requests = 0
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._serve(self.listener)

    def _serve(self, listener: socket.socket) -> None:
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: refusing, or the test is over
            with self._lock:
                self._socks.add(conn)
                mode = self.mode
            handler = {
                "pass": self._relay,
                "refuse": _close,  # accepted just before the listener closed
                "error": self._answer_errors,
                "hang": self._hang,
            }
            threading.Thread(target=handler[mode], args=(conn,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._socks.add(upstream)
        sent_manifest = threading.Event()  # on this connection
        threading.Thread(
            target=self._pipe, args=(client, upstream, True, sent_manifest), daemon=True
        ).start()
        self._pipe(upstream, client, False, sent_manifest)

    def _pipe(
        self,
        src: socket.socket,
        dst: socket.socket,
        to_server: bool,
        sent_manifest: threading.Event,
    ) -> None:
        try:
            while data := src.recv(65536):
                if to_server and data.startswith((b"GET ", b"HEAD ", b"PUT ")):
                    self.requests += 1
                    if self.requests == self.cut_at_request:
                        self._due = True
                if to_server and self._due and not self.tripped.is_set():
                    self.trip()  # the request after the first manifest's answer meets it
                    return
                if to_server and self.marker in data:
                    sent_manifest.set()
                dst.sendall(data)
                if not to_server and sent_manifest.is_set() and b" 200 OK" in data:
                    self._due = True  # the first manifest is stored and answered
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _close(sock)

    def _answer_errors(self, conn: socket.socket) -> None:
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            with self._lock:
                self.errors_sent += 1
                status = "500 Internal Server Error" if self.errors_sent % 2 else "503 Slow Down"
                if self.errors_sent >= self.error_answers:
                    self.mode = "pass"
            conn.sendall(
                f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
        except OSError:
            pass
        finally:
            _close(conn)

    def _hang(self, conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass

    def rearm(self, outage_seconds: float | None) -> None:
        """Play the outage again after the next run's first manifest."""
        self._due = False
        self.outage_seconds = outage_seconds
        self.tripped.clear()

    def trip(self) -> None:
        """Start the outage: drop every open connection, then refuse / err / hang."""
        with self._lock:
            if self.tripped.is_set():
                return
            self.mode = self.outage
            socks, self._socks = self._socks, set()
        for sock in socks:
            _close(sock)
        if self.outage == "refuse":
            self.listener.close()
        self.tripped.set()
        if self.outage_seconds is not None:
            threading.Timer(self.outage_seconds, self.restore).start()

    def restore(self) -> None:
        """End the outage: relay again, on the same port."""
        with self._lock:
            self.mode = "pass"
            socks, self._socks = self._socks, set()
        for sock in socks:
            _close(sock)
        if self.outage == "refuse":
            self.listener = socket.create_server(("127.0.0.1", self.port))
            self._serve(self.listener)
        self.restored.set()

    def close(self) -> None:
        self.listener.close()
        with self._lock:
            socks, self._socks = self._socks, set()
        for sock in socks:
            _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class Site:
    """Fast pages, and /slow, which answers only once the store's outage has begun."""

    def __init__(self, tripped: threading.Event) -> None:
        self.words = "first"

        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/slow":
                    tripped.wait(60)
                body = html(
                    f"Page {path}",
                    f"<article><h1>Notice {path}</h1><p>The {site.words} version of the "
                    f"notice at {path} says the gate is closed until further notice.</p>"
                    "</article>",
                )
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def urls(self) -> list[str]:
        return [f"{self.base}/{p}" for p in ("a", "b", "c", "slow")]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def env(s3_endpoint, s3_bucket):
    return int(s3_endpoint.rsplit(":", 1)[1]), s3_bucket


@pytest.fixture
def inproc(monkeypatch, capsys):
    """Run a command in this process (no interpreter start-up), through the proxy."""

    def run(config: Path, proxy: OutageProxy, *args: str) -> tuple[int, str]:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        capsys.readouterr()
        code = main(["--config", str(config), *args])
        out, err = capsys.readouterr()
        assert not any(secret in out + err for secret in SECRETS)
        return code, out

    return run


def write_config(path: Path, bucket: str, store_extra: str = "") -> Path:
    path.write_text(
        f'[store]\nurl = "s3://{bucket}/{PREFIX}"\n{store_extra}\n'
        "[crawl]\nallow_private_networks = true\nsettle_timeout = 1\npage_timeout = 30\n"
        "concurrency = 4\n\n[politeness]\nper_host_delay = 0\nper_host_concurrency = 8\n"
    )
    return path


def cli(config: Path, proxy: OutageProxy, *args: str, verbose: str = "-v") -> Result:
    res = run_cli(config, verbose, *args, env={"AWS_ENDPOINT_URL_S3": proxy.url})
    print(" ".join(args[:2]), "->", res.code, res.out.strip()[-400:], res.err.strip()[-300:])
    for secret in SECRETS:
        assert secret not in res.out and secret not in res.err, args
    return res


def verify_store(endpoint: str, bucket: str, config: Path) -> int:
    """Every manifest's blobs are in the store and hash right, every chain holds, and the
    index equals one rebuilt from the store. Returns the number of manifests."""
    store = S3Store(s3server.admin_client(endpoint), bucket, PREFIX)  # to moto, no proxy
    archive = Archive(store)
    manifests = 0
    for source in archive.iter_sources():
        for stored in archive.iter_manifests(source["id"]):
            manifests += 1
            for name, ref in stored.manifest["artifacts"].items():
                data = archive.get_blob(ref["sha256"])  # IntegrityError if it is corrupt
                assert len(data) == ref["size"], name
        archive.verify_chain(source["id"])
    with Index(index_url(config)) as index:
        before = index.dump()
        index.rebuild(archive)  # what `reindex` does, from the store alone
        assert index.dump() == before
    return manifests


def index_url(config: Path) -> str:
    return f"sqlite:///{config.parent / 'citearchive-index.sqlite'}"


def run_log(config: Path) -> list[dict]:
    with Index(index_url(config)) as index:
        runs = [r.__dict__ for r in RunLog(index).recent()]
    assert not any(secret in json.dumps(runs) for secret in SECRETS)
    return runs


def test_refused_for_30_s_mid_run_spools_and_next_run_uploads(tmp_path, env, s3_endpoint, inproc):
    """The endpoint is gone (connection refused) for 30 s after the first manifest of a
    run; writes retry for 5 s, then spool; the spooled captures are judged against the
    earlier run (read ahead), readable while spooled, and uploaded by the next run."""
    port, bucket = env
    proxy = OutageProxy(port, bucket, "refuse")
    site = Site(proxy.tripped)
    config = write_config(tmp_path / "c.toml", bucket, "retry_seconds = 5")
    try:
        assert inproc(config, proxy, "add", *site.urls())[0] == 0
        proxy.tripped.set()  # first run: no outage, /slow answers at once
        first = cli(config, proxy, "run-once", "--all")
        assert first.code == 0 and "4 new" in first.out, first.err
        assert "store unavailable" not in first.out
        proxy.rearm(outage_seconds=30)
        site.words = "second"  # every page changed: the verdict needs the last text
        res = cli(config, proxy, "run-once", "--all")
        assert proxy.tripped.is_set()
        assert res.code == 0, res.err
        assert "4 changed" in res.out, res.out
        found = re.search(r"store unavailable \d+ s; (\d+) capture", res.out)
        assert found, res.out + res.err[-3000:]
        spooled = int(found.group(1))
        assert spooled >= 1  # /slow at least
        spool = tmp_path / "citearchive-spool"
        if not proxy.restored.is_set():  # the run ended inside the outage
            assert "to be uploaded by the next run" in res.out
            # Spooled, yet readable: history from the index, the DOM from the spool.
            code, dom = inproc(config, proxy, "get", site.urls()[3])
            assert code == 0 and "second version" in dom
            assert proxy.restored.wait(60)
        after = cli(config, proxy, "run-once")
        assert after.code == 0, after.err
        assert list(spool.rglob("captures/*/*.json")) == []
        assert verify_store(s3_endpoint, bucket, config) == 8
        assert any("store unavailable" in e for r in run_log(config) for e in r["errors"])
    finally:
        proxy.close()
        site.stop()


def test_500_and_503_answers_are_retried_until_the_store_answers(
    tmp_path, env, s3_endpoint, inproc
):
    port, bucket = env
    proxy = OutageProxy(port, bucket, "error")
    proxy.error_answers = 6
    site = Site(proxy.tripped)
    config = write_config(tmp_path / "c.toml", bucket)  # default: retry for 60 s
    try:
        assert inproc(config, proxy, "add", *site.urls())[0] == 0
        # -vv: botocore's debug log must not show the keys either.
        res = cli(config, proxy, "run-once", "--all", verbose="-vv")
        assert res.code == 0, res.err
        assert proxy.errors_sent == 6
        assert "4 new" in res.out
        assert "store unavailable" in res.out and "nothing spooled" in res.out, res.out
        assert "retrying in" in res.err  # the log says what happened, without secrets
        assert verify_store(s3_endpoint, bucket, config) == 4
        assert not (tmp_path / "citearchive-spool").exists()
    finally:
        proxy.close()
        site.stop()


def test_timeouts_spool_and_the_next_run_uploads(tmp_path, env, s3_endpoint, inproc):
    """The endpoint accepts and never answers: 1 s read timeouts, 1 s of retrying."""
    port, bucket = env
    proxy = OutageProxy(port, bucket, "hang")
    site = Site(proxy.tripped)
    extra = "retry_seconds = 1\nread_timeout = 1\nconnect_timeout = 1"
    config = write_config(tmp_path / "c.toml", bucket, extra)
    try:
        assert inproc(config, proxy, "add", *site.urls())[0] == 0
        res = cli(config, proxy, "run-once", "--all")
        assert res.code == 0, res.err
        assert "4 new" in res.out
        assert "to be uploaded by the next run" in res.out, res.out
        spooled = sorted((tmp_path / "citearchive-spool" / "captures").rglob("*.json"))
        assert spooled
        # A run while the store is still down refuses to capture and keeps the spool.
        down = cli(config, proxy, "run-once", "--all")
        assert down.code == 4, down.err
        last = down.err.strip().splitlines()[-1]
        assert last.startswith("citearchive: error: ") and "nothing was captured" in last
        proxy.restore()
        after = cli(config, proxy, "run-once")
        assert after.code == 0, after.err
        assert f"{len(spooled)} spooled capture(s) of an earlier run uploaded" in after.out
        assert verify_store(s3_endpoint, bucket, config) == 4
        assert not list((tmp_path / "citearchive-spool").rglob("*.json"))
    finally:
        proxy.close()
        site.stop()


def test_an_upload_cut_anywhere_leaves_no_manifest_without_its_blobs(tmp_path, env, monkeypatch):
    """The spool of two chained captures is uploaded with the store going away at each
    request in turn: whatever reached the store verifies, and the next upload completes."""
    port, bucket = env
    spool = tmp_path / "spool"
    staged = Archive(LocalStore(spool))  # the spool as an offline run leaves it
    staged.put_source({"id": "src1", "canonical_url": URL_OF_SOURCE})
    for n, when in enumerate(["2026-01-02T10:00:00Z", "2026-01-03T10:00:00Z"]):
        ref = staged.put_blob(f"capture {n} body".encode())
        staged.write_manifest(
            {
                "id": f"cap{n}",
                "source_id": "src1",
                "captured_at": when,
                "artifacts": {"dom": {"sha256": ref.sha256, "size": ref.size}},
            }
        )
    objects = sorted(p.relative_to(spool) for p in spool.rglob("*") if p.is_file())
    cuts = 0
    for cut in range(1, 20):
        prefix = f"cut{cut}"
        backup = {p: (spool / p).read_bytes() for p in objects}
        proxy = OutageProxy(port, bucket, "refuse")
        proxy.cut_at_request = cut
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        remote = S3Store.from_url(
            f"s3://{bucket}/{prefix}", connect_timeout=2, read_timeout=2, max_attempts=1
        )
        store = SpoolingStore(remote, spool, retry_seconds=0)
        try:
            store.flush(patient=False)
            done = True
        except StoreUnavailable:
            done = False
        finally:
            proxy.close()
        direct = Archive(S3Store(s3server.admin_client(f"http://127.0.0.1:{port}"), bucket, prefix))
        for key in direct.store.list("captures/"):
            for ref in json.loads(direct.store.get(key))["artifacts"].values():
                assert direct.get_blob(ref["sha256"])  # present and intact
        direct.verify_chain("src1")
        if done:
            break
        cuts += 1
        # The next run: the rest of the spool goes up, nothing is missing.
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
        SpoolingStore(S3Store.from_url(f"s3://{bucket}/{prefix}"), spool).flush()
        assert len(list(direct.store.list("captures/src1/"))) == 2
        assert not store.pending()
        for path, data in backup.items():  # the same spool again for the next cut
            (spool / path).parent.mkdir(parents=True, exist_ok=True)
            (spool / path).write_bytes(data)
    assert cuts >= 5  # 2 blobs (HEAD + PUT), 1 source, 2 manifests: cut at each request


def test_offline_writes_spool_and_reads_come_back_with_the_store(tmp_path, env, monkeypatch):
    """Once offline, writes go to the spool without waiting and stay there (order), while
    a read tries the store again and gets the store's answer once it is back."""
    port, bucket = env
    admin = s3server.admin_client(f"http://127.0.0.1:{port}")
    admin.put_object(Bucket=bucket, Key=f"{PREFIX}/sources/old.json", Body=b"{}")
    proxy = OutageProxy(port, bucket, "refuse")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    remote = S3Store.from_url(f"s3://{bucket}/{PREFIX}", connect_timeout=1, max_attempts=1)
    store = SpoolingStore(remote, tmp_path / "spool", retry_seconds=0)
    monkeypatch.setattr("storage.spool.READ_RETRY_SECONDS", 0.0)  # reads try at every call
    try:
        proxy.cut_at_request = 1
        store.put("blobs/sha256/aa/bb/one", b"one")
        assert proxy.tripped.is_set() and store.offline
        with pytest.raises(StoreUnavailable):
            store.get("sources/old.json")  # never read, nothing kept
        proxy.restore()
        store.put("sources/new.json", b"{}")  # offline: spooled, not sent ahead of the blob
        assert store.pending() == ["blobs/sha256/aa/bb/one", "sources/new.json"]
        assert store.get("sources/old.json") == b"{}"  # the store answers again
        assert list(store.list("sources/")) == ["sources/new.json", "sources/old.json"]
        assert store.flush() == 0 and not store.pending() and not store.offline
        assert admin.get_object(Bucket=bucket, Key=f"{PREFIX}/sources/new.json")
    finally:
        proxy.close()
