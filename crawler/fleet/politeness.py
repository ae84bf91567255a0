"""Per-host politeness for the whole fleet: one delay and one concurrency cap in Redis.

Scrapy's own DOWNLOAD_DELAY and CONCURRENT_REQUESTS_PER_DOMAIN hold within one process;
with N workers a host would see N times the rate. Before each request to host H this
downloader middleware runs a Lua script in Redis that, atomically,

- drops expired entries from H's in-flight set and, if the set is full
  (``per_host_concurrency``), answers "not yet" (the request asks again shortly);
- otherwise reserves H's next slot, ``slot = max(now, next, last + delay)``, stores
  ``next = slot + per_host_delay`` and adds the request to the in-flight set (with an
  expiry, so a worker that dies frees its place).

The request then waits until its slot without blocking the reactor (asyncio sleep) and
claims it: a second script records the send time ``last`` and, if another worker woke
late and sent less than a delay ago, says how much longer to wait. Reservation keeps the
order (no stampede of pollers); the claim keeps the gap even when a worker's event loop
was busy. It then goes out in a Scrapy download slot of its own: the fleet's limits replace
Scrapy's per-host slot, whose delay would otherwise hold it again after its claim. It leaves
the in-flight set when its response or error comes back.
"Now" is Redis TIME: the workers' clocks never enter the arithmetic. If Redis fails or is
slow, the request goes ahead under Scrapy's local delay (still configured), with a
warning: politeness degrades to per-worker, captures never stop.

On when the setting ``CITEARCHIVE_FLEET_REDIS`` holds a redis:// URL; the delay and the
cap are Scrapy's DOWNLOAD_DELAY and CONCURRENT_REQUESTS_PER_DOMAIN (from [politeness]).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.httpobj import urlparse_cached

logger = logging.getLogger(__name__)

SETTING = "CITEARCHIVE_FLEET_REDIS"
KEY_PREFIX = "citearchive:polite:"
META_KEY = "citearchive_fleet_place"  # (host, token) of a request holding an in-flight place
# A browser request's wait for its slot, awaited by the spider just before navigation.
WAIT_KEY = "citearchive_fleet_wait"
CALL_TIMEOUT_S = 2.0  # one Redis round trip; slower than this and we go local
RETRY_REDIS_AFTER_S = 30.0  # after a failure, the local delay alone for this long
FULL_POLL_S = 0.2  # how often a request waits for a free place when the host is full
HOLD_MARGIN_S = 30.0  # an in-flight place outlives the download timeout by this much

# Both scripts: milliseconds of Redis TIME. KEYS: next slot, last send, in-flight set.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('GET', KEYS[2]) or '-1e15')
"""
# ARGV: delay, concurrency, hold, token, defer. Returns the wait until the slot; 0: claimed
# already (sent now) unless defer is 1 (the send is claimed later), -1: no free place.
RESERVE = (
    _NOW
    + """
local delay = tonumber(ARGV[1])
local hold = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[2]) then
  return -1
end
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'), last + delay)
local wait = slot - now
redis.call('SET', KEYS[1], slot + delay, 'PX', wait + delay + 60000)
redis.call('ZADD', KEYS[3], slot + hold, ARGV[4])
redis.call('PEXPIRE', KEYS[3], wait + hold + 60000)
if wait == 0 and ARGV[5] ~= '1' then
  redis.call('SET', KEYS[2], now, 'PX', delay + 60000)
end
return wait
"""
)
# ARGV: delay. Returns 0 when the send is recorded, else how long to wait first.
CLAIM = (
    _NOW
    + """
local delay = tonumber(ARGV[1])
if last + delay > now then
  return last + delay - now
end
redis.call('SET', KEYS[2], now, 'PX', delay + 60000)
return 0
"""
)


def _keys(host: str) -> list[str]:
    return [f"{KEY_PREFIX}{host}:{part}" for part in ("next", "last", "inflight")]


class FleetPolitenessMiddleware:
    """Holds per-host delay and concurrency across every worker sharing one Redis."""

    def __init__(self, redis_url: str, delay_s: float, concurrency: int, hold_s: float) -> None:
        self.redis_url = redis_url
        self.delay_ms = round(delay_s * 1000)
        self.concurrency = concurrency
        self.hold_ms = round(hold_s * 1000)
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._releases: set[asyncio.Future] = set()  # in flight, awaited by close()
        self._local_until = 0.0  # monotonic time before which Redis is not asked
        self.stats: Any = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FleetPolitenessMiddleware:
        url = crawler.settings.get(SETTING)
        if not url:
            raise NotConfigured(f"{SETTING} not set: per-worker politeness only")
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            # Never a reason to stop captures: the local delay still holds.
            logger.warning("fleet politeness off: %s is not a Redis URL", SETTING)
            raise NotConfigured(f"{SETTING} is not a Redis URL")
        middleware = cls(
            url,
            delay_s=crawler.settings.getfloat("DOWNLOAD_DELAY"),
            concurrency=crawler.settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN") or 1,
            hold_s=crawler.settings.getfloat("DOWNLOAD_TIMEOUT") + HOLD_MARGIN_S,
        )
        middleware.stats = crawler.stats
        crawler.signals.connect(middleware.close, signal=signals.spider_closed)
        return middleware

    def _redis(self) -> aioredis.Redis:
        # Made on first use, inside the reactor's asyncio loop that will run its calls.
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self.redis_url,
                socket_timeout=CALL_TIMEOUT_S,
                socket_connect_timeout=CALL_TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),  # a retry here only doubles the wait
            )
            self._scripts = {
                "reserve": self._client.register_script(RESERVE),
                "claim": self._client.register_script(CLAIM),
            }
        return self._client

    async def process_request(self, request: Request) -> None:
        host = urlparse_cached(request).hostname
        if not host or time.monotonic() < self._local_until:
            return
        token = secrets.token_hex(8)
        # A browser navigates only once its page is made, hundreds of ms later and not
        # equally so for each page: its send is claimed then (the spider awaits WAIT_KEY
        # in the page init callback), so the host sees the delay between navigations.
        defer = bool(request.meta.get("playwright"))
        args = [self.delay_ms, self.concurrency, self.hold_ms, token, int(defer)]
        while (wait_ms := await self._run("reserve", host, args)) == -1:
            await asyncio.sleep(FULL_POLL_S * (0.5 + random.random()))  # no free place yet
        if wait_ms is None:  # Redis failed: the local delay applies alone
            return
        request.meta[META_KEY] = (host, token)
        self._inc("slots")
        if defer:
            request.meta[WAIT_KEY] = functools.partial(self._claim, host, wait_ms)
        else:
            await self._claim(host, wait_ms, claimed=True)
        request.meta.setdefault("download_slot", f"{KEY_PREFIX}{host}#{token}")

    async def _claim(self, host: str, wait_ms: int, *, claimed: bool = False) -> None:
        """Wait for the slot, then record the send (``claimed``: reserve recorded it)."""
        while wait_ms or not claimed:
            if wait_ms:
                self._inc("waited_ms", wait_ms)
                await asyncio.sleep(wait_ms / 1000)
            found = await self._run("claim", host, [self.delay_ms])
            if found is None:  # Redis failed: sent under Scrapy's own per-host delay
                return
            wait_ms, claimed = found, True

    async def _run(self, script: str, host: str, args: list) -> int | None:
        """One script under a timeout; None (and the local delay for a while) if it fails."""
        try:
            self._redis()
            found = await asyncio.wait_for(
                self._scripts[script](keys=_keys(host), args=args), CALL_TIMEOUT_S
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._degrade(exc)
            return None
        return int(found)

    def _degrade(self, exc: BaseException) -> None:
        self._local_until = time.monotonic() + RETRY_REDIS_AFTER_S
        self._inc("degraded")
        logger.warning(
            "fleet politeness: Redis at %s failed (%s); per-worker delay only for %g s",
            self.redis_url,
            str(exc) or type(exc).__name__,
            RETRY_REDIS_AFTER_S,
        )

    def process_response(self, request: Request, response: Response) -> Response:
        self._free(request)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        self._free(request)

    def _free(self, request: Request) -> None:
        held = request.meta.pop(META_KEY, None)
        if held is None or self._client is None:
            return
        # Not awaited by the request: if this fails, the place expires anyway.
        release = asyncio.ensure_future(self._release(self._client, *held))
        self._releases.add(release)
        release.add_done_callback(self._releases.discard)

    async def _release(self, client: aioredis.Redis, host: str, token: str) -> None:
        try:
            await asyncio.wait_for(client.zrem(_keys(host)[2], token), CALL_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("fleet politeness: could not free a place on %s: %s", host, exc)

    async def close(self) -> None:
        if self._releases:
            await asyncio.wait(self._releases, timeout=CALL_TIMEOUT_S)
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _inc(self, name: str, count: int = 1) -> None:
        if self.stats is not None:
            self.stats.inc_value(f"citearchive/fleet_politeness/{name}", count)
