"""EgressProxy against real loopback servers, then with real Chromium driven by Playwright."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crawler.egress_proxy import EgressProxy, Refusal
from crawler.errors import DestinationRefused
from crawler.netguard import DestinationPolicy

CHROMIUM = "/usr/bin/chromium"
DEFAULT = DestinationPolicy()
PERMISSIVE = DestinationPolicy(allow_private_networks=True)
Route = tuple[int, list[tuple[str, str]], bytes]


class CountingServer(ThreadingHTTPServer):
    """An HTTP/1.1 server on loopback that counts connections and records every request."""

    daemon_threads = True

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)
        self.scheme = "http"
        if tls is not None:  # handshake in the handler thread, not in accept()
            self.socket = tls.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
            self.scheme = "https"
        self.routes: dict[str, Route | Callable[[_Handler], Route]] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # unblocks handlers that wait for the test to end
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{self.authority}{path}"

    @property
    def authority(self) -> str:
        host, port = self.server_address[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def paths(self) -> list[str]:
        with self.lock:
            return [path for _, path, _, _ in self.requests]

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        pass  # the proxy hanging up on a slow handler is expected in some tests

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CountingServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self) -> None:
        body = b""
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size + 2)[:-2]
            self.rfile.readline()
        elif length := int(self.headers.get("Content-Length", "0")):
            body = self.rfile.read(length)
        with self.server.lock:
            self.server.requests.append((self.command, self.path, dict(self.headers), body))
        route = self.server.routes.get(self.path.split("?")[0])
        if callable(route):
            route = route(self)
        status, headers, payload = route or (404, [], b"not found")
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if not {"transfer-encoding", "content-length"} & {name.lower() for name, _ in headers}:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_HEAD = _serve  # noqa: N815 - the names http.server calls


@pytest.fixture
def server_factory() -> Iterator[Callable[..., CountingServer]]:
    servers: list[CountingServer] = []

    def make(host: str = "127.0.0.1", port: int = 0, **kwargs: object) -> CountingServer:
        servers.append(CountingServer(host, port, **kwargs))  # type: ignore[arg-type]
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def server(server_factory: Callable[..., CountingServer]) -> CountingServer:
    return server_factory()


@pytest.fixture
def proxy_factory() -> Iterator[Callable[..., EgressProxy]]:
    proxies: list[EgressProxy] = []

    def make(policy: DestinationPolicy = DEFAULT, **kwargs: float) -> EgressProxy:
        proxies.append(EgressProxy(policy, **kwargs))
        proxies[-1].start()
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.stop()


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def parse_reply(data: bytes) -> Reply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]
    return Reply(int(lines[0].split(" ")[1]), headers, body)  # type: ignore[arg-type]


def open_client(proxy: EgressProxy) -> socket.socket:
    assert proxy.url is not None
    host, port = proxy.url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)), timeout=10)
    client.settimeout(10)  # a hang fails the test instead of blocking it
    return client


def read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def exchange(proxy: EgressProxy, request: bytes) -> Reply:
    """Send raw bytes to the proxy and read its answer until it closes the connection."""
    with open_client(proxy) as client:
        client.sendall(request)
        return parse_reply(read_to_eof(client))


def get(url: str, *extra: str) -> bytes:
    host = url.split("/")[2]
    lines = [f"GET {url} HTTP/1.1", f"Host: {host}", *extra, "", ""]
    return "\r\n".join(lines).encode()


PAGE: Route = (200, [("Content-Type", "text/html")], b"<p>hello</p>")


@dataclass(frozen=True)
class OnlyOneAddress(DestinationPolicy):
    """Permits exactly one address: stands in for "public" on a machine that has only loopback."""

    only: str = "127.0.0.1"

    def check_address(self, ip: str) -> None:
        if ip != self.only:
            raise DestinationRefused(f"{ip} is not a public address (test policy)")


# ---- the default policy refuses loopback, and never connects to it ---------------------------


def test_plain_http_to_loopback_refused(server, proxy_factory) -> None:
    server.routes["/"] = PAGE
    proxy = proxy_factory()
    reply = exchange(proxy, get(server.url("/")))
    assert reply.status == 403
    reason = "127.0.0.1 is not a public address (loopback)"
    assert reply.header("X-Citearchive-Refused") == [reason]
    assert reason in reply.body.decode()
    assert proxy.refusals() == [Refusal(server.url("/"), reason)]
    assert (server.connections, server.requests) == (0, [])


def test_connect_to_loopback_refused(server, proxy_factory) -> None:
    proxy = proxy_factory()
    target = server.authority
    reply = exchange(proxy, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    assert reply.status == 403
    assert reply.header("X-Citearchive-Refused") == ["127.0.0.1 is not a public address (loopback)"]
    assert [r.target for r in proxy.refusals()] == [target]
    assert server.connections == 0


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("http://localhost:{port}/", "localhost: 127.0.0.1 is not a public address"),
        ("http://2130706433:{port}/", "127.0.0.1 is not a public address"),
        ("http://[::ffff:127.0.0.1]:{port}/", "IPv4-mapped 127.0.0.1"),
        ("ftp://127.0.0.1:{port}/", "scheme 'ftp' is not allowed"),
        ("https://127.0.0.1:{port}/", "127.0.0.1 is not a public address"),
    ],
)
def test_other_spellings_of_loopback_refused(server, proxy_factory, template, why) -> None:
    proxy = proxy_factory()
    url = template.format(port=server.server_address[1])
    reply = exchange(proxy, get(url))
    assert reply.status == 403
    assert why in reply.header("X-Citearchive-Refused")[0]
    assert [r.target for r in proxy.refusals()] == [url]
    assert server.connections == 0


def test_connect_to_localhost_name_refused(server, proxy_factory) -> None:
    proxy = proxy_factory()
    target = f"localhost:{server.server_address[1]}"
    reply = exchange(proxy, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
    assert reply.status == 403
    assert server.connections == 0
    assert proxy.refusals()[0].reason.startswith("localhost: 127.0.0.1")


# ---- with allow_private_networks the proxy forwards -----------------------------------------


def test_plain_get_forwarded_in_origin_form_with_connection_close(server, proxy_factory) -> None:
    server.routes["/page"] = (
        200,
        [
            ("Content-Type", "text/html"),
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=30"),
            ("X-Test", "yes"),
            ("X-Citearchive-Refused", "spoofed by the site"),
        ],
        b"<p>hello</p>",
    )
    proxy = proxy_factory(PERMISSIVE)
    reply = exchange(
        proxy,
        get(
            server.url("/page?q=1"),
            "Proxy-Connection: keep-alive",
            "Proxy-Authorization: Basic eDp5",
            "Keep-Alive: 300",
            "Cookie: a=b",
            "Connection: keep-alive, X-Hop",
            "X-Hop: drop me",
        ),
    )
    assert reply.status == 200
    assert reply.body == b"<p>hello</p>"
    assert reply.header("Connection") == ["close"]
    assert reply.header("Keep-Alive") == []
    assert reply.header("X-Test") == ["yes"]
    assert reply.header("X-Citearchive-Refused") == []
    [(method, path, headers, _)] = server.requests
    assert (method, path) == ("GET", "/page?q=1")
    assert headers["Host"] == server.authority
    assert headers["Connection"] == "close"
    assert headers["Cookie"] == "a=b"
    for dropped in ("Proxy-Connection", "Proxy-Authorization", "Keep-Alive", "X-Hop"):
        assert dropped not in headers
    assert proxy.refusals() == []


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_response_ends_when_body_ends_even_if_server_keeps_connection(
    server, proxy_factory, framing
) -> None:
    # The server ignores "Connection: close"; the proxy must still end the client connection
    # once the body is complete, not when the server finally hangs up (the client's 10 s
    # socket timeout would fail the test first; the proxy's idle timeout is 60 s).
    headers = [("Connection", "keep-alive")]
    body = b"0123456789"
    if framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        body = b"4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n"
    server.routes["/"] = (200, headers, body)
    proxy = proxy_factory(PERMISSIVE)
    reply = exchange(proxy, get(server.url("/")))
    assert reply.status == 200
    assert reply.body == body
    assert reply.header("Connection") == ["close"]


def test_head_response_ends_after_head(server, proxy_factory) -> None:
    # Content-Length of a HEAD answer announces no body: waiting for one would hang
    server.routes["/"] = (200, [("Connection", "keep-alive"), ("Content-Length", "1000")], b"")
    proxy = proxy_factory(PERMISSIVE)
    reply = exchange(proxy, get(server.url("/")).replace(b"GET", b"HEAD", 1))
    assert (reply.status, reply.header("Content-Length"), reply.body) == (200, ["1000"], b"")


def test_expect_100_continue_passes_interim_response(server, proxy_factory) -> None:
    server.routes["/upload"] = (200, [], b"stored")
    proxy = proxy_factory(PERMISSIVE)
    with open_client(proxy) as client:
        client.sendall(
            f"POST {server.url('/upload')} HTTP/1.1\r\nContent-Length: 4\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += client.recv(1)
        assert interim.startswith(b"HTTP/1.1 100")
        client.sendall(b"data")
        reply = parse_reply(read_to_eof(client))
    assert (reply.status, reply.body) == (200, b"stored")
    assert [body for *_, body in server.requests] == [b"data"]


def test_proxy_connects_to_the_address_it_checked(server_factory, proxy_factory, monkeypatch):
    # DNS rebinding: the first answer for a name is allowed, later answers point elsewhere.
    # The proxy must connect to the address it checked, not look the name up again.
    allowed = server_factory("127.0.0.1")
    other = server_factory("127.0.0.2", allowed.server_address[1])
    allowed.routes["/"] = (200, [], b"checked address")
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding_getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "rebind.test":
            host = next(answers, "127.0.0.2")
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    proxy = proxy_factory(OnlyOneAddress("127.0.0.1"))
    reply = exchange(proxy, get(f"http://rebind.test:{allowed.server_address[1]}/"))
    assert (reply.status, reply.body) == (200, b"checked address")
    assert allowed.paths() == ["/"]
    assert other.connections == 0
    assert allowed.requests[0][2]["Host"] == f"rebind.test:{allowed.server_address[1]}"


def test_request_bodies_forwarded(server, proxy_factory) -> None:
    server.routes["/form"] = (201, [], b"created")
    proxy = proxy_factory(PERMISSIVE)
    url = server.url("/form")
    fixed = f"POST {url} HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".encode()
    chunked = (
        f"POST {url} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"
    ).encode()
    assert exchange(proxy, fixed).status == 201
    assert exchange(proxy, chunked).status == 201
    assert [body for *_, body in server.requests] == [b"hello", b"abcde"]


def test_two_servers_over_separate_connections(server_factory, proxy_factory) -> None:
    first, second = server_factory(), server_factory()
    first.routes["/"] = (200, [], b"first")
    second.routes["/"] = (200, [], b"second")
    proxy = proxy_factory(PERMISSIVE)
    assert exchange(proxy, get(first.url("/"))).body == b"first"
    assert exchange(proxy, get(second.url("/"))).body == b"second"
    assert (first.paths(), second.paths()) == (["/"], ["/"])


def test_ipv6_loopback_refused_then_forwarded(server_factory, proxy_factory) -> None:
    server = server_factory("::1")
    server.routes["/"] = (200, [], b"over IPv6")
    refusing, allowing = proxy_factory(), proxy_factory(PERMISSIVE)
    connect = f"CONNECT {server.authority} HTTP/1.1\r\n\r\n".encode()
    for request in (get(server.url("/")), connect):
        reply = exchange(refusing, request)
        assert reply.header("X-Citearchive-Refused") == ["::1 is not a public address (loopback)"]
    assert server.connections == 0
    assert exchange(allowing, get(server.url("/"))).body == b"over IPv6"
    assert server.requests[0][2]["Host"] == server.authority
    with open_client(allowing) as client:
        client.sendall(connect + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_to_eof(client)
    assert data.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200")
    assert data.endswith(b"over IPv6")


def test_only_one_request_per_client_connection(server_factory, proxy_factory) -> None:
    first, second = server_factory(), server_factory()
    first.routes["/"] = (200, [], b"first")
    proxy = proxy_factory(PERMISSIVE)
    reply = exchange(proxy, get(first.url("/")) + get(second.url("/")))  # pipelined
    assert reply.body == b"first"
    assert (first.paths(), second.connections) == (["/"], 0)


def test_connect_tunnel_carries_bytes_both_ways(server, proxy_factory) -> None:
    server.routes["/tunnelled"] = (200, [], b"through the tunnel")
    proxy = proxy_factory(PERMISSIVE)
    with open_client(proxy) as client:
        client.sendall(f"CONNECT {server.authority} HTTP/1.1\r\n\r\n".encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += client.recv(1)
        assert head == b"HTTP/1.1 200 Connection established\r\n\r\n"
        client.sendall(b"GET /tunnelled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = parse_reply(read_to_eof(client))
    assert (reply.status, reply.body) == (200, b"through the tunnel")
    assert server.paths() == ["/tunnelled"]


def test_stop_closes_open_tunnels_and_is_idempotent(server, proxy_factory) -> None:
    proxy = proxy_factory(PERMISSIVE)
    port = int(str(proxy.url).rsplit(":", 1)[1])
    with open_client(proxy) as client:
        client.sendall(f"CONNECT {server.authority} HTTP/1.1\r\n\r\n".encode())
        assert client.recv(100).startswith(b"HTTP/1.1 200")
        proxy.stop()
        assert read_to_eof(client) == b""
    proxy.stop()
    assert proxy.url is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_idle_tunnel_is_closed(server, proxy_factory) -> None:
    proxy = proxy_factory(PERMISSIVE, idle_timeout=0.3)
    with open_client(proxy) as client:
        client.sendall(f"CONNECT {server.authority} HTTP/1.1\r\n\r\n".encode())
        assert read_to_eof(client) == b"HTTP/1.1 200 Connection established\r\n\r\n"
    assert server.connections == 1


def test_context_manager_starts_and_stops(server) -> None:
    server.routes["/"] = (200, [], b"ok")
    with EgressProxy(PERMISSIVE) as proxy:
        url = proxy.url
        assert url is not None and url.startswith("http://127.0.0.1:")
        assert exchange(proxy, get(server.url("/"))).body == b"ok"
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


# ---- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: SERVER\r\n\r\n", 400),  # origin-form: not a proxy request
        (b"GET http://SERVER/ HTTP/2.0\r\n\r\n", 400),
        (b"GET http://SERVER/ HTTP/1.1\r\nbad header\r\n\r\n", 400),
        (b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT 127.0.0.1:99999 HTTP/1.1\r\n\r\n", 400),
        (
            b"POST http://SERVER/ HTTP/1.1\r\nContent-Length: 1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"GET http://SERVER/ HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    ],
)
def test_malformed_requests(server, proxy_factory, request_bytes, status) -> None:
    proxy = proxy_factory(PERMISSIVE)
    reply = exchange(proxy, request_bytes.replace(b"SERVER", server.authority.encode()))
    assert reply.status == status
    assert reply.header("X-Citearchive-Error")
    assert server.connections == 0


def test_unresolvable_host_is_502(proxy_factory) -> None:
    proxy = proxy_factory(PERMISSIVE, connect_timeout=5)
    reply = exchange(proxy, get("http://no-such-host.invalid/"))
    assert reply.status == 502
    assert "cannot resolve no-such-host.invalid" in reply.header("X-Citearchive-Error")[0]
    assert proxy.refusals() == []


def test_closed_port_is_502(proxy_factory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proxy = proxy_factory(PERMISSIVE)
    for request in (
        get(f"http://127.0.0.1:{port}/"),
        f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode(),
    ):
        reply = exchange(proxy, request)
        assert reply.status == 502
        assert "cannot connect to 127.0.0.1" in reply.header("X-Citearchive-Error")[0]


def test_silent_upstream_is_504_after_idle_timeout(server, proxy_factory) -> None:
    def hang(handler: _Handler) -> Route:
        handler.server.release.wait(30)
        return (200, [], b"too late")

    server.routes["/slow"] = hang
    proxy = proxy_factory(PERMISSIVE, idle_timeout=0.5)
    reply = exchange(proxy, get(server.url("/slow")))
    assert reply.status == 504
    assert "did not answer" in reply.header("X-Citearchive-Error")[0]


def test_policy_errors_are_destination_refused() -> None:
    # the proxy's 403 comes from these: the same exception the crawler handles elsewhere
    with pytest.raises(DestinationRefused):
        DEFAULT.check_url("http://127.0.0.1/")


# ---- real Chromium through the proxy ---------------------------------------------------------


@pytest.fixture
def chromium() -> Iterator[Callable[..., object]]:
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: the browser tests need it"
    from playwright.sync_api import sync_playwright

    browsers = []
    with sync_playwright() as playwright:

        def launch(proxy: EgressProxy, **context: object) -> object:
            args = [
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--proxy-bypass-list=<-loopback>",
            ]
            if os.geteuid() == 0:
                args.append("--no-sandbox")
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=args, proxy={"server": str(proxy.url)}
            )
            browsers.append(browser)
            return browser.new_context(**context).new_page()

        yield launch
        for browser in browsers:
            browser.close()


HTML = b"""<!doctype html><html><head><link rel="stylesheet" href="/style.css"></head>
<body><img src="/pixel.gif" alt="">
<script>
fetch("/data.json").then(r => r.json()).then(d => { document.body.dataset.fetched = d.ok; });
</script></body></html>"""
GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c000000000100010000020144003b"
)


def serve_page(server: CountingServer) -> None:
    server.routes.update(
        {
            "/page.html": (200, [("Content-Type", "text/html")], HTML),
            "/style.css": (200, [("Content-Type", "text/css")], b"body { color: rgb(1, 2, 3); }"),
            "/pixel.gif": (200, [("Content-Type", "image/gif")], GIF),
            "/data.json": (200, [("Content-Type", "application/json")], b'{"ok": "yes"}'),
        }
    )


@pytest.mark.browser
def test_browser_refused_loopback_page_never_reaches_server(
    server, proxy_factory, chromium
) -> None:
    serve_page(server)
    proxy = proxy_factory()
    page = chromium(proxy)
    response = page.goto(server.url("/page.html"))
    assert response is not None and response.status == 403
    assert "not a public address" in response.headers["x-citearchive-refused"]
    with pytest.raises(Exception, match="ERR_TUNNEL_CONNECTION_FAILED"):
        page.goto(f"https://{server.authority}/page.html")
    assert (server.connections, server.requests) == (0, [])
    refused = {r.target for r in proxy.refusals()}  # Chromium also asks for /favicon.ico
    assert {server.url("/page.html"), server.authority} <= refused


@pytest.mark.browser
def test_browser_localhost_refused(server, proxy_factory, chromium) -> None:
    serve_page(server)
    proxy = proxy_factory()
    url = f"http://localhost:{server.server_address[1]}/page.html"
    response = chromium(proxy).goto(url)
    assert response is not None and response.status == 403
    assert (server.connections, server.requests) == (0, [])
    assert url in {r.target for r in proxy.refusals()}


@pytest.mark.browser
def test_browser_loads_page_and_subresources_through_proxy(server, proxy_factory, chromium) -> None:
    serve_page(server)
    proxy = proxy_factory(PERMISSIVE)
    page = chromium(proxy)
    response = page.goto(server.url("/page.html"))
    assert response is not None and response.status == 200
    page.wait_for_selector("body[data-fetched=yes]", timeout=10_000)
    assert page.evaluate("getComputedStyle(document.body).color") == "rgb(1, 2, 3)"
    assert page.evaluate("document.images[0].naturalWidth") == 1
    assert set(server.paths()) >= {"/page.html", "/style.css", "/pixel.gif", "/data.json"}
    # Chromium itself asks for keep-alive: "close" proves each request went through the proxy
    with server.lock:
        assert {headers.get("Connection") for *_, headers, _ in server.requests} == {"close"}


@pytest.mark.browser
def test_browser_follows_redirect_to_second_server(server_factory, proxy_factory, chromium) -> None:
    first, second = server_factory(), server_factory()
    first.routes["/start"] = (302, [("Location", second.url("/landing"))], b"")
    second.routes["/landing"] = (
        200,
        [("Content-Type", "text/html")],
        b'<link rel="stylesheet" href="/b.css"><p>landed</p>',
    )
    second.routes["/b.css"] = (200, [("Content-Type", "text/css")], b"p { color: red; }")
    proxy = proxy_factory(PERMISSIVE)
    page = chromium(proxy)
    response = page.goto(first.url("/start"))
    assert response is not None and response.status == 200
    assert page.url == second.url("/landing")
    assert first.paths() == ["/start"]
    assert set(second.paths()) >= {"/landing", "/b.css"}


@pytest.mark.browser
def test_browser_redirect_hop_to_refused_address_is_stopped(
    server_factory, proxy_factory, chromium
) -> None:
    # Playwright's page.route never sees redirect hops; the proxy does.
    first, second = server_factory("127.0.0.1"), server_factory("127.0.0.2")
    first.routes["/start"] = (302, [("Location", second.url("/landing"))], b"")
    second.routes["/landing"] = PAGE
    proxy = proxy_factory(OnlyOneAddress())
    response = chromium(proxy).goto(first.url("/start"))
    assert response is not None and response.status == 403
    assert first.paths() == ["/start"]
    assert (second.connections, second.requests) == (0, [])
    assert second.url("/landing") in {r.target for r in proxy.refusals()}
    assert not any(r.target.startswith(first.url("/")) for r in proxy.refusals())


@dataclass(frozen=True)
class RecordingPolicy(DestinationPolicy):
    """The default policy, remembering every address it was asked about."""

    checked: list[str] = field(default_factory=list, compare=False)

    def check_address(self, ip: str) -> None:
        self.checked.append(ip)
        super().check_address(ip)


def self_signed_tls(tmp_path) -> ssl.SSLContext:  # type: ignore[no-untyped-def]
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


@pytest.mark.browser
def test_browser_https_page_through_connect_tunnel(
    server_factory, proxy_factory, chromium, tmp_path
) -> None:
    server = server_factory(tls=self_signed_tls(tmp_path))
    serve_page(server)
    refusing = proxy_factory(RecordingPolicy())
    with pytest.raises(Exception, match="ERR_TUNNEL_CONNECTION_FAILED"):
        chromium(refusing).goto(server.url("/page.html"))
    assert server.connections == 0
    policy = RecordingPolicy(allow_private_networks=True)
    page = chromium(proxy_factory(policy), ignore_https_errors=True)
    response = page.goto(server.url("/page.html"))
    assert response is not None and response.status == 200
    page.wait_for_selector("body[data-fetched=yes]", timeout=10_000)
    assert set(server.paths()) >= {"/page.html", "/style.css", "/pixel.gif", "/data.json"}
    assert "127.0.0.1" in policy.checked  # the tunnel was the proxy's, and it was checked
