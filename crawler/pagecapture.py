"""Turn a navigated browser page into the artifacts of one capture.

The page is first allowed to settle (network idle, bounded by ``settle_timeout``) so text
that scripts fetch after load is in the DOM; a page that never goes idle (polling, live
tickers) is captured as it stands when the bound runs out.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from crawler.headerfields import media_type
from crawler.items import CaptureItem
from crawler.recorder import TrafficRecorder
from storage.warc import Resource, build_warc

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageOptions:
    settle_timeout: float = 10.0
    max_screenshot_height: int = 20_000


async def settle(page: Page, timeout: float) -> bool:
    """Wait for network idle; True if the page went idle within ``timeout`` seconds."""
    if timeout <= 0:
        return False
    try:
        await page.wait_for_load_state("networkidle", timeout=timeout * 1000)
        return True
    except PlaywrightTimeout:
        return False


# Before the shot: fonts loaded and images decoded (bounded), then two animation frames, so
# what scripts last changed is painted. On a busy machine the shot could otherwise show an
# older frame, and an unchanged page would store a new screenshot.
PAINTED = """async () => {
  const ready = Promise.all([
    document.fonts ? document.fonts.ready : null,
    ...Array.from(document.images, (img) => img.decode().catch(() => null)),
  ]);
  await Promise.race([ready, new Promise((r) => setTimeout(r, 2000))]);
  await new Promise((r) => {
    setTimeout(r, 1000);
    requestAnimationFrame(() => requestAnimationFrame(r));
  });
}"""


async def screenshot(page: Page, max_height: int) -> bytes | None:
    """A full-page PNG, cut at ``max_height`` pixels so endless pages stay bounded."""
    try:
        await page.evaluate(PAINTED)
        height = await page.evaluate(
            "() => Math.max(document.documentElement ? document.documentElement.scrollHeight : 0,"
            " document.body ? document.body.scrollHeight : 0)"
        )
        if height and height > max_height:
            width = page.viewport_size["width"] if page.viewport_size else 1280
            clip = {"x": 0, "y": 0, "width": width, "height": max_height}
            return await page.screenshot(full_page=True, clip=clip, type="png")
        return await page.screenshot(full_page=True, type="png")
    except PlaywrightError as exc:
        logger.warning(
            "screenshot failed for %s: %s",
            page.url,
            exc.message.splitlines()[0],
            extra={"url": page.url},
        )
        return None


# Types Chromium hands to a built-in viewer: the response body it reports is then the
# viewer's HTML wrapper, not the served bytes.
VIEWER_TYPES = {"application/pdf", "application/x-pdf"}


async def fetch_served_bytes(page: Page, url: str, timeout: float) -> bytes | None:
    """The bytes the server sends for ``url``, fetched again in the page's context.

    The request shares the context's cookies and goes out through the same egress proxy.
    """
    try:
        response = await page.context.request.get(url, max_redirects=0, timeout=timeout * 1000)
        try:
            return await response.body() if response.ok else None
        finally:
            await response.dispose()
    except PlaywrightError as exc:
        logger.warning(
            "cannot fetch the served bytes of %s: %s",
            url,
            exc.message.splitlines()[0],
            extra={"url": url},
        )
        return None


async def fill_from_page(
    item: CaptureItem,
    page: Page,
    recorder: TrafficRecorder,
    options: PageOptions,
    *,
    download_body: bytes | None = None,
) -> None:
    """Fill ``item`` with status, headers, bodies, DOM, screenshot, text and WARC."""
    t0 = time.monotonic()
    main = recorder.main_response()
    if download_body is None:
        item.timings["settled"] = float(await settle(page, options.settle_timeout))
        item.timings["settle_s"] = round(time.monotonic() - t0, 3)
    dom = ""
    shot = None
    if download_body is None and main is not None:
        t1 = time.monotonic()
        try:
            dom = await page.content()
        except PlaywrightError as exc:
            logger.warning("DOM unavailable for %s: %s", item.url, exc.message.splitlines()[0])
        shot = await screenshot(page, options.max_screenshot_height)
        item.timings["render_s"] = round(time.monotonic() - t1, 3)
    await recorder.drain()

    main_ex = recorder.main_exchange()
    if main is None or main_ex is None or main_ex.status is None:
        # No real response reached the browser: never report this as a live page.
        refused = recorder.refused
        if refused:
            item.error = f"refused: {refused[0][1]}"
        else:
            item.error = (main_ex.error if main_ex else None) or "no response from server"
        item.refused = [{"url": u, "reason": r} for u, r in refused]
        return
    item.http_status = main_ex.status
    item.final_url = main_ex.url
    item.headers = list(main_ex.response_headers)
    item.redirect_chain = [h.__dict__ for h in recorder.redirect_chain()]
    item.media_type = media_type(item.headers)
    item.raw = main_ex.body if main_ex.body is not None else download_body
    if item.media_type in VIEWER_TYPES and download_body is None:
        item.raw = await fetch_served_bytes(page, main_ex.url, options.settle_timeout + 30)
        main_ex.body = item.raw
        dom, item.dom = "", None  # the viewer's wrapper, not the document
    if dom:
        item.dom = dom.encode("utf-8")
    item.screenshot = shot
    item.refused = [{"url": u, "reason": r} for u, r in recorder.refused]
    item.resources = sum(1 for ex in recorder.exchanges if ex.status is not None) - 1

    resources = []
    if item.dom is not None:
        resources.append(
            Resource(f"urn:dom:{item.final_url}", "text/html; charset=utf-8", item.dom)
        )
    if shot is not None:
        resources.append(Resource(f"urn:screenshot:{item.final_url}", "image/png", shot))
    if main_ex.body is None:
        main_ex.body = item.raw
    item.warc = build_warc(
        recorder.exchanges, resources, captured_at=item.captured_at, page_url=item.url
    )
    item.traffic_sha256 = traffic_digest(recorder.exchanges, resources)


def traffic_digest(exchanges: list, resources: list[Resource]) -> str:
    """sha256 over what a WARC holds, minus its dates: each exchange's method, URL, status
    and body hash (sorted: subresources finish in any order), then the DOM and screenshot."""
    lines = sorted(
        f"{ex.method} {ex.url} {ex.status} {hashlib.sha256(ex.body or b'').hexdigest()}"
        for ex in exchanges
        if ex.status is not None
    )
    lines += [f"{r.uri} {hashlib.sha256(r.data).hexdigest()}" for r in resources]
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
