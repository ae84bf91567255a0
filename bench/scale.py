"""Status and due selection with many registered sources, on SQLite and on PostgreSQL.

Fills a fresh index with N sources (each with two captures, one of every tenth source
unreachable) straight through SQLAlchemy, then times what a user waits for: the
`status` command (whole process, as a cron job or a person runs it, output discarded;
the median of 5 runs), `status --json` (likewise), and selecting the due sources (in
process, as `run-once` does it).

PostgreSQL: a server of its own, started like the tests' fixture (tests/pgserver.py), or
the database of ``--index-url``. Run alone: ``python bench/scale.py --sources 100000
--postgresql``; `make bench` runs both backends (bench/run.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from pgserver import running_pg_server  # noqa: E402

from crawler.app import App  # noqa: E402
from crawler.config import load_config  # noqa: E402
from storage import index as index_module  # noqa: E402
from storage.ids import format_rfc3339, source_id  # noqa: E402


def _fill(url: str, count: int) -> None:
    index = index_module.Index(url)
    now = datetime.now(UTC)
    sources, captures = [], []
    for n in range(count):
        canonical = f"https://news{n % 500}.example/story/{n}"
        sid = source_id(canonical)
        when = [format_rfc3339(now - timedelta(hours=h + n % 48)) for h in (48, 1)]
        sources.append(
            {
                "id": sid,
                "canonical_url": canonical,
                "urls": [canonical],
                "added_at": format_rfc3339(now - timedelta(days=10)),
                "citations": [{"document": "bench.md", "passage": None}],
                "removed_at": None,
                "last_captured_at": when[1],
                "next_due_at": format_rfc3339(now + timedelta(hours=(n % 48) - 24)),
            }
        )
        for i, at in enumerate(when):
            verdict = "unreachable" if (i == 1 and n % 10 == 0) else ("new", "unchanged")[i]
            captures.append(
                {
                    "id": f"{n:08x}{i:08x}",
                    "source_id": sid,
                    "captured_at": at,
                    "verdict": verdict,
                    "reason": "",
                    "http_status": None if verdict == "unreachable" else 200,
                    "final_url": canonical,
                    "error": None,
                    "manifest_key": f"captures/{sid}/{i}.json",
                    "manifest_sha256": "0" * 64,
                    "text_sha256": "1" * 64,
                    "artifacts": {},
                    "next_due_at": None,
                }
            )
    with index.engine.begin() as conn:
        conn.execute(index_module.sources_table.insert(), sources)
        conn.execute(index_module.captures_table.insert(), captures)
        index.refresh_all_sources(conn)
    if index.dialect == "postgresql":
        # What autovacuum does soon after a bulk load: the planner's statistics.
        with index.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
    index.close()


def _timed_cli(exe: str, config: Path, *args: str) -> tuple[float, float]:
    """Wall and CPU seconds of one command.

    On a loaded machine the wall time says more about the neighbours than about
    citearchive; the CPU time is the command's own (not the database server's).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run([exe, "--config", str(config), *args], check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _median_cli(exe: str, config: Path, *args: str, runs: int = 5) -> tuple[float, float]:
    """Median wall and CPU seconds of ``runs`` runs: one run on this shared machine varies
    by a third from one minute to the next."""
    walls, cpus = zip(*(_timed_cli(exe, config, *args) for _ in range(runs)), strict=True)
    return statistics.median(walls), statistics.median(cpus)


def measure_scale(
    root: Path, count: int, exe: str, index_url: str = "", prefix: str = "scale"
) -> dict:
    """Fill an index of ``count`` sources (SQLite beside the store, or ``index_url``), time it.

    Keys start with ``prefix``: scale_* for SQLite, scale_pg_* for PostgreSQL.
    """
    root.mkdir(parents=True)
    config_path = root / "citearchive.toml"
    index = f'[index]\nurl = "{index_url}"\n' if index_url else ""
    config_path.write_text(f'[store]\nurl = "file://{root / "store"}"\n{index}')
    config = load_config(str(config_path))
    start = time.monotonic()
    _fill(config.index_url, count)
    result = {f"{prefix}_sources": count, f"{prefix}_fill_s": round(time.monotonic() - start, 1)}
    _timed_cli(exe, config_path, "status")  # warm the page cache once, as a second run would
    wall, cpu = _median_cli(exe, config_path, "status")
    result[f"{prefix}_status_s"], result[f"{prefix}_status_cpu_s"] = round(wall, 3), round(cpu, 3)
    wall, cpu = _median_cli(exe, config_path, "status", "--json")
    result[f"{prefix}_status_json_s"] = round(wall, 3)
    result[f"{prefix}_status_json_cpu_s"] = round(cpu, 3)
    app = App.open(config)
    try:
        start, cpu = time.monotonic(), time.process_time()
        due = app.due_sources(everything=False)
        result[f"{prefix}_due_select_s"] = round(time.monotonic() - start, 3)
        result[f"{prefix}_due_select_cpu_s"] = round(time.process_time() - cpu, 3)
        result[f"{prefix}_due_sources"] = len(due)
        start = time.monotonic()
        app.due_sources(everything=False, limit=config.schedule.batch_size)
        result[f"{prefix}_due_select_batch_s"] = round(time.monotonic() - start, 3)
        start = time.monotonic()
        app.count_due()
        result[f"{prefix}_due_count_s"] = round(time.monotonic() - start, 3)
    finally:
        app.close()
    return result


def measure_scale_postgresql(root: Path, count: int, exe: str, index_url: str = "") -> dict:
    """The scale run on PostgreSQL: ``index_url`` (an empty database), or a server of its own."""
    if index_url:
        return measure_scale(root, count, exe, index_url, prefix="scale_pg")
    with running_pg_server() as server:
        return measure_scale(root, count, exe, server.create_database("bench"), "scale_pg")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=100_000)
    backend = parser.add_mutually_exclusive_group()
    backend.add_argument("--index-url", default="", help="an empty PostgreSQL database")
    backend.add_argument("--postgresql", action="store_true", help="start a server of its own")
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "citearchive")
    with tempfile.TemporaryDirectory() as tmp:
        if args.index_url or args.postgresql:
            result = measure_scale_postgresql(Path(tmp) / "s", args.sources, exe, args.index_url)
        else:
            result = measure_scale(Path(tmp) / "s", args.sources, exe)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
