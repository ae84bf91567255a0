"""Downloader middleware: Scrapy's own requests leave through the egress proxy too.

Pages are fetched by Chromium, which is launched with the proxy. Scrapy itself fetches a
few things outside the browser (robots.txt when it is obeyed); without this they would
bypass the destination guard.
"""

from __future__ import annotations

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured


class EgressProxyMiddleware:
    def __init__(self, proxy_url: str) -> None:
        self.proxy_url = proxy_url

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> EgressProxyMiddleware:
        proxy_url = crawler.settings.get("CITEARCHIVE_EGRESS_PROXY")
        if not proxy_url:
            raise NotConfigured("no egress proxy")
        return cls(proxy_url)

    def process_request(self, request: Request) -> None:
        if not request.meta.get("playwright"):
            request.meta["proxy"] = self.proxy_url
