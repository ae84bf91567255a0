"""Item pipeline: judge and store every CaptureItem the spider yields.

Storage is blocking I/O (disk, S3, SQLite), so it runs on one worker thread of its own:
the reactor, and with it Chromium, keeps going while a capture uploads, and captures are
stored one at a time, in order, which the per-source hash chain needs.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawler.archiving import store_capture
from crawler.config import Config
from crawler.errors import CitearchiveError
from crawler.items import CaptureItem
from crawler.media.keep import discard
from crawler.probes import save as save_probe
from crawler.schedule import Planner
from storage.archive import Archive
from storage.index import Index
from storage.objectstore import open_store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureResult:
    """What the run reports for one stored capture."""

    source_id: str
    url: str
    capture_id: str | None
    verdict: str
    reason: str
    error: str | None = None


class ArchivePipeline:
    def __init__(self, archive: Archive, index: Index, planner: Planner | None = None) -> None:
        self.archive = archive
        self.index = index
        self.planner = planner
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive")
        self._probes_kept: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ArchivePipeline:
        config = crawler.settings.get("CITEARCHIVE_CONFIG")
        if not isinstance(config, Config):
            raise NotConfigured("CITEARCHIVE_CONFIG (a crawler.config.Config) is required")
        planner = Planner(
            config.schedule,
            config.canonical,
            timedelta(hours=config.politeness.max_retry_after_hours),
        )
        pipeline = cls(Archive(open_store(config.store_url)), Index(config.index_url), planner)
        crawler.signals.connect(pipeline.close, signal=signals.spider_closed)
        return pipeline

    async def process_item(self, item: CaptureItem) -> CaptureResult:
        loop = asyncio.get_running_loop()
        probe = item.probe
        if probe is not None and probe.origin not in self._probes_kept:
            self._probes_kept.add(probe.origin)
            await loop.run_in_executor(self._executor, save_probe, self.archive, probe)
        try:
            stored = await loop.run_in_executor(
                self._executor, store_capture, self.archive, self.index, item, self.planner
            )
        except CitearchiveError as exc:
            # The capture could not be kept: report it, and let the other sources go on.
            logger.error(
                "could not store capture of %s: %s",
                item.url,
                exc,
                extra={"url": item.url, "source_id": item.source_id},
            )
            return CaptureResult(item.source_id, item.url, None, "error", str(exc), str(exc))
        finally:
            discard(item.media or [])  # the media files are in the store now, or lost with it
        manifest = stored.manifest
        return CaptureResult(
            source_id=item.source_id,
            url=item.url,
            capture_id=manifest["id"],
            verdict=manifest["verdict"],
            reason=manifest["reason"],
            error=manifest["error"],
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.index.close()
