"""A real Redis for tests and the bench: /usr/bin/redis-server on a free loopback port.

No persistence (``--save "" --appendonly no``), its own temporary directory, and a
``restart()`` that keeps the port so clients can reconnect to the same URL.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT_S = 15.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it, as with port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server process; ``url``, ``restart()``, ``flush()``, ``stop()``."""

    def __init__(self, workdir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.workdir = workdir
        self.host = host
        self.port = port or free_port(host)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client for setup and inspection, independent of the code under test."""
        return redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)

    def start(self) -> None:
        log = (self.workdir / "redis.log").open("ab")
        args = {
            "--bind": self.host,
            "--port": str(self.port),
            "--save": "",
            "--appendonly": "no",
            "--dir": str(self.workdir),
            "--protected-mode": "no",
        }
        self.proc = subprocess.Popen(
            [REDIS_SERVER, *(part for pair in args.items() for part in pair)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Return once PING answers; fail with the server's log if it died or never did."""
        deadline = time.monotonic() + START_TIMEOUT_S
        client = self.client()
        try:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {self._log_tail()}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server not ready: {self._log_tail()}")
                time.sleep(0.05)  # polling a port: no event to wait on
        finally:
            client.close()

    def _log_tail(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port (the data is gone: no persistence)."""
        self.stop()
        self.start()

    def flush(self) -> None:
        with self.client() as client:
            client.flushall()


@contextmanager
def running_redis_server(host: str = "127.0.0.1", port: int = 0) -> Iterator[RedisServer]:
    """A started RedisServer in its own temporary directory, stopped and removed after."""
    workdir = Path(tempfile.mkdtemp(prefix="citearchive-redis-"))
    server = RedisServer(workdir, host=host, port=port)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server on loopback, shared by the whole session."""
    with running_redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's Redis, emptied for this test (started again if a test stopped it)."""
    if redis_server.proc is None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url
