"""The egress proxy: the browser's only way out, guarded by a ``DestinationPolicy``.

Chromium resolves DNS and follows redirects itself, and Playwright's request routing never sees
redirect hops, so the browser is launched with ``proxy={"server": proxy.start()}`` and
``--proxy-bypass-list=<-loopback>`` (otherwise loopback bypasses any proxy). For every request
the proxy resolves the destination itself, refuses it if any resolved address is refused, and
connects to an address it checked. It speaks CONNECT (tunnels: https, wss) and absolute-form
plain HTTP; one client connection carries exactly one request. A plain-HTTP response body
larger than ``max_body_bytes`` (as sent, or once decoded: ``crawler.bodycap``) is cut: the
connection to the browser is reset, and ``cut_reason(url)`` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import threading
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from crawler.bodycap import BodyMeter
from crawler.errors import CaptureError, DestinationRefused, ResponseTooLarge
from crawler.httpwire import (
    HOP_BY_HOP,
    MAX_HEAD,
    TOKEN,
    Fields,
    Idle,
    body_framing,
    copy,
    copy_body,
    parse_head,
    tokens,
)
from crawler.netguard import DestinationPolicy

__all__ = ["EgressProxy", "Refusal"]

log = logging.getLogger(__name__)

_STATUS_LINE = re.compile(r"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?")


@dataclass(frozen=True)
class Refusal:
    """One request the proxy refused: ``target`` is "host:port" (CONNECT) or the absolute URL."""

    target: str
    reason: str


class _ReplyError(Exception):
    """Abort the request with an error response to the client."""

    def __init__(self, status: int, reason: str, header: str = "X-Citearchive-Error") -> None:
        super().__init__(reason)
        self.status, self.reason, self.header = status, reason, header


def _clean(text: str, limit: int = 300) -> str:
    """Printable ASCII on one line: safe in a header field and a log line."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)[:limit]


class EgressProxy:
    """HTTP forward proxy that the browser must use for every request it makes.

    Serves in its own thread with its own asyncio loop on 127.0.0.1. Usable as a context manager
    (``with EgressProxy(policy) as proxy: proxy.url``).
    """

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        connect_timeout: float = 10.0,
        idle_timeout: float = 60.0,
        max_body_bytes: int = 50 * 1024 * 1024,
    ) -> None:
        self.policy = policy
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_body_bytes = max_body_bytes
        self._lock = threading.Lock()  # start/stop
        self._refusals_lock = threading.Lock()  # also taken on the proxy's loop: never nest
        self._refusals: list[Refusal] = []
        self._failures: dict[str, str] = {}  # "host:port" -> why the last connection failed
        self._cut: dict[str, str] = {}  # absolute URL -> why its response body was cut
        self._running: tuple[asyncio.AbstractEventLoop, threading.Thread, asyncio.Server] | None
        self._running = None
        self._tasks: set[asyncio.Task] = set()
        self.url: str | None = None  # "http://127.0.0.1:PORT" while running

    def start(self) -> str:
        with self._lock:
            if self.url is not None:
                return self.url
            sock = socket.create_server(("127.0.0.1", 0))
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="egress-proxy", daemon=True)
            thread.start()
            serve = asyncio.start_server(self._handle, sock=sock, limit=MAX_HEAD)
            try:
                server = asyncio.run_coroutine_threadsafe(serve, loop).result(timeout=30)
            except BaseException:
                loop.call_soon_threadsafe(loop.stop)
                thread.join()
                loop.close()
                sock.close()
                raise
            self._running = (loop, thread, server)
            self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            log.info("egress proxy listening on %s", self.url, extra={"proxy_url": self.url})
            return self.url

    def stop(self) -> None:
        with self._lock:
            if self._running is None:
                return
            (loop, thread, server), self._running, self.url = self._running, None, None
            asyncio.run_coroutine_threadsafe(self._shutdown(server), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()

    def refusals(self) -> list[Refusal]:
        with self._refusals_lock:
            return list(self._refusals)

    def explain(self, host: str, port: int) -> str | None:
        """Why the last request to ``host:port`` got no answer, if the proxy knows.

        Chromium reports a failed CONNECT only as ERR_TUNNEL_CONNECTION_FAILED; this gives
        the reason behind it ("refused: ...", "cannot resolve ...").
        """
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        with self._refusals_lock:
            refused = [r for r in self._refusals if r.target == target]
            if refused:
                return f"refused: {refused[-1].reason}"
            return self._failures.get(target)

    def cut_reason(self, url: str) -> str | None:
        """Why the proxy cut the response body of ``url`` (plain HTTP), if it did."""
        with self._refusals_lock:
            return self._cut.get(url)

    def _record_failure(self, target: str, reason: str) -> None:
        with self._refusals_lock:
            self._failures[target] = reason

    def __enter__(self) -> EgressProxy:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _shutdown(self, server: asyncio.Server) -> None:
        server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle_timeout)
                line, fields = parse_head(head)
                method, target, version = line.split(" ")
                if not TOKEN.fullmatch(method) or version not in ("HTTP/1.0", "HTTP/1.1"):
                    raise ValueError("bad request line")
            except asyncio.LimitOverrunError:
                raise _ReplyError(431, f"request head larger than {MAX_HEAD} bytes") from None
            except ValueError:
                raise _ReplyError(400, "malformed request") from None
            if method == "CONNECT":
                await self._tunnel(target, reader, writer)
            else:
                await self._forward(method, target, version, fields, reader, writer)
        except _ReplyError as reply:
            await self._reply(writer, reply)
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
            TimeoutError,
        ) as exc:
            log.debug("egress connection aborted: %r", exc, extra={"egress_error": repr(exc)})
        except asyncio.CancelledError:
            pass  # stop(): end quietly, so asyncio does not log the cancelled handler task
        except Exception:
            log.exception("egress proxy failed on a connection")
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _reply(self, writer: asyncio.StreamWriter, reply: _ReplyError) -> None:
        reason = _clean(reply.reason)
        body = f"citearchive egress proxy: {reason}\n".encode()
        head = (
            f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}\r\n"
            f"{reply.header}: {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError, TimeoutError):
            writer.write(head.encode("latin-1") + body)
            await asyncio.wait_for(writer.drain(), self.idle_timeout)

    async def _open(self, target: str, url: str, host: str, port: int, *, connect: bool = True):
        """Check and resolve the destination, then connect to a checked address."""
        try:
            self.policy.check_url(url)
            addresses = await self.policy.resolve_async(host, port, self.connect_timeout)
        except DestinationRefused as exc:
            reason = _clean(str(exc))
            with self._refusals_lock:
                self._refusals.append(Refusal(target, reason))
            log.warning(
                "egress refused %s: %s",
                _clean(target),
                reason,
                extra={"egress_target": _clean(target), "egress_reason": reason},
            )
            raise _ReplyError(403, reason, "X-Citearchive-Refused") from None
        except CaptureError as exc:  # unresolvable: not a policy decision
            self._record_failure(target, _clean(str(exc)))
            raise _ReplyError(502, str(exc)) from None
        if not connect:
            return None
        loop = asyncio.get_running_loop()
        errors, deadline, status = [], loop.time() + self.connect_timeout, 502
        for address in addresses:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(address, port, limit=MAX_HEAD),
                    max(deadline - loop.time(), 0.001),
                )
            except TimeoutError:
                errors.append(f"{address}: timed out after {self.connect_timeout:g}s")
                status = 504
                break
            except OSError as exc:
                errors.append(f"{address}: {os.strerror(exc.errno) if exc.errno else exc}")
        where = _clean(f"{host}:{port}")
        reason = f"cannot connect to {where} ({'; '.join(errors)})"
        self._record_failure(target, _clean(reason))
        raise _ReplyError(status, reason)

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, sep, port_text = target.rpartition(":")
        if (
            not sep
            or not host
            or not re.fullmatch(r"[0-9]{1,5}", port_text)
            or not 0 < int(port_text) < 65536
            or host.startswith("[") != host.endswith("]")
        ):
            raise _ReplyError(400, "malformed CONNECT target")
        host = host[1:-1] if host.startswith("[") else host
        up_reader, up_writer = await self._open(target, f"https://{target}/", host, int(port_text))
        log.debug("egress tunnel %s", _clean(target), extra={"egress_target": _clean(target)})
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        idle = Idle()

        async def upload() -> None:
            await copy(reader, up_writer, idle)
            if up_writer.can_write_eof():
                up_writer.write_eof()  # half-close: let the server finish its answer

        try:
            await self._relay(idle, upload(), copy(up_reader, writer, idle))
        finally:
            up_writer.close()

    async def _forward(
        self,
        method: str,
        target: str,
        version: str,
        fields: Fields,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            url = urlsplit(target)
            scheme, host = url.scheme.lower(), url.hostname or ""
            port = url.port if url.port is not None else {"http": 80, "https": 443}.get(scheme, 0)
            framing = body_framing(fields, request=True)
        except ValueError:
            raise _ReplyError(400, "malformed request target or framing") from None
        if not scheme:
            raise _ReplyError(400, "this is a proxy: the request target must be an absolute URL")
        if scheme != "http":  # other schemes are refused by the policy; https needs CONNECT
            await self._open(target, target, host, port, connect=False)
            raise _ReplyError(501, "absolute-form https is not supported: use CONNECT")
        up_reader, up_writer = await self._open(target, target, host, port)
        log.debug(
            "egress %s %s",
            method,
            _clean(target),
            extra={"egress_method": method, "egress_target": _clean(target)},
        )
        dropped = HOP_BY_HOP | set(tokens(fields, "connection")) | {"host"}
        head = [
            f"{method} {url.path or '/'}{'?' if url.query else ''}{url.query} {version}",
            f"Host: {url.netloc.rpartition('@')[2]}",
        ]
        head += [f"{k}: {v}" for k, v in fields if k.lower() not in dropped]
        up_writer.write("\r\n".join([*head, "Connection: close", "", ""]).encode("latin-1"))
        idle = Idle()
        try:
            await self._relay(
                idle,
                copy_body(reader, up_writer, idle, framing),
                self._respond(method, up_reader, writer, idle),
            )
        except ResponseTooLarge as exc:
            reason = _clean(str(exc))
            with self._refusals_lock:
                self._cut[target] = reason
            log.warning(
                "egress cut %s: %s",
                _clean(target),
                reason,
                extra={"egress_target": _clean(target), "egress_reason": reason},
            )
            writer.transport.abort()  # a reset, not a clean end: the body is incomplete
        except TimeoutError:
            if idle.head_sent:
                raise
            raise _ReplyError(
                504, f"{_clean(target)} did not answer within {self.idle_timeout:g}s"
            ) from None
        finally:
            up_writer.close()

    async def _respond(
        self,
        method: str,
        up_reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        idle: Idle,
    ) -> None:
        """Relay one response, its head rewritten to carry ``Connection: close``."""
        while True:
            try:
                head = await up_reader.readuntil(b"\r\n\r\n")
                idle.touch()
                status_line, fields = parse_head(head)
                match = _STATUS_LINE.fullmatch(status_line)
                if match is None:
                    raise ValueError("bad status line")
                status = int(match.group(1))
                framing = body_framing(fields, request=False)
            except (ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError) as exc:
                raise _ReplyError(502, f"malformed response from upstream: {exc}") from None
            if not 100 <= status < 200 or status == 101:
                break
            writer.write(head)  # interim response (100 Continue): pass on, read the next
        # the proxy's own headers can only come from the proxy (over plain HTTP, at least)
        dropped = {
            "connection",
            "keep-alive",
            "proxy-connection",
            "x-citearchive-refused",
            "x-citearchive-error",
        }
        out = [status_line] + [f"{k}: {v}" for k, v in fields if k.lower() not in dropped]
        writer.write("\r\n".join([*out, "Connection: close", "", ""]).encode("latin-1"))
        idle.head_sent = True
        await writer.drain()
        if method == "HEAD" or status in (204, 304):
            return
        encoding = ", ".join(v for k, v in fields if k.lower() == "content-encoding")
        meter = BodyMeter(self.max_body_bytes, encoding) if status != 101 else None
        if status == 101 or framing is None:
            await copy(up_reader, writer, idle, None, meter)  # delimited by the server closing
        else:
            await copy_body(up_reader, writer, idle, framing, meter)

    async def _relay(self, idle: Idle, upload, download) -> None:
        """Run both directions until ``download`` ends, an error, or ``idle_timeout`` of silence."""
        down = asyncio.ensure_future(download)
        pending = {asyncio.ensure_future(upload), down}
        try:
            while down in pending:
                wait = idle.last + self.idle_timeout - asyncio.get_running_loop().time()
                if wait <= 0:
                    raise TimeoutError("idle timeout")
                done, pending = await asyncio.wait(
                    pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    task.result()  # re-raise a failure of either direction
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
