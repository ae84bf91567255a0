"""Fleet scale-out: the same N pages captured by 1, 2 and 4 `citearchive worker`s.

Real redis-server (broker, results) and PostgreSQL 15 (index), started as the tests start
them (tests/redisserver.py, tests/pgserver.py); a shared folder store. Each worker captures
one page at a time ([crawl] concurrency = 1); the local site answers each page after
``--page-wait`` seconds, so a worker spends most of a page waiting, as on the real web, and
the per-host politeness delay is 0 for this host. Each round gets a fresh index, store and
queue, its own page URLs and freshly started, idle workers.

Reports per round: pages/min (enqueue of the first task to the last task's result), and
the queue overhead of each task: from the moment it could start (enqueued, and its worker
free) to its start (the batch run record, written once its leases are taken), i.e. result
store + ack + fetch + lease. Ratios 2w/1w and 4w/1w come from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchsite import SlowSite  # noqa: E402
from pgserver import running_pg_server  # noqa: E402
from procgroups import stop_groups  # noqa: E402
from redisserver import running_redis_server  # noqa: E402

from crawler.app import App  # noqa: E402
from crawler.config import load_config  # noqa: E402
from crawler.fleet.app import make_app  # noqa: E402
from crawler.fleet.enqueue import enqueue_sources, wait  # noqa: E402
from storage.index import Index  # noqa: E402
from storage.runlog import RunLog  # noqa: E402

READY_TIMEOUT_S = 180.0


def config_text(store: Path, index_url: str, redis_url: str, batch_size: int) -> str:
    return (
        f'[store]\nurl = "{store.as_uri()}"\nshared = true\n\n'
        f'[index]\nurl = "{index_url}"\n\n'
        f'[queue]\nbroker = "{redis_url}"\nbatch_size = {batch_size}\nlease_seconds = 60\n\n'
        "[crawl]\nallow_private_networks = true\nconcurrency = 1\n\n"
        # The bench host is ours: no delay, and room for every worker at once.
        "[politeness]\nper_host_delay = 0\nper_host_concurrency = 8\n"
    )


def cli(config: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "crawler.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=config.parent,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"citearchive {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


@contextmanager
def workers(root: Path, config: Path, count: int) -> Iterator[list[str]]:
    """``count`` worker processes, each in its own folder; yields their names once ready."""
    names = [f"w{n}" for n in range(count)]
    procs = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in names:
        home = root / name
        home.mkdir(parents=True)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "crawler.cli", "--config", str(config), "worker",
                 "--hostname", f"{name}@bench"],
                cwd=home,
                env={**env, "HOME": str(home)},
                stdin=subprocess.DEVNULL,
                stdout=(home / "worker.log").open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )  # fmt: skip
    try:
        app = make_app(load_config(config))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(app.control.ping(timeout=1.0)) < count:  # a worker answers once consuming
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"workers not ready; logs in {root}")
        yield names
    finally:
        stop_groups(procs, grace_s=120)


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def overheads(index_url: str, enqueued_at: str) -> list[float]:
    """Per task: its start minus the moment it could start (enqueued, its worker free)."""
    with Index(index_url) as index:
        batches = [r for r in RunLog(index).recent(10_000) if r.kind == "batch"]
    found = []
    free_since: dict[str, float] = {}
    for run in sorted(batches, key=lambda r: r.started_at):
        start = _time(run.started_at)
        ready = max(_time(enqueued_at), free_since.get(run.worker or "", 0.0))
        found.append(start - ready)
        if run.ended_at:
            free_since[run.worker or ""] = _time(run.ended_at)
    return found


def one_round(root: Path, pg, redis, site: SlowSite, count: int, pages: int, batch: int) -> dict:
    redis.flush()
    index_url = pg.create_database(f"fleet_{count}w_{os.getpid()}")
    config = root / "citearchive.toml"
    config.parent.mkdir(parents=True)
    config.write_text(config_text(root / "store", index_url, redis.url, batch))
    cli(config, "add", *[f"{site.base}/{count}w/p{n}" for n in range(pages)])
    loaded = load_config(config)
    app = App.open(loaded)
    try:
        ids = [s.id for s in app.due_sources(True)]
        # Made now: workers that all create it at once on a fresh database collide.
        RunLog(app.index)
    finally:
        app.close()
    with workers(root / "workers", config, count):
        celery = make_app(loaded)
        started = time.monotonic()
        enqueued = enqueue_sources(celery, loaded, ids)
        waited = wait(celery, loaded, enqueued)
        summaries, errors = waited.summaries, waited.errors
        seconds = time.monotonic() - started
        load = os.getloadavg()[0]  # the machine is shared: how busy it was meanwhile
    captured = sum(len(s.get("results", [])) for s in summaries)
    found = overheads(index_url, enqueued.enqueued_at)
    return {
        "seconds": round(seconds, 1),
        "pages_per_min": round(pages / seconds * 60, 1),
        "tasks": len(enqueued.tasks),
        "captured": captured,
        "errors": errors,
        "queue_overhead_median_s": round(statistics.median(found), 3) if found else None,
        "queue_overhead_max_s": round(max(found), 3) if found else None,
        "loadavg_1min": round(load, 1),
    }


def measure_fleet(
    root: Path, pages: int = 48, counts: tuple[int, ...] = (1, 2, 4), page_wait: float = 2.0,
    batch: int = 12,
) -> dict:  # fmt: skip
    """The fleet figures, keys prefixed ``fleet_`` for bench/run.py's result file."""
    r: dict = {"fleet_pages": pages, "fleet_page_wait_s": page_wait, "fleet_batch_size": batch}
    site = SlowSite(page_wait)
    try:
        with running_redis_server() as redis, running_pg_server() as pg:
            for count in counts:
                found = one_round(root / f"{count}w", pg, redis, site, count, pages, batch)
                for key, value in found.items():
                    r[f"fleet_{count}w_{key}"] = value
    finally:
        site.stop()
    base = r.get("fleet_1w_pages_per_min")
    for count in counts:
        if base and count > 1:
            r[f"fleet_{count}w_over_1w"] = round(r[f"fleet_{count}w_pages_per_min"] / base, 2)
    return r


def fleet_ok(r: dict) -> bool:
    """Every round captured every page without a task error."""
    rounds = [k[: -len("_captured")] for k in r if k.endswith("_captured")]
    return all(r[f"{k}_captured"] == r["fleet_pages"] and not r[f"{k}_errors"] for k in rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=48)
    parser.add_argument("--page-wait", type=float, default=2.0)
    # 24 pages in 4 tasks: 4 workers get one each; a task's crawl process and Chromium
    # start-up are shared by 6 pages.
    parser.add_argument("--batch-size", type=int, default=12, help="sources per task")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    args = parser.parse_args()
    counts = tuple(int(n) for n in args.workers.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        r = measure_fleet(Path(tmp), args.pages, counts, args.page_wait, args.batch_size)
    for key, value in r.items():
        print(f"{key:40} {value}")
    print(json.dumps(r))
    return 0 if fleet_ok(r) else 1


if __name__ == "__main__":
    sys.exit(main())
