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


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += member.memory_info().rss
    return total


@dataclass
class Sampled:
    seconds: float
    peak_rss: int
    # (seconds since start, tree RSS, progress()) at each sample
    samples: list[tuple[float, int, int]] = field(default_factory=list)


def run_sampled(
    argv: Sequence[str], progress: Callable[[], int] = lambda: 0, every: float = 0.25
) -> Sampled:
    """Run ``argv`` to completion (check=True semantics) while sampling its tree's RSS."""
    start = time.monotonic()
    proc = psutil.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    result = Sampled(0.0, 0)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every):
            rss = tree_rss(proc)
            result.samples.append((time.monotonic() - start, rss, progress()))
            result.peak_rss = max(result.peak_rss, rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    done.set()
    sampler.join()
    result.seconds = time.monotonic() - start
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
