"""SSRF: with the default policy nothing private is fetched, however the browser is led there.

The fixture site is itself on loopback, so the crawl's config lists exactly its endpoint in
``[crawl] allow_hosts`` and is otherwise the default. Counting servers listen on the
loopback forms a page could aim at (another port of 127.0.0.1, 127.0.0.2, [::1]); they must
see no connection at all. Private addresses no server here can listen on (10/8, 100.64/10,
169.254.169.254, ULA) are checked by the proxy's record of refusals.

Already covered elsewhere and not repeated: every address class in tests/test_netguard.py;
literal, numeric, IPv4-mapped and "localhost" spellings refused by the proxy itself, and a
browser redirect hop refused under a test policy, in tests/test_egress_proxy.py.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from cliutil import manifests_by_url, run_cli

from crawler.config import load_config
from crawler.egress_proxy import EgressProxy
from crawler.errors import ConfigError
from crawler.netguard import DestinationPolicy

# Addresses a hostile page or DNS answer can point at, with the reason the guard gives.
PRIVATE = {
    "127.0.0.1": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "192.168.0.1": "private",
    "172.16.0.1": "private",
    "100.64.0.1": "shared address space",
    "169.254.169.254": "cloud metadata",
    "169.254.1.1": "link-local",
    "fd12::1": "private",
    "fe80::1": "link-local",
    "::ffff:127.0.0.1": "IPv4-mapped 127.0.0.1",
    "::ffff:10.0.0.1": "IPv4-mapped 10.0.0.1",
}


class Counter(ThreadingHTTPServer):
    """Counts every connection it accepts; answers 200 so a leak would be visible."""

    daemon_threads = True

    def __init__(self, host: str) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), _Answer)
        self.connections = 0
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        self.connections += 1
        super().process_request(request, client_address)

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"SECRET-7731 internal answer"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def counters() -> Iterator[dict[str, Counter]]:
    servers = {"v4": Counter("127.0.0.1"), "v4b": Counter("127.0.0.2"), "v6": Counter("::1")}
    yield servers
    for server in servers.values():
        server.close()


def total(counters: dict[str, Counter]) -> int:
    return sum(s.connections for s in counters.values())


def raw_get(proxy: EgressProxy, request: bytes) -> tuple[int, str]:
    """Send one raw request to the proxy; (status, X-Citearchive-Refused value)."""
    host, port = str(proxy.url).removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.settimeout(10)
        client.sendall(request)
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split(" ")[1]), fields.get("X-Citearchive-Refused", "")


# ---- names that resolve to private addresses: the proxy with an injected resolver -----------


@pytest.mark.parametrize(("address", "why"), PRIVATE.items())
def test_name_resolving_to_private_address_refused(counters, address, why) -> None:
    # "evil.test" resolves to the counting server's own address where one listens there.
    port = counters["v6" if address == "::1" else "v4"].port
    site = Counter("127.0.0.1")  # the one endpoint this policy allows
    policy = DestinationPolicy(
        allow_hosts=(f"127.0.0.1:{site.port}",), resolver=lambda host, _: [address]
    )
    before = total(counters)
    try:
        with EgressProxy(policy) as proxy:
            plain = f"GET http://evil.test:{port}/x HTTP/1.1\r\nHost: evil.test\r\n\r\n"
            connect = f"CONNECT evil.test:{port} HTTP/1.1\r\n\r\n"
            for request in (plain, connect):
                status, refused = raw_get(proxy, request.encode())
                assert status == 403
                assert refused.startswith(f"evil.test: {address} is not a public address")
                assert why in refused
            assert [r.target for r in proxy.refusals()] == [
                f"http://evil.test:{port}/x",
                f"evil.test:{port}",
            ]
    finally:
        site.close()
    assert total(counters) == before
    assert site.connections == 0


def test_allow_hosts_is_exact_endpoint(counters) -> None:
    # The allowed endpoint is reachable by address or by a name that resolves to it; the same
    # address on another port, and a name resolving to a mix, stay refused.
    v4 = counters["v4"]
    site = Counter("127.0.0.1")
    answers = {"site.test": ["127.0.0.1"], "mixed.test": ["127.0.0.1", "10.0.0.1"]}
    policy = DestinationPolicy(
        allow_hosts=(f"127.0.0.1:{site.port}",), resolver=lambda host, _: answers[host]
    )
    before = v4.connections
    try:
        with EgressProxy(policy) as proxy:
            for host in ("127.0.0.1", "site.test"):
                request = f"GET http://{host}:{site.port}/ HTTP/1.1\r\n\r\n".encode()
                assert raw_get(proxy, request)[0] == 200
            for url in (
                f"http://127.0.0.1:{v4.port}/",
                f"http://site.test:{v4.port}/",
                f"http://mixed.test:{site.port}/",
                f"http://[::ffff:127.0.0.1]:{site.port}/",
            ):
                status, refused = raw_get(proxy, f"GET {url} HTTP/1.1\r\n\r\n".encode())
                assert status == 403, url
                assert "is not a public address" in refused
    finally:
        site.close()
    assert site.connections == 2
    assert v4.connections == before


def test_allow_hosts_name_entry_allows_that_name_only() -> None:
    policy = DestinationPolicy(
        allow_hosts=("wiki.internal:443",), resolver=lambda host, _: ["10.0.0.7"]
    )
    assert policy.resolve("wiki.internal", 443) == ["10.0.0.7"]
    for host, port in (("wiki.internal", 80), ("other.internal", 443), ("10.0.0.7", 443)):
        with pytest.raises(Exception, match="not a public address"):
            policy.resolve(host, port)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("127.0.0.1", "is not HOST:PORT"),
        ("127.0.0.1:0", "is not HOST:PORT"),
        ("::1:80", "[ADDRESS]:PORT"),
        ("a b:80", "no valid host"),
    ],
)
def test_allow_hosts_config_errors_name_the_entry(tmp_path: Path, entry, message) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[crawl]\nallow_hosts = ["{entry}"]\n')
    with pytest.raises(ConfigError, match=r"crawl\.allow_hosts") as info:
        load_config(config)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_allow_hosts_is_exit_2_on_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[crawl]\nallow_hosts = ["127.0.0.1"]\n')
    res = run_cli(config, "status")
    assert res.code == 2
    assert "crawl.allow_hosts" in res.err and len(res.err.strip().splitlines()) == 1


# ---- end to end: a crawl with the default policy and one allowed endpoint -------------------


class Site:
    """The allowed site: a page full of private subresources, and a redirector."""

    def __init__(self, page: bytes) -> None:
        self.hits: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append(self.path)
                parts = urlsplit(self.path)
                if parts.path == "/go":
                    self.send_response(302)
                    self.send_header("Location", parse_qs(parts.query)["to"][0])
                    body = b""
                else:
                    self.send_response(200 if parts.path == "/page.html" else 404)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    body = page if parts.path == "/page.html" else b"not here"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def targets(c: dict[str, Counter]) -> dict[str, str]:
    """Private destinations a page can name, by the reason the guard must give."""
    v4, v4b, v6 = c["v4"].port, c["v4b"].port, c["v6"].port
    return {
        f"http://127.0.0.1:{v4}/a": "127.0.0.1 is not a public address (loopback)",
        f"http://127.0.0.2:{v4b}/b": "127.0.0.2 is not a public address (loopback)",
        f"http://[::1]:{v6}/c": "::1 is not a public address (loopback)",
        f"http://localhost:{v4}/d": "localhost: ",
        f"http://[::ffff:127.0.0.1]:{v4}/e": "IPv4-mapped 127.0.0.1",
        f"http://2130706433:{v4}/f": "127.0.0.1 is not a public address",
        "http://10.1.2.3/g": "10.1.2.3 is not a public address (private)",
        "http://192.168.0.1/h": "(private)",
        "http://100.64.0.1/i": "shared address space",
        "http://169.254.169.254/latest/meta-data/": "cloud metadata service",
        "http://[fd12::1]/k": "fd12::1 is not a public address (private)",
    }


def page_aiming_at(urls: list[str]) -> bytes:
    tags = []
    for n, url in enumerate(urls):
        kind = ("img", "script", "iframe", "fetch")[n % 4]
        if kind == "fetch":
            tags.append(f"<script>fetch({json.dumps(url)}, {{mode: 'no-cors'}})</script>")
        elif kind == "iframe":
            tags.append(f'<iframe src="{url}"></iframe>')
        else:
            tags.append(f'<{kind} src="{url}"></{kind}>')
    local = [
        '<img src="file:///etc/hostname">',
        '<iframe src="chrome://version"></iframe>',
        '<img src="ftp://127.0.0.1/x.png">',
        '<iframe src="file:///etc/passwd"></iframe>',
    ]
    text = "<h1>Cited page</h1><p>The page itself is fine and says so 4402.</p>"
    return f"<!doctype html><title>cited</title>{text}{''.join(tags + local)}".encode()


@pytest.fixture(scope="module")
def crawl(counters, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ssrf")
    aims = targets(counters)
    site = Site(page_aiming_at(list(aims)))
    port = site.server.server_port
    config = tmp / "c.toml"
    config.write_text(
        f'[store]\nurl = "file://{tmp / "store"}"\n\n[crawl]\n'
        f'allow_hosts = ["127.0.0.1:{port}"]\nsettle_timeout = 3\npage_timeout = 15\n\n'
        "[politeness]\nper_host_delay = 0\nper_host_concurrency = 8\n"
    )
    redirects = {
        f"{site.base}/go?to={quote(to, safe='')}": to
        for to in [*aims, "file:///etc/passwd", "data:text/html,SECRET-7731", "chrome://version"]
    }
    sources = [f"{site.base}/page.html", *aims, *redirects]
    assert run_cli(config, "add", *sources).code == 0
    res = run_cli(config, "run-once", "--all")
    assert res.code == 0, res.err
    yield {
        "site": site,
        "store": tmp / "store",
        "captures": manifests_by_url(tmp / "store"),
        "aims": aims,
        "redirects": redirects,
        "out": res.out,
    }
    site.close()


def as_browser_writes(url: str) -> str:
    """``url`` as Chromium serialises it: numeric and IPv4-mapped hosts in canonical form."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host.isdigit():
        host = socket.inet_ntoa(socket.inet_aton(host))
    elif ":" in host:
        host = f"[{ipaddress.ip_address(host)}]"
    return parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host).geturl()


def blob(store: Path, sha: str) -> bytes:
    return (store / "blobs" / "sha256" / sha[:2] / sha[2:4] / sha).read_bytes()


@pytest.mark.browser
def test_no_private_target_saw_a_connection(crawl, counters) -> None:
    assert {name: s.connections for name, s in counters.items()} == {"v4": 0, "v4b": 0, "v6": 0}
    n = 1 + len(crawl["aims"]) + len(crawl["redirects"])
    assert f"captured {n} of {n} due sources" in crawl["out"]


@pytest.mark.browser
def test_private_sources_unreachable_refused(crawl) -> None:
    for url, why in crawl["aims"].items():
        capture = crawl["captures"][url]
        assert capture["verdict"] == "unreachable", url
        assert capture["http_status"] is None and capture["final_url"] is None
        assert capture["error"].startswith("refused: ") and why in capture["error"], url
        assert "raw" not in capture["artifacts"]
        refused = capture["refused"]
        assert refused and why in refused[0]["reason"]


@pytest.mark.browser
def test_redirect_to_private_target_refused_and_recorded(crawl) -> None:
    aims = crawl["aims"]
    for source, to in crawl["redirects"].items():
        capture = crawl["captures"][source]
        assert capture["verdict"] == "unreachable", source
        assert capture["http_status"] is None
        if to in aims:
            assert capture["error"].startswith("refused: ") and aims[to] in capture["error"]
            refused = capture["refused"]
            assert [r["url"] for r in refused] == [as_browser_writes(to)]
            assert aims[to] in refused[0]["reason"]
        else:  # file:, data:, chrome: — Chromium itself will not follow a redirect there
            assert "ERR_UNSAFE_REDIRECT" in capture["error"], (source, capture["error"])


@pytest.mark.browser
def test_page_with_private_subresources_captured_and_each_refusal_listed(crawl) -> None:
    capture = crawl["captures"][f"{crawl['site'].base}/page.html"]
    assert capture["verdict"] == "new" and capture["http_status"] == 200
    refused = {r["url"]: r["reason"] for r in capture["refused"]}
    for url, why in crawl["aims"].items():
        url = as_browser_writes(url)
        assert url in refused, url
        assert why in refused[url], (url, refused[url])
    # nothing from a refused target, file: or chrome: reached any stored artifact
    assert set(capture["artifacts"]) >= {"raw", "dom", "text", "warc"}
    for name, meta in capture["artifacts"].items():
        data = blob(crawl["store"], meta["sha256"])
        assert b"SECRET-7731" not in data and b"root:x:0:0" not in data, name
    assert blob(crawl["store"], capture["artifacts"]["text"]["sha256"]).count(b"4402") == 1
