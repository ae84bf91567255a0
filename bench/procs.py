"""Run a command and sample the resident memory of its whole process tree.

The tree is citearchive plus the Chromium it starts (browser, GPU-less renderers, zygotes).
RSS is summed over the tree, which counts pages shared between Chromium's processes more
than once: an upper bound, the same way each time, so runs stay comparable.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psutil


def tree_sample(proc: psutil.Process, cpu: dict[int, float]) -> int:
    """The tree's summed RSS; records each member's CPU seconds so far in ``cpu``."""
    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied), member.oneshot():
            total += member.memory_info().rss
            times = member.cpu_times()
            cpu[member.pid] = times.user + times.system
    return total


@dataclass
class Sampled:
    seconds: float
    peak_rss: int
    # CPU seconds of the whole tree, as last sampled per process (a process's last quarter
    # second before it exits can be missed: a slight undercount).
    cpu_seconds: float = 0.0
    stdout: str = ""
    # (seconds since start, tree RSS, progress()) at each sample
    samples: list[tuple[float, int, int]] = field(default_factory=list)


def run_sampled(
    argv: Sequence[str], progress: Callable[[], int] = lambda: 0, every: float = 0.25
) -> Sampled:
    """Run ``argv`` to completion (check=True semantics) while sampling its tree's RSS."""
    start = time.monotonic()
    proc = psutil.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    result = Sampled(0.0, 0)
    done = threading.Event()
    cpu: dict[int, float] = {}

    def sample() -> None:
        while not done.wait(every):
            rss = tree_sample(proc, cpu)
            result.samples.append((time.monotonic() - start, rss, progress()))
            result.peak_rss = max(result.peak_rss, rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    result.seconds = time.monotonic() - start
    result.cpu_seconds = sum(cpu.values())
    result.stdout = out.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.decode()[-2000:]}")
    return result


def flatness(samples: list[tuple[float, int, int]], total: int, warmup: float = 0.2) -> dict:
    """RSS after warm-up, in tenths of the work done: min, max and spread around the mean."""
    by_tenth: dict[int, list[int]] = {}
    for _, rss, done in samples:
        if total and done >= warmup * total:
            by_tenth.setdefault(min(9, done * 10 // total), []).append(rss)
    if not by_tenth:
        return {}
    medians = {k: sorted(v)[len(v) // 2] for k, v in sorted(by_tenth.items())}
    mean = sum(medians.values()) / len(medians)
    return {
        "rss_mb_by_tenth": {f"{k * 10}%": round(v / 2**20) for k, v in medians.items()},
        "rss_spread_after_warmup": round(max(abs(v - mean) for v in medians.values()) / mean, 3),
    }
