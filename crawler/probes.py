"""Soft-404 probes: how each host answers a URL that cannot exist.

Many sites answer a deleted page with 200 and a "not found" page. Rendering a made-up URL
on the same host shows what that page looks like; a capture whose content is nearly the
same is a soft 404. One probe per origin per run, shared by concurrent pages, and reused
from the store across runs while fresh (``MAX_AGE``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext
from playwright.async_api import Error as PlaywrightError

from crawler.errors import BlobNotFound, StorageError
from crawler.items import ProbeResult
from crawler.pagecapture import settle
from crawler.profiles import content_text, profile_for
from storage.archive import Archive
from storage.ids import parse_rfc3339, source_id, utc_now_rfc3339

logger = logging.getLogger(__name__)
MAX_AGE = timedelta(days=7)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _key(origin: str) -> str:
    return f"probes/{source_id(origin)}.json"


def load_fresh(
    archive: Archive, origins: set[str], now: datetime | None = None
) -> dict[str, ProbeResult]:
    """Stored probes of ``origins`` younger than MAX_AGE."""
    now = now or datetime.now(UTC)
    fresh = {}
    for origin in origins:
        try:
            record = json.loads(archive.store.get(_key(origin)))
            probe = ProbeResult(**record)
        except (BlobNotFound, ValueError, TypeError):
            continue
        if now - parse_rfc3339(probe.probed_at) < MAX_AGE:
            fresh[origin] = probe
    return fresh


def save(archive: Archive, probe: ProbeResult) -> None:
    try:
        archive.store.put(_key(probe.origin), json.dumps(probe.__dict__, sort_keys=True).encode())
    except StorageError as exc:  # a lost probe costs one more probe next run, nothing else
        logger.warning("cannot keep the probe of %s: %s", probe.origin, exc)


class HostProbes:
    """Probe each origin once; concurrent pages of one origin share the same probe."""

    def __init__(self, known: dict[str, ProbeResult], *, timeout: float, settle: float) -> None:
        self._tasks: dict[str, asyncio.Task[ProbeResult]] = {}
        self._known = dict(known)
        self.timeout = timeout
        self.settle = settle

    async def get(self, url: str, context: BrowserContext) -> ProbeResult:
        origin = origin_of(url)
        if origin in self._known:
            return self._known[origin]
        if origin not in self._tasks:
            self._tasks[origin] = asyncio.ensure_future(self._probe(origin, context))
        return await self._tasks[origin]

    async def _probe(self, origin: str, context: BrowserContext) -> ProbeResult:
        url = f"{origin}/citearchive-probe-{secrets.token_hex(12)}"
        status, final, dom = None, None, ""
        page = await context.new_page()
        try:
            response = await page.goto(url, timeout=self.timeout * 1000)
            if response is not None and not response.headers.get("x-citearchive-error"):
                status, final = response.status, page.url
                await settle(page, self.settle)  # one that never idles is probed as it stands
                dom = await page.content()
        except PlaywrightError as exc:
            logger.info(
                "probe of %s failed: %s",
                origin,
                exc.message.splitlines()[0],
                extra={"origin": origin},
            )
        finally:
            await page.close()
        text = await asyncio.to_thread(content_text, profile_for(url), dom, final) if dom else ""
        return ProbeResult(origin, status, final, text, utc_now_rfc3339())
