"""Destination policy: which network addresses the crawler may talk to.

Every outgoing connection the crawler (or the browser, through ``crawler.egress_proxy``) makes
is checked here. By default only globally routable unicast addresses are allowed; loopback,
private, link-local (including the cloud metadata address 169.254.169.254), shared address space
(100.64.0.0/10), multicast, reserved and unspecified addresses are refused, as are IPv6 forms
that embed such an IPv4 address (IPv4-mapped, 6to4, NAT64). ``allow_private_networks = true``
in the config lifts the address check (for tests against servers on loopback);
``allow_hosts = ["HOST:PORT", ...]`` lifts it for those endpoints only (an intranet wiki, a
test site), everything else staying refused.

``check_url`` never touches the network; ``resolve``/``resolve_async`` resolve a host name and
refuse it if *any* of its addresses is refused, so a caller that connects to one of the returned
addresses connects to an address that was checked (no DNS-rebinding window).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from crawler.errors import CaptureError, DestinationRefused

__all__ = ["ALLOWED_SCHEMES", "DestinationPolicy", "parse_endpoint"]

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# What a WHATWG URL parser (and so Chromium) reads as an IPv4 address: 1-4 dot-separated
# decimal, octal or hex numbers ("2130706433", "0x7f.1", "0177.0.0.1").
_NUMERIC_HOST = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}")

# getaddrinfo cannot be cancelled; a small shared pool bounds the threads a hung resolver can
# pin, and callers stop waiting after their timeout.
_DNS_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="netguard-dns")


def _why_not_global(ip: IPAddress) -> str | None:
    """The reason ``ip`` is not a public unicast address, or None if it is one."""
    if ip in _METADATA:
        return "cloud metadata service"
    for flag in ("loopback", "unspecified", "link_local", "multicast"):
        if getattr(ip, f"is_{flag}"):
            return flag.replace("_", "-")
    if isinstance(ip, ipaddress.IPv4Address):
        if ip in _SHARED:
            return "shared address space 100.64.0.0/10"
        if ip.is_reserved:
            return "reserved"
    else:
        if ip.is_site_local:
            return "site-local"
        if ip in _IPV4_COMPATIBLE:
            return "deprecated IPv4-compatible IPv6"
        embedded = ip.sixtofour
        if embedded is None and any(ip in net for net in _NAT64):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:  # 6to4 / NAT64: as public as the IPv4 address inside
            why = _why_not_global(embedded)
            return None if why is None else f"embeds {embedded}, {why}"
    if ip.is_private:
        return "private"
    return None if ip.is_global else "reserved"


def _one_line(text: str, limit: int = 200) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _numeric_ipv4(host: str) -> str | None:
    """The dotted IPv4 address a numeric host such as "2130706433" stands for, else None."""
    if not _NUMERIC_HOST.fullmatch(host):
        return None
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None


def parse_endpoint(text: str) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" -> (normalised host, port); ValueError names the problem."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) < 65536:
        raise ValueError(f"{_one_line(text)!r} is not HOST:PORT")
    if host.startswith("[") != host.endswith("]") or (":" in host and not host.startswith("[")):
        raise ValueError(f"{_one_line(text)!r}: write an IPv6 address as [ADDRESS]:PORT")
    host = host.strip("[]").rstrip(".").lower()
    if not host or any(ch.isspace() or ch in "/\\@#?[]" for ch in host):
        raise ValueError(f"{_one_line(text)!r} has no valid host")
    with contextlib.suppress(ValueError):  # a DNS name stays as it is
        host = str(ipaddress.ip_address(host))
    return host, int(port)


# A resolver stand-in: (host, port) -> addresses. OSError means "cannot resolve".
Resolver = Callable[[str, int], Sequence[str]]


@dataclass(frozen=True)
class DestinationPolicy:
    """Which destinations outgoing requests may reach.

    Raises ``DestinationRefused`` for a refused destination and ``CaptureError`` when a host
    cannot be resolved (that is "unreachable", not a policy decision).
    """

    allow_private_networks: bool = False
    # "HOST:PORT" endpoints reachable whatever their address; a name listed here may resolve
    # to any address, an address listed here is allowed on that port only.
    allow_hosts: tuple[str, ...] = ()
    # Replaces the system resolver (getaddrinfo) when set: tests, or a pinned resolver.
    resolver: Resolver | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        endpoints = frozenset(parse_endpoint(e) for e in self.allow_hosts)
        object.__setattr__(self, "_endpoints", endpoints)

    def _listed(self, host: str, port: int | None) -> bool:
        if port is None or not self._endpoints:  # type: ignore[attr-defined]
            return False
        host = host.strip("[]").rstrip(".").lower()
        with contextlib.suppress(ValueError):
            host = str(ipaddress.ip_address(host))
        return (host, port) in self._endpoints  # type: ignore[attr-defined]

    def check_url(self, url: str) -> None:
        """Refuse ``url`` unless it is http(s) with a host; check a literal IP host. No DNS."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError as exc:
            raise DestinationRefused(f"{_one_line(url)} is not a valid URL ({exc})") from exc
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise DestinationRefused(
                f"{_one_line(url)}: scheme {_one_line(scheme, 40)!r} is not allowed "
                "(only http and https)"
            )
        if not host:
            raise DestinationRefused(f"{_one_line(url)} has no host")
        self.check_host(host, parts.port or DEFAULT_PORTS[scheme])

    def check_host(self, host: str, port: int | None = None) -> None:
        """Refuse a host name that is not a valid DNS name or that is a refused literal IP."""
        host = host.strip("[]").rstrip(".").lower()
        if not host or any(ch.isspace() or ord(ch) < 0x20 or ch in "/\\@#?" for ch in host):
            raise DestinationRefused(f"{_one_line(host)!r} is not a valid host name")
        literal = _numeric_ipv4(host)
        if literal is None:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                return  # a DNS name: resolve() decides
            literal = host
        self._check_endpoint(literal, port)

    def _check_endpoint(self, ip: str, port: int | None) -> None:
        """An address on a port: allowed if listed in ``allow_hosts``, else ``check_address``."""
        if not self._listed(ip, port):
            self.check_address(ip)

    def check_address(self, ip: str) -> None:
        """Refuse ``ip`` unless it is a global unicast address (or private networks are allowed).

        The one place an address is judged: ``check_url`` and ``resolve`` call it too.
        """
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError as exc:
            raise DestinationRefused(f"{_one_line(ip)!r} is not an IP address") from exc
        if self.allow_private_networks:
            return
        mapped = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) else None
        why = _why_not_global(mapped if mapped is not None else addr)
        if why is not None:
            if mapped is not None:
                why = f"IPv4-mapped {mapped}, {why}"
            raise DestinationRefused(f"{_one_line(ip)} is not a public address ({why})")

    def _addresses(self, host: str, port: int, found: Sequence[str]) -> list[str]:
        seen = list(dict.fromkeys(found))
        if not seen:
            raise CaptureError(f"cannot resolve {_one_line(host)}: no addresses")
        if self._listed(host, port):
            return seen  # an allowed name: whatever it resolves to
        for address in seen:
            try:
                self._check_endpoint(address, port)
            except DestinationRefused as exc:
                if host.strip("[]") == address:
                    raise
                raise DestinationRefused(f"{_one_line(host)}: {exc}") from None
        return seen

    def _lookup(self, host: str, port: int) -> list[str]:
        try:
            if self.resolver is not None:
                return [str(a) for a in self.resolver(host, port)]
            infos = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
            return [str(info[4][0]) for info in infos]
        except (OSError, UnicodeError) as exc:
            raise CaptureError(f"cannot resolve {_one_line(host)}: {exc}") from exc

    def _prepare(self, host: str, port: int) -> str:
        self.check_host(host, port)
        host = host.strip("[]").rstrip(".")
        return _numeric_ipv4(host) or host

    def resolve(self, host: str, port: int, timeout: float = 10.0) -> list[str]:
        """Resolve ``host``; refuse it if any address is refused; return the checked addresses."""
        name = self._prepare(host, port)
        if _is_ip(name):
            return self._addresses(host, port, [name])  # a literal: nothing to look up
        future = _DNS_POOL.submit(self._lookup, name, port)
        try:
            found = future.result(timeout=timeout)
        except FutureTimeout:
            future.cancel()
            raise CaptureError(
                f"cannot resolve {_one_line(host)}: timed out after {timeout:g}s"
            ) from None
        return self._addresses(host, port, found)

    async def resolve_async(self, host: str, port: int, timeout: float = 10.0) -> list[str]:
        """``resolve`` for asyncio code: the lookup runs in a worker thread."""
        name = self._prepare(host, port)
        if _is_ip(name):
            return self._addresses(host, port, [name])  # a literal: nothing to look up
        loop = asyncio.get_running_loop()
        try:
            found = await asyncio.wait_for(
                loop.run_in_executor(_DNS_POOL, self._lookup, name, port), timeout
            )
        except TimeoutError:
            raise CaptureError(
                f"cannot resolve {_one_line(host)}: timed out after {timeout:g}s"
            ) from None
        return self._addresses(host, port, found)
