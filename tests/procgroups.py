"""Stopping the process groups a test or bench started (workers with their crawls)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable


def stop_groups(procs: Iterable[subprocess.Popen], grace_s: float = 60) -> list[subprocess.Popen]:
    """SIGTERM every group still running, then wait; a group that has not stopped within
    ``grace_s`` gets SIGKILL. Returns those that had to be killed."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    killed = []
    for proc in procs:
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            killed.append(proc)
    return killed
