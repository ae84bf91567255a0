"""One scheduler per fleet: a lock in Redis that a second ``schedule`` cannot take.

The lock is a key set with NX and a TTL (``SET key holder NX PX ttl``), renewed every
third of the TTL while the scheduler runs and deleted when it exits. A scheduler that dies
without releasing it (SIGKILL, power) frees it when the TTL runs out. If Redis restarts
and forgets the key, the next renewal takes it back; if by then another scheduler holds it,
this one has lost the lock and is told so (by default it is sent SIGTERM and stops as on
Ctrl-C), so two schedulers overlap for at most one renewal period.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import urlsplit

import redis

from crawler.config import Config
from crawler.errors import LockedError, StorageError

logger = logging.getLogger(__name__)

KEY_PREFIX = "citearchive:scheduler:"
DEFAULT_TTL_S = 30.0
CALL_TIMEOUT_S = 5.0
_ERRORS = (redis.RedisError, OSError)

# KEYS: the lock. ARGV: our holder value, ttl ms. 1: ours (renewed or taken back), 0: lost.
RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + netloc).geturl()


def _stop_this_process() -> None:
    # The scheduler's own SIGTERM handling stops it cleanly (crawler/daemon.py).
    os.kill(os.getpid(), signal.SIGTERM)


class SchedulerGuard:
    """The lock on ``name`` in the Redis at ``redis_url``; ``acquire``, ``renew``, ``release``."""

    def __init__(
        self,
        redis_url: str,
        name: str,
        ttl_s: float = DEFAULT_TTL_S,
        on_lost: Callable[[], None] = _stop_this_process,
    ) -> None:
        self.redis_url = redis_url
        self.key = KEY_PREFIX + name
        self.ttl_ms = round(ttl_s * 1000)
        self.on_lost = on_lost
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # Readable in the refusal message of a second scheduler; the suffix makes it ours.
        self.holder = (
            f"{socket.gethostname()} pid {os.getpid()} since {started} #{secrets.token_hex(4)}"
        )
        self._client = redis.Redis.from_url(
            redis_url, socket_timeout=CALL_TIMEOUT_S, socket_connect_timeout=CALL_TIMEOUT_S
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lock and start renewing it; LockedError if another scheduler holds it."""
        try:
            taken = self._client.set(self.key, self.holder, nx=True, px=self.ttl_ms)
            holder = None if taken else self._client.get(self.key)
        except _ERRORS as exc:
            raise StorageError(
                f"schedule: the fleet's Redis at {redacted(self.redis_url)} did not answer: {exc}"
            ) from exc
        if not taken:
            who = holder.decode(errors="replace").split(" #")[0] if holder else "unknown"
            raise LockedError(
                f"schedule: another scheduler already runs for this fleet ({who}; lock "
                f"{self.key} in {redacted(self.redis_url)})"
            )
        self._thread = threading.Thread(target=self._keep, name="scheduler-guard", daemon=True)
        self._thread.start()

    def renew(self) -> bool:
        """Extend the lock; False when another scheduler holds it now. Redis errors raise."""
        return bool(self._client.eval(RENEW, 1, self.key, self.holder, self.ttl_ms))

    def _keep(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                ours = self.renew()
            except _ERRORS as exc:
                # Not fatal yet: the lock lasts a TTL, and another scheduler that takes it
                # meanwhile is noticed by the next renewal that gets through.
                logger.warning("scheduler guard: cannot renew %s: %s", self.key, exc)
                continue
            if not ours:
                logger.error("scheduler guard: another scheduler took %s; stopping", self.key)
                self.on_lost()
                return

    def release(self) -> None:
        """Stop renewing and delete the lock if it is still ours (a failure only logs)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._client.eval(RELEASE, 1, self.key, self.holder)
        except _ERRORS as exc:
            logger.warning(
                "scheduler guard: cannot release %s (expires by itself): %s", self.key, exc
            )
        finally:
            self._client.close()


@contextmanager
def hold_scheduler(
    redis_url: str, name: str, ttl_s: float = DEFAULT_TTL_S
) -> Iterator[SchedulerGuard]:
    """Hold the single-scheduler lock ``name`` for the block (LockedError: someone has it)."""
    guard = SchedulerGuard(redis_url, name, ttl_s)
    guard.acquire()
    try:
        yield guard
    finally:
        guard.release()


@contextmanager
def scheduler_guard(config: Config) -> Iterator[SchedulerGuard | None]:
    """hold_scheduler on the fleet's Redis, one lock per queue; no Redis: nothing to hold."""
    from crawler.fleet.app import redis_url  # here: the Celery app is not needed otherwise

    url = redis_url(config)
    if url is None:
        logger.warning("no Redis for the scheduler guard: run one scheduler for the fleet")
        yield None
        return
    with hold_scheduler(url, config.queue.queue_name) as guard:
        yield guard
