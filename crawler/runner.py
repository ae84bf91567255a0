"""Run one crawl batch: a list of sources in, stored captures out.

The batch runs Scrapy in this process with the asyncio reactor, scrapy-playwright driving
one Chromium for the whole batch, and the egress proxy as the browser's only way out.
The Twisted reactor cannot be restarted, so a process runs at most one batch; long-lived
callers (the scheduler) start a process per batch.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from scrapy import signals
from scrapy.crawler import CrawlerProcess

from crawler.config import Config
from crawler.egress_proxy import EgressProxy
from crawler.media.stage import media_stage, previous_media
from crawler.netguard import DestinationPolicy
from crawler.pagecapture import PageOptions
from crawler.pipelines import CaptureResult
from crawler.probes import HostProbes, load_fresh, origin_of
from crawler.recheck import bases, with_basis
from spiders.capture import CaptureSpider, CaptureTarget
from storage.archive import Archive
from storage.index import Index
from storage.objectstore import open_store

logger = logging.getLogger(__name__)

CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    # Chromium bypasses a proxy for loopback unless told not to: the guard must see all.
    "--proxy-bypass-list=<-loopback>",
]


def browser_launch_options(config: Config, proxy_url: str) -> dict:
    running_as_root = os.geteuid() == 0
    return {
        "executable_path": config.crawl.chromium_path,
        "headless": True,
        "args": CHROMIUM_ARGS,
        # Chromium's sandbox cannot start as root; elsewhere keep it on.
        "chromium_sandbox": not running_as_root,
        "proxy": {"server": proxy_url},
        "timeout": 60_000,
    }


def context_options(config: Config) -> dict:
    return {
        "user_agent": config.crawl.user_agent,
        "viewport": {"width": config.crawl.viewport_width, "height": config.crawl.viewport_height},
        # A service worker would answer requests outside the page's response events.
        "service_workers": "block",
        "java_script_enabled": True,
        "accept_downloads": True,
    }


def crawl_settings(
    config: Config, proxy_url: str, log_level: str = "WARNING", fleet_redis: str | None = None
) -> dict:
    """Scrapy's settings for one batch; ``fleet_redis`` turns on fleet-wide politeness."""
    timeout_ms = int(config.crawl.page_timeout * 1000)
    middlewares = {"crawler.middlewares.EgressProxyMiddleware": 740}
    if fleet_redis:
        # Before the egress proxy's: a request waits for its host's fleet-wide slot first.
        middlewares["crawler.fleet.politeness.FleetPolitenessMiddleware"] = 730
    return {
        "BOT_NAME": "citearchive",
        "SPIDER_MODULES": ["spiders"],
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "DOWNLOAD_HANDLERS": {
            "http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
            "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
        },
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        "PLAYWRIGHT_LAUNCH_OPTIONS": browser_launch_options(config, proxy_url),
        "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": timeout_ms,
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": config.crawl.concurrency,
        # Send the browser's own headers, not Scrapy's: the page is fetched as a browser would.
        "PLAYWRIGHT_PROCESS_REQUEST_HEADERS": None,
        "CONCURRENT_REQUESTS": config.crawl.concurrency,
        "DOWNLOAD_TIMEOUT": config.crawl.page_timeout + config.crawl.settle_timeout + 30,
        # Scrapy's own fetches (re-checks, robots.txt): the same cap, decoded size included.
        "DOWNLOAD_MAXSIZE": int(config.crawl.max_body_mb * 1024 * 1024),
        "ROBOTSTXT_OBEY": config.politeness.obey_robots_txt,
        "CONCURRENT_REQUESTS_PER_DOMAIN": config.politeness.per_host_concurrency,
        "DOWNLOAD_DELAY": config.politeness.per_host_delay,
        # The delay is a floor the fleet holds too (crawler/fleet/politeness.py): no jitter.
        "DOWNLOAD_DELAY_JITTER": 0,
        "USER_AGENT": config.crawl.user_agent,
        # A 404 or 410 is evidence (a deletion), not an error to drop.
        "HTTPERROR_ALLOW_ALL": True,
        "LOG_INSTALL_ROOT_HANDLER": False,
        "RETRY_ENABLED": False,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": log_level,
        "ITEM_PIPELINES": {"crawler.pipelines.ArchivePipeline": 300},
        # Before HttpProxyMiddleware (750), which then tunnels through the proxy.
        "DOWNLOADER_MIDDLEWARES": middlewares,
        "CITEARCHIVE_EGRESS_PROXY": proxy_url,
        "CITEARCHIVE_FLEET_REDIS": fleet_redis,
        # Read by crawler.pipelines.ArchivePipeline.from_crawler.
        "CITEARCHIVE_CONFIG": config,
    }


@dataclass
class BatchOutcome:
    """One result per stored capture, and why the crawl ended ("finished", "shutdown")."""

    results: list[CaptureResult] = field(default_factory=list)
    finish_reason: str = "finished"

    @property
    def interrupted(self) -> bool:
        return self.finish_reason != "finished"


def _with_bases(config: Config, targets: Sequence[CaptureTarget]) -> list[CaptureTarget]:
    """The targets, with a cheap re-check basis where the source's history allows one."""
    with Index(config.index_url) as index:
        found = bases(
            index,
            [t.source_id for t in targets],
            datetime.now(UTC),
            timedelta(days=config.crawl.full_render_days),
        )
    return with_basis(targets, found)


def _with_previous_media(config: Config, targets: Sequence[CaptureTarget]) -> list[CaptureTarget]:
    """The targets, each with the media of its latest capture (for cheap media checks)."""
    archive = Archive(open_store(config.store_url))
    with Index(config.index_url) as index:
        return [
            replace(t, previous_media=previous_media(archive, index, t.source_id)) for t in targets
        ]


def run_batch(
    config: Config,
    targets: Sequence[CaptureTarget],
    on_result: Callable[[CaptureResult], None] | None = None,
    log_level: str = "WARNING",
    stop: threading.Event | None = None,
    fleet_redis: str | None = None,
) -> BatchOutcome:
    """Capture ``targets``; SIGTERM/SIGINT end it after the captures in flight are stored.

    ``stop`` set before the crawl starts (a signal during set-up) skips the crawl.
    """
    outcome = BatchOutcome()
    results = outcome.results
    if not targets:
        return outcome
    if stop is not None and stop.is_set():
        outcome.finish_reason = "shutdown"
        return outcome
    policy = DestinationPolicy(
        allow_private_networks=config.crawl.allow_private_networks,
        allow_hosts=tuple(config.crawl.allow_hosts),
    )
    if config.crawl.recheck == "tiered":
        targets = _with_bases(config, targets)
    if config.media.enabled:
        targets = _with_previous_media(config, targets)

    def collect(item: object, **_: object) -> None:
        if isinstance(item, CaptureResult):
            results.append(item)
            if on_result is not None:
                on_result(item)

    with (
        EgressProxy(
            policy,
            connect_timeout=min(config.crawl.page_timeout, 30.0),
            max_body_bytes=int(config.crawl.max_body_mb * 1024 * 1024),
        ) as proxy,
        media_stage(config, policy) as media,
    ):
        process = CrawlerProcess(crawl_settings(config, proxy.url, log_level, fleet_redis))
        crawler = process.create_crawler(CaptureSpider)
        crawler.signals.connect(collect, signal=signals.item_scraped)

        def closed(reason: str, **_: object) -> None:
            outcome.finish_reason = reason

        crawler.signals.connect(closed, signal=signals.spider_closed)
        process.crawl(
            crawler,
            targets=list(targets),
            policy=policy,
            page_options=PageOptions(
                settle_timeout=config.crawl.settle_timeout,
                max_screenshot_height=config.crawl.max_screenshot_height,
            ),
            context_kwargs=context_options(config),
            pages_per_context=config.crawl.pages_per_context,
            tabs=config.crawl.concurrency,
            egress=proxy,
            media=media,
            probes=HostProbes(
                load_fresh(
                    Archive(open_store(config.store_url)), {origin_of(t.url) for t in targets}
                ),
                timeout=config.crawl.page_timeout,
                settle=min(config.crawl.settle_timeout, 5.0),
            ),
        )
        if stop is not None and stop.is_set():  # asked to stop while the crawl was set up
            outcome.finish_reason = "shutdown"
            return outcome
        process.start()
    return outcome
