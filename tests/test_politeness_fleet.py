"""Fleet-wide politeness: three crawl processes share one host's delay and concurrency.

Each process is a plain Scrapy crawl (this file run as a script) with the middleware on,
against a loopback site that logs when each page request arrives and how many are in
flight. All processes first wait at a gate (passed outside Scrapy, released when all have
arrived), so their page requests really compete. The site's own log is the evidence.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from redisserver import free_port

REPO = Path(__file__).resolve().parent.parent
PAGES = 3  # per worker
TOLERANCE_S = 0.1  # arrival timestamps are taken after the request line is parsed
PROCESS_TIMEOUT_S = 120


class TimedSite:
    """Pages at /p/<name> (held ``hold_s`` each), a gate at /gate for ``parties`` callers."""

    def __init__(self, parties: int, hold_s: float = 0.0) -> None:
        self.arrivals: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold_s = hold_s
        self.gate = threading.Barrier(parties)
        lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                if self.path == "/gate":
                    site.gate.wait(timeout=PROCESS_TIMEOUT_S)
                else:
                    with lock:
                        site.arrivals.append(time.monotonic())
                        site.in_flight += 1
                        site.max_in_flight = max(site.max_in_flight, site.in_flight)
                    time.sleep(site.hold_s)  # a slow server, not synchronisation
                    with lock:  # before the answer: the next request cannot overtake it
                        site.in_flight -= 1
                body = b"<html><body>ok</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def gaps(self) -> list[float]:
        times = sorted(self.arrivals)
        return [b - a for a, b in itertools.pairwise(times)]


@pytest.fixture
def timed_site(request: pytest.FixtureRequest) -> Iterator[TimedSite]:
    """The site for (workers, hold_s), three workers and no hold unless parametrized."""
    workers, hold_s = getattr(request, "param", (3, 0.0))
    site = TimedSite(workers, hold_s=hold_s)
    yield site
    site.server.shutdown()
    site.server.server_close()


def run_workers(site: TimedSite, redis_url: str | None, delay: float, concurrency: int) -> list:
    """Start one crawl process per gate party; returns (exit code, stats, stderr) of each."""
    args = [str(site.port), redis_url or "", str(delay), str(concurrency), str(PAGES)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(n), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(site.gate.parties)
    ]
    found = []
    for proc in procs:
        out, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
        stats = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        found.append((proc.returncode, stats, err))
    return found


def test_delay_holds_across_workers(timed_site: TimedSite, redis_url: str) -> None:
    results = run_workers(timed_site, redis_url, delay=0.5, concurrency=2)
    assert [code for code, _, _ in results] == [0] * len(results), results
    assert len(timed_site.arrivals) == len(results) * PAGES
    # Every request took a fleet slot, and none went local.
    assert all(s.get("slots") == PAGES and "degraded" not in s for _, s, _ in results), results
    assert min(timed_site.gaps()) >= 0.5 - TOLERANCE_S, timed_site.gaps()


@pytest.mark.parametrize("timed_site", [(2, 0.0)], indirect=True)
def test_without_fleet_setting_workers_overlap(timed_site: TimedSite) -> None:
    """The control: Scrapy's local delay alone lets three workers hit the host at once."""
    results = run_workers(timed_site, None, delay=0.5, concurrency=2)
    assert [code for code, _, _ in results] == [0] * len(results), results
    assert len(timed_site.arrivals) == len(results) * PAGES
    assert min(timed_site.gaps()) < 0.5 - TOLERANCE_S, timed_site.gaps()


@pytest.mark.parametrize("timed_site", [(2, 0.2)], indirect=True)
def test_concurrency_cap_holds_across_workers(timed_site: TimedSite, redis_url: str) -> None:
    results = run_workers(timed_site, redis_url, delay=0.0, concurrency=1)
    assert [code for code, _, _ in results] == [0] * len(results), results
    assert len(timed_site.arrivals) == len(results) * PAGES
    assert timed_site.max_in_flight == 1


@pytest.mark.parametrize("timed_site", [(2, 0.0)], indirect=True)
def test_redis_down_degrades_to_local_delay(timed_site: TimedSite) -> None:
    """No Redis answering: every page is still fetched, each worker warns, none fails."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    results = run_workers(timed_site, dead, delay=0.2, concurrency=2)
    assert [code for code, _, _ in results] == [0] * len(results), results
    assert len(timed_site.arrivals) == len(results) * PAGES
    for _, stats, err in results:
        assert "fleet politeness: Redis at redis://127.0.0.1:" in err
        assert stats.get("degraded", 0) >= 1 and "slots" not in stats


def crawl(worker: int, port: int, redis_url: str, delay: float, concurrency: int, pages: int):
    """One worker: the gate, then ``pages`` pages; prints its fleet politeness stats."""
    import asyncio

    import scrapy
    from scrapy.crawler import CrawlerProcess

    class Pages(scrapy.Spider):
        name = "pages"

        async def start(self):  # type: ignore[override]
            # The gate is passed outside Scrapy, so the limits under test never hold it.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /gate HTTP/1.0\r\n\r\n")
            await reader.read()
            writer.close()
            for n in range(pages):
                yield scrapy.Request(f"http://127.0.0.1:{port}/p/{worker}-{n}", callback=self.noop)

        def noop(self, response):
            return None

    settings = {
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "DOWNLOAD_DELAY": delay,
        "DOWNLOAD_DELAY_JITTER": 0,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "DOWNLOADER_MIDDLEWARES": {"crawler.fleet.politeness.FleetPolitenessMiddleware": 730},
        "CITEARCHIVE_FLEET_REDIS": redis_url,
        "LOG_LEVEL": "WARNING",
        "TELNETCONSOLE_ENABLED": False,
        "ROBOTSTXT_OBEY": False,
    }
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(Pages)
    process.crawl(crawler)
    process.start()
    prefix = "citearchive/fleet_politeness/"
    stats = crawler.stats.get_stats()
    print(json.dumps({k[len(prefix) :]: v for k, v in stats.items() if k.startswith(prefix)}))


if __name__ == "__main__":
    n, port, url, delay, concurrency, pages = sys.argv[1:7]
    crawl(int(n), int(port), url, float(delay), int(concurrency), int(pages))
