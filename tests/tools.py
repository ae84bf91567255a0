"""Replay and validation tools the export tests drive: py-wacz and pywb.

They pin old redis/cryptography, so they live in their own venv, ``.venv-tools``, which
``make tools`` (a dependency of ``make test``) builds. Missing tools fail the tests: CI must
never pass by skipping the replay checks.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = ROOT / ".venv-tools" / "bin"


def tool(name: str) -> Path:
    """Path of a tool in .venv-tools; the calling test fails if it is missing."""
    path = TOOLS_BIN / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make tools` (it builds .venv-tools with pywb, wacz)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Poll until something accepts connections on 127.0.0.1:port (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


@contextmanager
def wayback(root: Path) -> Iterator[int]:
    """Run pywb's ``wayback`` in ``root`` on a free loopback port; yield the port."""
    port = free_port()
    log = (root / "wayback.log").open("wb")
    proc = subprocess.Popen(
        [str(tool("wayback")), "-p", str(port), "-b", "127.0.0.1"],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
