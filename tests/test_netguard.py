"""DestinationPolicy: which addresses the crawler may reach (no network needed but loopback)."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from crawler.errors import CaptureError, DestinationRefused
from crawler.netguard import DestinationPolicy

DEFAULT = DestinationPolicy()
PERMISSIVE = DestinationPolicy(allow_private_networks=True)

NON_GLOBAL = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "shared address space"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.1.1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "private"),
    ("224.0.0.1", "multicast"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", ""),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fd00::1", "private"),
    ("fc00::1", "private"),
    ("fe80::1", "link-local"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "::ffff:127.0.0.1 is not a public address (IPv4-mapped 127.0.0.1, "),
    ("::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254, cloud metadata"),
    ("::ffff:100.64.0.1", "IPv4-mapped 100.64.0.1"),
    ("2002:7f00:1::", "embeds 127.0.0.1"),  # 6to4
    ("64:ff9b::a00:1", "embeds 10.0.0.1"),  # NAT64
    ("::127.0.0.1", "IPv4-compatible"),
    ("2001:db8::1", ""),
]
GLOBAL = [
    "8.8.8.8",
    "1.1.1.1",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "2002:808:808::",  # 6to4 of 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8 (IPv6-only networks with DNS64)
]


@pytest.mark.parametrize(("ip", "why"), NON_GLOBAL)
def test_non_global_address_refused_by_default(ip: str, why: str) -> None:
    with pytest.raises(DestinationRefused, match="is not a public address") as info:
        DEFAULT.check_address(ip)
    message = str(info.value)
    assert "\n" not in message
    assert why in message


@pytest.mark.parametrize(("ip", "_why"), NON_GLOBAL)
def test_non_global_address_allowed_with_private_networks(ip: str, _why: str) -> None:
    PERMISSIVE.check_address(ip)


@pytest.mark.parametrize("ip", GLOBAL)
@pytest.mark.parametrize("policy", [DEFAULT, PERMISSIVE])
def test_global_address_allowed(policy: DestinationPolicy, ip: str) -> None:
    policy.check_address(ip)


def test_refusal_message_names_address_and_reason() -> None:
    with pytest.raises(DestinationRefused) as info:
        DEFAULT.check_address("127.0.0.1")
    assert str(info.value) == "127.0.0.1 is not a public address (loopback)"


@pytest.mark.parametrize("policy", [DEFAULT, PERMISSIVE])
@pytest.mark.parametrize("garbage", ["", "localhost", "1.2.3", "::g", "127.0.0.1\n"])
def test_check_address_rejects_non_addresses(policy: DestinationPolicy, garbage: str) -> None:
    with pytest.raises(DestinationRefused, match="not an IP address"):
        policy.check_address(garbage)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://ftp.example.org/file",
        "data:text/html,<h1>hi</h1>",
        "chrome://settings",
        "javascript:alert(1)",
        "gopher://example.org/",
        "example.org/path",
    ],
)
@pytest.mark.parametrize("policy", [DEFAULT, PERMISSIVE])
def test_non_http_schemes_refused(policy: DestinationPolicy, url: str) -> None:
    with pytest.raises(DestinationRefused, match="scheme"):
        policy.check_url(url)


@pytest.mark.parametrize("url", ["http://", "https:///path", "http://:80/", "http://a:99999/"])
def test_urls_without_usable_host_or_port_refused(url: str) -> None:
    with pytest.raises(DestinationRefused):
        PERMISSIVE.check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "https://127.0.0.1:8443/x",
        "http://[::1]:8080/",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3./",
        "HTTP://192.168.0.1/",
        # forms Chromium's URL parser reads as IPv4 addresses
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://user:pw@127.0.0.1:80/",
    ],
)
def test_literal_private_hosts_refused_without_resolving(url: str) -> None:
    with pytest.raises(DestinationRefused, match="is not a public address"):
        DEFAULT.check_url(url)
    PERMISSIVE.check_url(url)


@pytest.mark.parametrize(
    "url", ["http://8.8.8.8/", "https://[2001:4860:4860::8888]/", "https://example.org/a?b#c"]
)
def test_public_urls_pass_check_url(url: str) -> None:
    DEFAULT.check_url(url)  # a DNS name is not resolved here: no network needed


def test_localhost_resolves_to_loopback_and_is_refused() -> None:
    expected = r"^localhost: 127\.0\.0\.1 is not a public address \(loopback\)$"
    with pytest.raises(DestinationRefused, match=expected):
        DEFAULT.resolve("localhost", 80)
    assert "127.0.0.1" in PERMISSIVE.resolve("localhost", 80)


def test_resolve_literal_and_numeric_forms() -> None:
    with pytest.raises(DestinationRefused, match=r"127\.0\.0\.1 is not a public"):
        DEFAULT.resolve("2130706433", 80)
    assert PERMISSIVE.resolve("2130706433", 80) == ["127.0.0.1"]
    assert PERMISSIVE.resolve("[::1]", 80) == ["::1"]
    assert DEFAULT.resolve("8.8.8.8", 53) == ["8.8.8.8"]  # literal: no DNS query


def test_resolve_async_refuses_and_returns_checked_addresses() -> None:
    with pytest.raises(DestinationRefused, match="localhost"):
        asyncio.run(DEFAULT.resolve_async("localhost", 80))
    assert asyncio.run(PERMISSIVE.resolve_async("127.0.0.1", 80)) == ["127.0.0.1"]


@pytest.mark.parametrize("policy", [DEFAULT, PERMISSIVE])
def test_unresolvable_host_is_capture_error_not_refusal(policy: DestinationPolicy) -> None:
    # ".invalid" never resolves (RFC 6761); a resolver without network fails fast, a slow one
    # is cut off by the timeout.
    with pytest.raises(CaptureError, match="cannot resolve") as info:
        policy.resolve("no-such-host.invalid", 80, timeout=5)
    assert not isinstance(info.value, DestinationRefused)
    with pytest.raises(CaptureError, match="cannot resolve") as info:
        asyncio.run(policy.resolve_async("no-such-host.invalid", 80, timeout=5))
    assert not isinstance(info.value, DestinationRefused)


@pytest.mark.parametrize("host", ["", "a b", "evil.com/@127.0.0.1", "x\r\ny"])
def test_resolve_rejects_malformed_host_names(host: str) -> None:
    with pytest.raises(DestinationRefused, match="not a valid host name"):
        PERMISSIVE.resolve(host, 80)


def test_policy_is_frozen() -> None:
    with pytest.raises(AttributeError):
        DEFAULT.allow_private_networks = True  # type: ignore[misc]


def fake_resolver(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host not in answers:
            return real(host, port, *args, **kwargs)
        return [info for a in answers[host] for info in real(a, port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_name_refused_if_any_address_is_private(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"mixed.test": ["8.8.8.8", "10.0.0.1"], "public.test": ["8.8.8.8", "1.1.1.1"]}
    fake_resolver(monkeypatch, answers)
    with pytest.raises(DestinationRefused, match=r"^mixed\.test: 10\.0\.0\.1 is not a public"):
        DEFAULT.resolve("mixed.test", 443)
    with pytest.raises(DestinationRefused, match=r"^mixed\.test: 10\.0\.0\.1"):
        asyncio.run(DEFAULT.resolve_async("mixed.test", 443))
    assert DEFAULT.resolve("public.test", 443) == ["8.8.8.8", "1.1.1.1"]
    assert PERMISSIVE.resolve("mixed.test", 443) == ["8.8.8.8", "10.0.0.1"]


def test_hung_resolver_is_cut_off_by_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = socket.getaddrinfo

    def hanging(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "slow.test":
            release.wait(30)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        with pytest.raises(CaptureError, match=r"slow\.test: timed out after 0\.2s"):
            DEFAULT.resolve("slow.test", 80, timeout=0.2)
        with pytest.raises(CaptureError, match=r"slow\.test: timed out after 0\.2s"):
            asyncio.run(DEFAULT.resolve_async("slow.test", 80, timeout=0.2))
    finally:
        release.set()
