"""The capture spider: render each source once in Chromium and yield a CaptureItem.

Every request goes through scrapy-playwright with the page handed to the callback, so the
callback can let the page settle and take the DOM and screenshot itself. A failure of one
source (DNS, refused, timeout, refused destination) becomes an `unreachable` item; it never
stops the crawl.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response
from twisted.python.failure import Failure

from crawler.egress_proxy import EgressProxy
from crawler.errors import CaptureError, DestinationRefused
from crawler.fleet.politeness import WAIT_KEY as FLEET_WAIT_KEY
from crawler.items import CaptureItem
from crawler.media.collect import MediaCollector
from crawler.media.find import find_media
from crawler.media.model import MediaResult
from crawler.netguard import DestinationPolicy
from crawler.pagecapture import PageOptions, fill_from_page
from crawler.probes import HostProbes
from crawler.profiles import profile_for
from crawler.recheck import RecheckBasis, cheap_outcome
from crawler.recorder import TrafficRecorder
from spiders.tabs import ContextRecycler, Lane, TabLanes
from storage.ids import utc_now_rfc3339

logger = logging.getLogger(__name__)


_PLAYWRIGHT_ERROR = re.compile(r"^(?:[\w.]+: )?(net::ERR_[A-Z_]+|Timeout \d+ms exceeded)")


def failure_reason(failure: Failure) -> str:
    """One line saying why a navigation failed: 'net::ERR_NAME_NOT_RESOLVED', not a call log."""
    text = (failure.getErrorMessage() or "").strip()
    first = text.splitlines()[0] if text else repr(failure.value)
    match = _PLAYWRIGHT_ERROR.match(first)
    return match.group(1) if match else first


@dataclass(frozen=True)
class CaptureTarget:
    source_id: str
    url: str
    # Set when a cheap conditional fetch may stand in for the render (crawler/recheck.py).
    basis: RecheckBasis | None = None
    # The media entries of the source's latest capture, each with "_capture": the capture
    # that holds its bytes; a cheap check may re-use them (crawler/media/collect.py).
    previous_media: tuple[dict, ...] = ()


class CaptureSpider(scrapy.Spider):
    name = "capture"
    custom_settings: dict = {}

    def __init__(
        self,
        targets: Iterable[CaptureTarget] = (),
        policy: DestinationPolicy | None = None,
        page_options: PageOptions | None = None,
        context_kwargs: dict | None = None,
        pages_per_context: int = 50,
        tabs: int = 1,
        egress: EgressProxy | None = None,
        probes: HostProbes | None = None,
        media: MediaCollector | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.targets = list(targets)
        self.policy = policy or DestinationPolicy()
        self.page_options = page_options or PageOptions()
        self.context_kwargs = context_kwargs or {}
        # One lane per page rendered at once: [crawl] concurrency, as CONCURRENT_REQUESTS.
        self.tabs = TabLanes(tabs, ContextRecycler(pages_per_context))
        self.egress = egress
        self.probes = probes
        self.media = media

    async def start(self) -> AsyncIterator[scrapy.Request | CaptureItem]:
        for target in self.targets:
            try:
                self.policy.check_url(target.url)
            except DestinationRefused as exc:
                yield self._failed_item(target, f"refused: {exc}", refused=True)
                continue
            if target.basis is not None:
                yield self._conditional_request(target)
            else:
                yield await self._render_request(target)

    async def _render_request(self, target: CaptureTarget) -> scrapy.Request:
        """The browser's request for ``target``, once a lane is free to render it."""
        lane, context = await self.tabs.acquire()
        meta = {
            "playwright": True,
            "playwright_include_page": True,
            "playwright_context": context,
            "playwright_context_kwargs": self.context_kwargs,
            "playwright_page_init_callback": self._init_page,
            "capture_target": target,
            "captured_at": utc_now_rfc3339(),
            "tab_lane": lane,
        }
        if lane.page is not None:
            meta["playwright_page"] = lane.page  # the lane's kept tab, blank
        return scrapy.Request(
            target.url,
            callback=self.parse_page,
            errback=self.on_error,
            dont_filter=True,
            meta=meta,
        )

    def _conditional_request(self, target: CaptureTarget) -> scrapy.Request:
        """A plain HTTP GET (no browser), conditional on the last capture's validators."""
        assert target.basis is not None
        return scrapy.Request(
            target.url,
            callback=self.parse_conditional,
            errback=self.on_conditional_error,
            dont_filter=True,
            headers=target.basis.conditional_headers(),
            meta={"capture_target": target, "captured_at": utc_now_rfc3339()},
        )

    async def parse_conditional(self, response: Response) -> AsyncIterator:
        target: CaptureTarget = response.meta["capture_target"]
        assert target.basis is not None
        media_type = (response.headers.get("Content-Type") or b"").decode("latin-1")
        media_type = media_type.split(";")[0].strip().lower()
        # Text extraction of a changed body takes tens of ms: off the reactor.
        reason = await asyncio.to_thread(
            cheap_outcome, target.basis, response.status, response.url, response.body, media_type
        )
        if reason is None:
            yield await self._render_request(target)
            return
        item = CaptureItem(
            source_id=target.source_id,
            url=target.url,
            captured_at=response.meta["captured_at"],
            final_url=response.url,
            http_status=response.status,
            headers=[
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, values in response.headers.items()
                for v in values
            ],
            media_type=media_type,
            raw=response.body if response.status == 200 else None,
            recheck={"basis": target.basis.capture_id, "reason": reason},
        )
        item.timings["fetch_s"] = round(response.meta.get("download_latency", 0.0), 3)
        yield item

    async def on_conditional_error(self, failure: Failure) -> AsyncIterator[scrapy.Request]:
        # The cheap tier only ever confirms "unchanged": any doubt goes to the browser.
        yield await self._render_request(failure.request.meta["capture_target"])

    async def _init_page(self, page, request: scrapy.Request) -> None:
        previous: TrafficRecorder | None = request.meta.get("recorder")
        if previous is not None and previous.expired:
            # scrapy-playwright loads a page closed under it again: not one closed at its deadline
            await page.close()
            raise CaptureError(previous.expired)
        # scrapy-playwright routes every request of the page through Python to apply the
        # Scrapy request's method, body and headers. A capture is a plain GET with the
        # browser's own headers (PLAYWRIGHT_PROCESS_REQUEST_HEADERS = None), so that route
        # only costs round trips for each subresource and turns Chromium's cache off.
        # (The init callback runs after the route is set: scrapy-playwright PR #205.)
        await page.unroute("**")
        fleet_wait = request.meta.pop(FLEET_WAIT_KEY, None)
        if fleet_wait is not None:
            await fleet_wait()  # the host's fleet-wide slot, claimed as the page navigates
        # download_timeout (page + settle timeouts + a margin) bounds the page's whole life.
        deadline = request.meta.get("download_timeout")
        request.meta["recorder"] = TrafficRecorder(page, egress=self.egress, deadline=deadline)

    async def parse_page(self, response: Response) -> AsyncIterator[CaptureItem]:
        meta = response.meta
        target: CaptureTarget = meta["capture_target"]
        page = meta["playwright_page"]
        item = CaptureItem(
            source_id=target.source_id, url=target.url, captured_at=meta["captured_at"]
        )
        item.timings["navigate_s"] = round(meta.get("download_latency", 0.0), 3)
        download = response.body if meta.get("playwright_suggested_filename") else None
        clean = False
        try:
            await fill_from_page(
                item, page, meta["recorder"], self.page_options, download_body=download
            )
            if self.probes is not None and item.http_status == 200 and item.dom is not None:
                item.probe = await self.probes.get(item.final_url or item.url, page.context)
            clean = item.error is None
        finally:
            await self._end_tab(meta, page, keep=clean)
        if self.media is not None and item.http_status == 200 and item.dom is not None:
            item.media = await self._collect_media(item, meta["recorder"], target)
        yield item

    async def _collect_media(
        self, item: CaptureItem, recorder: TrafficRecorder, target: CaptureTarget
    ) -> list[MediaResult]:
        """The page's media, found in its DOM and traffic, fetched off the reactor."""
        assert self.media is not None and item.dom is not None
        url = item.final_url or item.url
        settings = self.media.settings
        refs = await asyncio.to_thread(
            find_media,
            item.dom.decode("utf-8", "replace"),
            url,
            profile_for(url),
            recorder.exchanges,
            volatile=settings.volatile,
            limit=settings.max_items,
        )
        if not refs:
            return []
        return await asyncio.to_thread(self.media.collect, refs, list(target.previous_media), url)

    async def on_error(self, failure: Failure) -> AsyncIterator[CaptureItem]:
        request = failure.request
        page = request.meta.get("playwright_page")
        recorder: TrafficRecorder | None = request.meta.get("recorder")
        message = failure_reason(failure)
        if recorder is not None and recorder.why_failed():
            message = recorder.why_failed() or message  # refused, body cut, or deadline
        elif self.egress is not None:
            # A failed https tunnel reaches the page only as ERR_TUNNEL_CONNECTION_FAILED.
            parts = urlsplit(request.url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            message = self.egress.explain(parts.hostname or "", port) or message
        await self._end_tab(request.meta, page, keep=False)
        yield self._failed_item(
            request.meta["capture_target"],
            message or repr(failure.value),
            captured_at=request.meta.get("captured_at"),
            refused=message.startswith("refused: "),
        )

    async def _end_tab(self, meta: dict, page, *, keep: bool) -> None:
        """The capture is done with its tab: its lane keeps the tab only after a clean capture."""
        recorder: TrafficRecorder | None = meta.get("recorder")
        if recorder is not None:
            recorder.detach()
        lane: Lane = meta["tab_lane"]
        await self.tabs.release(lane, page, meta["playwright_context"], keep=keep)

    def _failed_item(
        self,
        target: CaptureTarget,
        error: str,
        *,
        captured_at: str | None = None,
        refused: bool = False,
    ) -> CaptureItem:
        logger.info(
            "capture failed: %s: %s",
            target.url,
            error,
            extra={"url": target.url, "source_id": target.source_id, "error": error},
        )
        item = CaptureItem(
            source_id=target.source_id,
            url=target.url,
            captured_at=captured_at or utc_now_rfc3339(),
            error=error,
        )
        if refused:
            item.refused = [{"url": target.url, "reason": error}]
        return item
