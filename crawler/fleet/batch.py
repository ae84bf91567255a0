"""One leased batch captured in a crawl process of its own: ``python -m crawler.fleet.batch``.

The worker's task starts this child for each batch (the Twisted reactor cannot restart; a
browser leak dies with the process). The request comes as one JSON object on stdin
(``config``: the config file or null, ``source_ids``, ``log_level``); each stored capture
goes to stdout as one JSON line as soon as it is stored (a worker that dies mid-batch
still knows what was captured), then one line ``{"done": ...}``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from dataclasses import asdict

from crawler.app import App
from crawler.config import load_config
from crawler.errors import CitearchiveError
from crawler.fleet.app import redis_url
from crawler.pipelines import CaptureResult
from crawler.reconcile import record_unindexed
from crawler.runonce import _stop_on_signals
from spiders.capture import CaptureTarget
from storage.spool import begin_run, end_run


def _emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def capture(request: dict) -> dict:
    """Capture the requested (already leased) sources; the closing record."""
    from crawler.runner import run_batch  # Scrapy: only in the crawl process

    config = load_config(request.get("config"))
    ids = list(request["source_ids"])
    stop = threading.Event()
    app = App.open(config)
    try:
        with _stop_on_signals(stop):
            begin_run(app.archive, app.index, ids)
            # A capture stored by a worker killed before its index row: recorded, not redone.
            record_unindexed(app.archive, app.index, ids)
            since = request["enqueued_at"]
            targets = []
            for sid in ids:
                row = app.index.get_source(sid)
                if row is None or row.removed_at is not None:
                    _emit({"skipped": sid, "why": "not registered"})
                elif row.last_captured_at is not None and row.last_captured_at >= since:
                    _emit({"skipped": sid, "why": "captured"})
                else:
                    targets.append(CaptureTarget(row.id, row.canonical_url))

            def stored(result: CaptureResult) -> None:
                _emit({"result": asdict(result)})

            outcome = run_batch(
                config,
                targets,
                on_result=stored,
                log_level=request["log_level"],
                stop=stop,
                fleet_redis=redis_url(config),  # per-host politeness for the whole fleet
            )
            note = end_run(app.archive)
    finally:
        app.close()
    return {"done": {"interrupted": outcome.interrupted, "store_note": note}}


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    request = json.loads(sys.stdin.read())
    logging.getLogger().setLevel(request["log_level"])
    try:
        _emit(capture(request))
    except CitearchiveError as exc:
        _emit({"error": str(exc)})
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
