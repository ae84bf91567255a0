"""Record the browser's own traffic for one page: every request, response and body.

Listeners are attached before navigation (scrapy-playwright's page init callback), so the
main document, its redirect hops and every subresource, XHR and fetch are seen. Bodies are
read as the responses arrive; ``drain()`` waits for the pending reads before the page closes.

The recorder also keeps a hostile page bounded: a body over the size cap is not kept (and a
response whose body the egress proxy cut is no answer at all), popups are closed, downloads
the page starts on its own are cancelled, and a page still open at its deadline is closed,
which ends any wait on a renderer that a script keeps busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from playwright.async_api import Download, Page, Request, Response
from playwright.async_api import Error as PlaywrightError

from storage.warc import Exchange

if TYPE_CHECKING:
    from crawler.egress_proxy import EgressProxy

logger = logging.getLogger(__name__)

REFUSED_HEADER = "x-citearchive-refused"
PROXY_ERROR_HEADER = "x-citearchive-error"


@dataclass(frozen=True)
class Hop:
    """One step of the main document's redirect chain."""

    url: str
    status: int
    location: str | None


async def _quietly(action: Awaitable[object]) -> None:
    """Close or cancel something the page may already have closed itself."""
    with contextlib.suppress(PlaywrightError):
        await action


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TrafficRecorder:
    """Collects ``Exchange`` objects for everything one page loads."""

    def __init__(
        self,
        page: Page,
        *,
        max_body_bytes: int | None = None,
        egress: EgressProxy | None = None,
        deadline: float | None = None,
    ) -> None:
        self.page = page
        self.egress = egress
        if max_body_bytes is None:
            max_body_bytes = egress.max_body_bytes if egress is not None else 50 * 1024 * 1024
        self.max_body_bytes = max_body_bytes
        self.exchanges: list[Exchange] = []
        self.refused: list[tuple[str, str]] = []
        self.popups: list[str] = []  # pages the page opened: closed, never captured
        self.downloads: list[str] = []  # downloads the page started on its own: cancelled
        self.expired: str | None = None  # why the deadline closed the page
        self._by_request: dict[int, Exchange] = {}
        self._nav_responses: list[Response] = []
        self._page_urls: set[str] = set()  # the document's own URL and its redirect hops
        self._page_answered = False
        self._pending: set[asyncio.Task] = set()
        self._closing: asyncio.Future | None = None
        self._listeners = {
            "request": self._on_request,
            "response": self._on_response,
            "requestfailed": self._on_failed,
            "popup": self._on_popup,
            "download": self._on_download,
        }
        self._timer: asyncio.TimerHandle | None = None
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_later(deadline, self._expire, deadline)
            self._listeners["close"] = self._on_close
        for event, listener in self._listeners.items():
            page.on(event, listener)

    def detach(self) -> None:
        """Stop recording and disarm the deadline: the tab goes on to another capture."""
        for event, listener in self._listeners.items():
            self.page.remove_listener(event, listener)
        self._on_close()

    def _on_close(self, _page: Page | None = None) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _expire(self, deadline: float) -> None:
        self.expired = f"page not done after {deadline:g}s (a script that never yields?): closed"
        logger.warning("%s: %s", self.page.url, self.expired, extra={"url": self.page.url})
        self._closing = asyncio.ensure_future(_quietly(self.page.close()))  # not in drain()

    def _on_popup(self, popup: Page) -> None:
        self.popups.append(popup.url)
        self._spawn(_quietly(popup.close()))

    def _on_download(self, download: Download) -> None:
        if download.url not in self._page_urls:
            self.downloads.append(download.url)
            self._spawn(_quietly(download.cancel()))

    def why_failed(self) -> str | None:
        """The recorder's own reason a page gave no capture: refused, cut, or expired."""
        if self.refused:
            return f"refused: {self.refused[0][1]}"
        for url in self._page_urls:
            cut = self.egress.cut_reason(url) if self.egress is not None else None
            if cut is not None:
                return cut
        return self.expired

    def _on_request(self, request: Request) -> None:
        if not request.url.startswith(("http://", "https://")):
            return  # the browser's own chrome:// and extension resources are not the page's
        if (
            not self._page_answered
            and request.is_navigation_request()
            and request.frame == self.page.main_frame
        ):
            self._page_urls.add(request.url)
        ex = Exchange(
            url=request.url,
            method=request.method,
            resource_type=request.resource_type,
            started_at=_now(),
        )
        self._by_request[id(request)] = ex
        self.exchanges.append(ex)

    def _on_failed(self, request: Request) -> None:
        ex = self._by_request.get(id(request))
        if ex is not None and ex.status is None:
            ex.error = request.failure or "failed"

    def _on_response(self, response: Response) -> None:
        if not response.request.url.startswith(("http://", "https://")):
            return
        if response.request.is_navigation_request() and response.frame == self.page.main_frame:
            self._nav_responses.append(response)
            self._page_answered = self._page_answered or not 300 <= response.status < 400
        self._spawn(self._fill(response))

    async def _fill(self, response: Response) -> None:
        request = response.request
        ex = self._by_request.get(id(request))
        too_big: str | None = None
        if ex is None:  # a response whose request event we missed: keep it anyway
            ex = Exchange(url=request.url, method=request.method, started_at=_now())
            self._by_request[id(request)] = ex
            self.exchanges.append(ex)
        try:
            ex.request_headers = [(h["name"], h["value"]) for h in await request.headers_array()]
            ex.request_body = request.post_data_buffer
            headers = [(h["name"], h["value"]) for h in await response.headers_array()]
            verdict = self._proxy_answer(request.url, headers)
            if verdict is not None:
                # Our egress proxy answered, not the site: a refusal or no answer at all.
                ex.error = verdict
                if verdict.startswith("refused: "):
                    self.refused.append((request.url, verdict.removeprefix("refused: ")))
                return
            ex.status = response.status
            ex.status_text = response.status_text
            ex.response_headers = headers
            addr = await response.server_addr()
            ex.server_ip = addr["ipAddress"] if addr else None
            if not 300 <= response.status < 400:
                ex.body, too_big = await self._body(response, headers)
        except PlaywrightError as exc:
            # The page may navigate away or close before a body is read; keep what we have.
            ex.error = ex.error or f"body unavailable: {exc.message.splitlines()[0]}"
        cut = self.egress.cut_reason(request.url) if self.egress is not None else None
        if cut is not None or too_big is not None:
            # Not the whole response the server sent: no answer, and nothing of it kept.
            ex.status, ex.body, ex.error = None, None, cut or too_big

    async def _body(
        self, response: Response, headers: list[tuple[str, str]]
    ) -> tuple[bytes | None, str | None]:
        """The body, or None and why when it is over the cap (unread if its length says so)."""
        fields = {k.lower(): v for k, v in headers}
        length = fields.get("content-length", "")
        mb = f"{self.max_body_bytes / (1024 * 1024):g} MB"
        if length.isdigit() and int(length) > self.max_body_bytes:
            return None, f"body over {mb} (Content-Length {length}): not read"
        body = await response.body()
        if len(body) > self.max_body_bytes:
            return None, f"body over {mb}: not kept"
        return body, None

    @staticmethod
    def _proxy_answer(url: str, headers: list[tuple[str, str]]) -> str | None:
        """The proxy's own verdict if it, not the site, produced this response.

        Only plain-HTTP answers can come from the proxy (it strips these headers from what
        sites send there); inside an https tunnel they can only be the site's own.
        """
        if not url.startswith("http://"):
            return None
        for key, value in headers:
            if key.lower() == REFUSED_HEADER:
                return f"refused: {value}"
            if key.lower() == PROXY_ERROR_HEADER:
                return value
        return None

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait (bounded) until every body read that has started is finished."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)

    def main_response(self) -> Response | None:
        """The main frame's last navigation response that is not a redirect."""
        for response in reversed(self._nav_responses):
            if not 300 <= response.status < 400 or not response.headers.get("location"):
                return response
        return None

    def main_exchange(self) -> Exchange | None:
        response = self.main_response()
        if response is None:
            return None
        return self._by_request.get(id(response.request))

    def redirect_chain(self) -> list[Hop]:
        """The hops that led to the main response, first request first."""
        response = self.main_response()
        if response is None:
            return []
        hops: list[Hop] = []
        request = response.request.redirected_from
        while request is not None:
            ex = self._by_request.get(id(request))
            status = ex.status if ex and ex.status is not None else 0
            location = (
                dict((k.lower(), v) for k, v in ex.response_headers).get("location") if ex else None
            )
            hops.append(Hop(url=request.url, status=status, location=location))
            request = request.redirected_from
        hops.reverse()
        return hops
