"""`make bench`: how fast citearchive captures and re-checks, next to the browser's own limit.

One run, one machine, side by side:
  (a) bare   - a plain Playwright loop over the pages (DOM + full-page screenshot, no storage);
  (b) first  - citearchive's first capture of the same pages (the real CLI, `run-once --all`);
  (c) again  - a re-check with nothing changed, for static and for scripted pages;
  (d) edited - a re-check after K pages were edited: exactly K must be `changed`;
  (e) peak RSS of citearchive plus its Chromium, and RSS over a long run (--soak captures);
  (f) bytes added to the store per unchanged re-check;
  (g) first capture of media-free pages with [media] enabled and disabled: the ratio;
  (h) one page with a 3 s clip against one page without media;
  (tabs) Chromium's CPU per page with a new tab per page against one kept tab;
  and, with --scale sources in the index, how long `status` and the due selection take,
  on SQLite and on PostgreSQL (a server of its own, or --scale-index-url).
Prints the figures and ratios and writes them to bench/results/<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from benchsite import BenchSite  # noqa: E402
from fleet import fleet_ok, measure_fleet  # noqa: E402
from media import measure_clip, measure_overhead  # noqa: E402
from procs import Sampled, flatness, run_sampled  # noqa: E402
from scale import measure_scale, measure_scale_postgresql  # noqa: E402
from tabs import measure_tabs  # noqa: E402

EXE = str(Path(sys.executable).parent / "citearchive")
SUMMARY = re.compile(r"captured (\d+) of (\d+) due sources(?:: (.*))?")


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class Archive:
    """One config + store driven through the real command line."""

    def __init__(self, root: Path, name: str, concurrency: int, extra: str = "") -> None:
        self.store = root / name / "store"
        self.config = root / name / "citearchive.toml"
        self.config.parent.mkdir(parents=True)
        self.config.write_text(
            f'[store]\nurl = "file://{self.store}"\n'
            f"[crawl]\nallow_private_networks = true\nconcurrency = {concurrency}\n"
            # One loopback host serves every page: a per-host delay would measure the delay.
            f"[politeness]\nper_host_delay = 0\nper_host_concurrency = {concurrency}\n{extra}"
        )

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [EXE, "--config", str(self.config), *args], check=True, capture_output=True, text=True
        )
        return done.stdout

    def run(self, progress=lambda: 0) -> tuple[Sampled, Counter[str]]:
        """run-once --all: time, RSS and CPU of the process tree, and the verdicts."""
        sampled = run_sampled([EXE, "--config", str(self.config), "run-once", "--all"], progress)
        return sampled, self.verdicts()

    def verdicts(self) -> Counter[str]:
        """Verdicts of the latest run, from the run log."""
        runs = json.loads(self.cli("runs", "--json", "--limit", "1"))
        return Counter(runs[0]["counts"]) if runs else Counter()

    def stored_bytes(self) -> int:
        """What the store holds: blobs, manifests, source records (not the index)."""
        return sum(tree_size(self.store / d) for d in ("blobs", "captures", "sources", "probes"))

    def index_bytes(self) -> int:
        """The SQLite index beside the store: derived data, rebuilt by `reindex`."""
        return sum(f.stat().st_size for f in self.store.glob("index.sqlite*"))


def run_bare(urls: list[str], concurrency: int, root: Path) -> tuple[float, Sampled]:
    """(a) in its own process, sampled like citearchive: loop seconds, and the samples."""
    listing = root / "bare-urls.txt"
    listing.write_text("\n".join(urls))
    sampled = run_sampled([sys.executable, str(HERE / "bare.py"), str(concurrency), str(listing)])
    return float(sampled.stdout.split()[-1]), sampled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--scripted-every", type=int, default=4, help="every Nth page is scripted")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--edits", type=int, default=10, help="K pages edited for (d)")
    parser.add_argument("--soak", type=int, default=1000, help="captures in the RSS run (0: skip)")
    parser.add_argument("--scale", type=int, default=100_000, help="sources for status (0: skip)")
    parser.add_argument(
        "--scale-index-url", default="", help="empty PostgreSQL database for --scale (default: own)"
    )
    parser.add_argument("--media-pages", type=int, default=40, help="pages for (g)")
    parser.add_argument("--media-rounds", type=int, default=3, help="(g) and (h) rounds (0: skip)")
    parser.add_argument("--fleet-pages", type=int, default=48, help="fleet run pages (0: skip)")
    parser.add_argument("--tab-pages", type=int, default=30, help="pages per tabs mode (0: skip)")
    parser.add_argument("--keep", type=Path, help="keep the archives in this new folder")
    args = parser.parse_args()

    site = BenchSite(max(args.pages, args.soak, args.media_pages), args.scripted_every)
    site.start()
    pages = range(args.pages)
    static = [n for n in pages if not site.scripted(n)]
    scripted = [n for n in pages if site.scripted(n)]
    r: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "pages": args.pages,
        "static_pages": len(static),
        "scripted_pages": len(scripted),
        "concurrency": args.concurrency,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        bare_s, bare = run_bare([f"{site.base}/a/{n}" for n in pages], args.concurrency, root)
        r["a_bare_s"] = round(bare_s, 2)
        r["a_bare_pages_per_min"] = round(args.pages / bare_s * 60, 1)
        r["a_bare_cpu_s_per_page"] = round(bare.cpu_seconds / args.pages, 3)
        r["a_bare_peak_rss_mb"] = round(bare.peak_rss / 2**20)

        kinds = {"static": static, "scripted": scripted}
        archives = {k: Archive(root, k, args.concurrency) for k, ns in kinds.items() if ns}
        for kind, archive in archives.items():
            archive.cli("add", *[f"{site.base}/a/{n}" for n in kinds[kind]])
        first_s, first_cpu, peak = 0.0, 0.0, 0
        for kind, archive in archives.items():
            sampled, counts = archive.run()
            first_s += sampled.seconds
            first_cpu += sampled.cpu_seconds
            peak = max(peak, sampled.peak_rss)
            r[f"b_first_{kind}_s"] = round(sampled.seconds, 2)
            r[f"first_{kind}_cpu_s_per_page"] = round(sampled.cpu_seconds / len(kinds[kind]), 3)
            r[f"first_{kind}_verdicts"] = dict(counts)
        r["b_first_s"] = round(first_s, 2)
        r["b_first_pages_per_min"] = round(args.pages / first_s * 60, 1)
        r["b_over_a"] = round(r["b_first_pages_per_min"] / r["a_bare_pages_per_min"], 3)
        # CPU seconds of citearchive + Chromium per capture: what "captures per core" rests on.
        r["first_captures_per_cpu_minute"] = round(args.pages / first_cpu * 60, 1)
        r["store_bytes_per_page"] = sum(a.stored_bytes() for a in archives.values()) // args.pages

        recheck_s, added, index_added = 0.0, 0, 0
        for kind, archive in archives.items():
            before, index_before = archive.stored_bytes(), archive.index_bytes()
            sampled, counts = archive.run()
            peak = max(peak, sampled.peak_rss)
            recheck_s += sampled.seconds
            added += archive.stored_bytes() - before
            index_added += archive.index_bytes() - index_before
            r[f"c_recheck_{kind}_s"] = round(sampled.seconds, 2)
            r[f"c_{kind}_speedup"] = round(r[f"b_first_{kind}_s"] / sampled.seconds, 2)
            r[f"recheck_{kind}_cpu_s_per_page"] = round(sampled.cpu_seconds / len(kinds[kind]), 3)
            r[f"recheck_{kind}_verdicts"] = dict(counts)
        r["c_recheck_s"] = round(recheck_s, 2)
        r["c_over_b"] = round(recheck_s / first_s, 3)
        r["f_bytes_added_per_unchanged_recheck"] = added // args.pages
        r["f_index_bytes_per_unchanged_recheck"] = index_added // args.pages

        edited = static[: args.edits - args.edits // 2] + scripted[: args.edits // 2]
        for n in edited:
            site.edit(n)
        changed: Counter[str] = Counter()
        for kind, archive in archives.items():
            sampled, counts = archive.run()
            peak = max(peak, sampled.peak_rss)
            changed.update(counts)
            r[f"d_edited_{kind}_s"] = round(sampled.seconds, 2)
        r["d_edited_pages"] = len(edited)
        r["d_verdicts"] = dict(changed)
        r["d_exactly_k_changed"] = changed["changed"] == len(edited) and changed[
            "unchanged"
        ] == args.pages - len(edited)
        r["e_peak_rss_mb"] = round(peak / 2**20)

        if args.media_rounds:
            urls = [f"{site.base}/a/{n}" for n in range(args.media_pages)]
            for control in (False, True):
                r.update(
                    measure_overhead(
                        Archive, root, urls, args.media_rounds, args.concurrency, control
                    )
                )
            r.update(measure_clip(Archive, root, max(3, args.media_rounds)))
        if args.tab_pages:
            r.update(measure_tabs(args.tab_pages))
        if args.soak:
            soak = Archive(root, "soak", args.concurrency)
            soak.cli("add", *[f"{site.base}/a/{n}" for n in range(args.soak)])
            hits_before = site.page_hits()
            sampled, counts = soak.run(lambda: site.page_hits() - hits_before)
            r["soak_captures"] = sum(counts.values())
            r["soak_s"] = round(sampled.seconds, 1)
            r["soak_pages_per_min"] = round(args.soak / sampled.seconds * 60, 1)
            r["soak_peak_rss_mb"] = round(sampled.peak_rss / 2**20)
            r.update(flatness(sampled.samples, args.soak))
        if args.scale:
            r.update(measure_scale(root / "scale", args.scale, EXE))
        if args.fleet_pages:
            r.update(measure_fleet(root / "fleet", args.fleet_pages))
            r.update(
                measure_scale_postgresql(root / "scale-pg", args.scale, EXE, args.scale_index_url)
            )
    site.stop()

    for key, value in r.items():
        print(f"{key:40} {value}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{r['when'].replace(':', '')}.json").write_text(json.dumps(r, indent=2) + "\n")
    ok = r["d_exactly_k_changed"]
    # (g) and (h) measure what they claim only if the pages really have no media and the
    # clip really was preserved.
    ok = ok and r.get("g_media_entries", 0) == 0
    ok = ok and r.get("h_clip_statuses", ["preserved"]) == ["preserved"]
    ok = ok and fleet_ok(r)
    return 0 if ok else 1


if __name__ == "__main__":
    start = time.monotonic()
    code = main()
    print(f"bench took {time.monotonic() - start:.0f} s")
    sys.exit(code)
