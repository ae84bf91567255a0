"""Profile the capture path: a first capture of the bench site under py-spy.

Samples the citearchive process (all its threads, idle ones included, so waiting on
Chromium shows as the reactor's select) and prints where the time goes: each frame's share
of the samples, inclusive, for citearchive's own modules and the libraries they call.
Chromium's own work is not in a Python profile: the bench's (b)/(a) ratio covers it.

    .venv/bin/python bench/profile.py [--pages 80] [--out profile.txt]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchsite import BenchSite  # noqa: E402
from run import EXE, Archive  # noqa: E402

OURS = ("crawler/", "spiders/", "storage/", "trafilatura", "warcio", "sqlalchemy", "selectors")


def summarise(folded: Path, top: int = 30) -> list[tuple[float, str]]:
    inclusive: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        frames = {re.sub(r":\d+\)$", ")", f) for f in stack.split(";")}
        for frame in frames:
            inclusive[frame] += int(count)
    rows = [(n / total, f) for f, n in inclusive.most_common() if any(o in f for o in OURS)]
    return rows[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=80)
    parser.add_argument("--out", type=Path, default=Path("profile.txt"))
    args = parser.parse_args()
    site = BenchSite(args.pages, scripted_every=0)
    site.start()
    py_spy = Path(sys.executable).parent / "py-spy"
    with tempfile.TemporaryDirectory() as tmp:
        archive = Archive(Path(tmp), "profile", 4)
        archive.cli("add", *site.urls())
        folded = Path(tmp) / "folded.txt"
        subprocess.run(
            [
                str(py_spy),
                "record",
                "--idle",
                "-r",
                "100",
                "-f",
                "raw",
                "-o",
                str(folded),
                "--",
                EXE,
                "--config",
                str(archive.config),
                "run-once",
                "--all",
            ],
            check=True,
            capture_output=True,
        )
        rows = summarise(folded)
    site.stop()
    text = "\n".join(f"{share:6.1%}  {frame}" for share, frame in rows)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
