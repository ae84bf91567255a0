"""Browser tabs for captures: contexts recycled after N pages, and one tab per lane re-used.

A new tab costs Chromium far more than a navigation: on this machine a page in a new tab
took ≈1.15 CPU-s across Chromium's processes, a page navigated in a kept tab ≈0.28
(bench/tabs.py). So the crawl has as many lanes as it renders pages at once;
a capture takes a lane and navigates the lane's tab, and a tab that ended its capture
cleanly is blanked (``about:blank`` unloads the page, so nothing of it runs on or reaches the
next capture's recorder) and kept for the lane's next capture. A tab whose capture failed,
or whose context is used up, is closed. Beyond what its context shares anyway (cookies,
storage, cache), a kept tab carries only its history and sessionStorage to the next page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

logger = logging.getLogger(__name__)

BLANK_TIMEOUT_MS = 5_000


class ContextRecycler:
    """Spread pages over numbered browser contexts and close each one when it is used up.

    A context that has served ``pages_per_context`` captures gets no new capture; once no
    capture and no kept tab holds it, it is closed, which frees what Chromium and
    scrapy-playwright keep per context (long runs otherwise grow without bound).
    """

    def __init__(self, pages_per_context: int) -> None:
        self.pages_per_context = pages_per_context
        self._assigned = 0
        self._given: dict[str, int] = {}  # captures handed to each context so far
        self._held: dict[str, int] = {}  # captures in flight and kept tabs, per context

    def assign(self) -> str:
        name = f"capture-{self._assigned // self.pages_per_context}"
        self._assigned += 1
        self._given[name] = self._given.get(name, 0) + 1
        self._held[name] = self._held.get(name, 0) + 1
        return name

    def used_up(self, name: str) -> bool:
        return self._given.get(name, 0) >= self.pages_per_context

    def finished(self, name: str) -> bool:
        """Record one hold on ``name`` dropped; True when the context can be closed."""
        self._held[name] -= 1
        return self._held[name] == 0 and self.used_up(name)


@dataclass
class Lane:
    """One capture at a time; ``page`` is the tab kept from its last capture, if any."""

    page: Page | None = None
    context: str | None = None


class TabLanes:
    """``count`` lanes, each re-using one tab for its captures (see the module docstring)."""

    def __init__(self, count: int, recycler: ContextRecycler) -> None:
        self.recycler = recycler
        self._free: asyncio.Queue[Lane] = asyncio.Queue()
        for _ in range(count):
            self._free.put_nowait(Lane())

    async def acquire(self) -> tuple[Lane, str]:
        """A free lane (waits for one) and the context its next capture goes to.

        The lane's kept tab stays in it only if it belongs to that context.
        """
        lane = await self._free.get()
        name = self.recycler.assign()
        if lane.page is not None and lane.context is not None:
            if lane.context == name and not lane.page.is_closed():
                self.recycler.finished(name)  # the capture's hold replaces the kept tab's
            else:
                await self._close(lane.page, lane.context)
                lane.page = lane.context = None
        return lane, name

    async def release(self, lane: Lane, page: Page | None, name: str, *, keep: bool) -> None:
        """End a capture in ``lane``: keep its tab for the next capture, or close it."""
        try:
            reusable = page is not None and keep and not self.recycler.used_up(name)
            if reusable and await _blank(page):
                lane.page, lane.context = page, name
                return
            lane.page = lane.context = None
            if page is not None:
                await self._close(page, name)
            else:
                # No tab was opened (refused before the browser): there is no page to reach
                # the context through; one left open closes with the browser.
                self.recycler.finished(name)
        finally:
            self._free.put_nowait(lane)

    async def _close(self, page: Page, name: str) -> None:
        # Close the page before its context (scrapy-playwright's memory advice).
        context = page.context
        with contextlib.suppress(PlaywrightError):
            await page.close()
        if self.recycler.finished(name):
            with contextlib.suppress(PlaywrightError):
                await context.close()


async def _blank(page: Page) -> bool:
    """Unload what ``page`` shows; False if the tab cannot be re-used (closed, crashed)."""
    if page.is_closed():
        return False
    try:
        await page.goto("about:blank", timeout=BLANK_TIMEOUT_MS)
    except PlaywrightError as exc:
        logger.info("tab not re-used: %s", exc.message.splitlines()[0], extra={"url": page.url})
        return False
    return True
