"""(g) what the media feature costs pages without media; (h) what a page's 3 s clip costs.

(g) captures the same media-free bench pages for the first time in fresh stores with
``[media] enabled = false`` and ``= true``, alternating which goes first in each round, and
reports the ratio of wall time and of CPU seconds (target: within noise, about 1.0). The
same comparison with media disabled on both sides (``g_control_*``) measures that noise.
(h) captures one page with a 3 s clip (tests/media_site.py ``/video.html``) and one page
without media, each alone in a fresh store, ``rounds`` times, and reports the medians.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from clips import make_clips  # noqa: E402
from media_site import MediaSite  # noqa: E402


def media_config(enabled: bool) -> str:
    return f"[media]\nenabled = {'true' if enabled else 'false'}\n"


def media_entries(store: Path) -> list[dict]:
    """Every media entry of every capture manifest in ``store``."""
    found: list[dict] = []
    for path in (store / "captures").glob("*/*.json"):
        found += json.loads(path.read_bytes()).get("media") or []
    return found


def ratios(by_state: dict[str, list[float]]) -> list[float]:
    return [round(a / b, 3) for a, b in zip(by_state["on"], by_state["off"], strict=True)]


def measure_overhead(
    archive_cls, root: Path, urls: list[str], rounds: int, concurrency: int, control: bool = False
):
    """(g): first capture of ``urls`` with media off and on, side by side.

    With ``control`` the "on" side has media disabled too (an A/A run): the spread of its
    ratios is the noise floor the real ratio is read against."""
    prefix = "g_control_" if control else "g_"
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    entries = 0
    for n in range(rounds):
        for state in ("off", "on") if n % 2 == 0 else ("on", "off"):
            enabled = state == "on" and not control
            name = f"{prefix}media-{state}-{n}"
            archive = archive_cls(root, name, concurrency, extra=media_config(enabled))
            archive.cli("add", *urls)
            sampled, counts = archive.run()
            if counts.get("new") != len(urls):
                raise RuntimeError(f"media {state}, round {n}: verdicts {dict(counts)}")
            seconds[state].append(sampled.seconds)
            cpu[state].append(sampled.cpu_seconds)
            entries += len(media_entries(archive.store))
    figures = {
        "pages": len(urls),
        "rounds": rounds,
        "media_off_s": round(sum(seconds["off"]), 2),
        "media_on_s": round(sum(seconds["on"]), 2),
        "on_over_off": round(sum(seconds["on"]) / sum(seconds["off"]), 3),
        "cpu_on_over_off": round(sum(cpu["on"]) / sum(cpu["off"]), 3),
        "on_over_off_by_round": ratios(seconds),
        "cpu_on_over_off_by_round": ratios(cpu),
        # per-round medians: one round disturbed by other load on the machine weighs less
        "on_over_off_median": round(statistics.median(ratios(seconds)), 3),
        "cpu_on_over_off_median": round(statistics.median(ratios(cpu)), 3),
        "media_entries": entries,  # media-free pages: must be 0
    }
    return {prefix + key: value for key, value in figures.items()}


def measure_clip(archive_cls, root: Path, rounds: int) -> dict:
    """(h): one page with a 3 s clip against one page without media, alone in a store."""
    site = MediaSite(make_clips(root / "clips"))
    cases = {
        "video": (site.url("/video.html"), True),
        "plain": (site.url("/plain.html"), True),
        "video_media_off": (site.url("/video.html"), False),
    }
    seconds: dict[str, list[float]] = {case: [] for case in cases}
    statuses: list[str] = []
    try:
        for n in range(rounds):
            for case, (url, enabled) in cases.items():
                archive = archive_cls(root, f"clip-{case}-{n}", 1, extra=media_config(enabled))
                archive.cli("add", url)
                sampled, counts = archive.run()
                if counts.get("new") != 1:
                    raise RuntimeError(f"{case}, round {n}: verdicts {dict(counts)}")
                seconds[case].append(sampled.seconds)
                if case == "video":
                    statuses += [e["status"] for e in media_entries(archive.store)]
    finally:
        site.stop()
    median = {case: statistics.median(s) for case, s in seconds.items()}
    return {
        "h_rounds": rounds,
        "h_video_page_s": round(median["video"], 2),
        "h_plain_page_s": round(median["plain"], 2),
        "h_video_page_media_off_s": round(median["video_media_off"], 2),
        "h_clip_cost_s": round(median["video"] - median["video_media_off"], 2),
        "h_video_over_plain": round(median["video"] / median["plain"], 3),
        "h_clip_statuses": sorted(set(statuses)),  # "preserved" once per round, else a warning
    }
