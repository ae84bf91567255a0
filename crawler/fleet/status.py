"""What ``status`` shows of a fleet: queue depth, workers alive, sources leased."""

from __future__ import annotations

from crawler.app import App
from crawler.config import Config
from crawler.errors import CitearchiveError
from crawler.fleet.app import make_app
from crawler.fleet.enqueue import TRANSIENT, answering_workers, queue_depth
from storage.leases import Leases


def fleet_info(app: App) -> dict:
    """The fleet's state; a part that cannot be read is None, with the reason in "errors"."""
    config = app.config
    info: dict = {"queue": config.queue.queue_name, "queue_depth": None, "workers": []}
    info["leased"] = None
    errors: list[str] = []
    try:
        info["queue_depth"] = queue_depth(config)
    except TRANSIENT as exc:
        errors.append(f"broker: {exc}")
    if not errors:  # a broker that does not answer: no ping (its retries take seconds)
        info["workers"] = _alive(config, errors)
    try:
        info["leased"] = Leases(app.index).live_count()
    except CitearchiveError as exc:
        errors.append(f"leases: {exc}")
    info["errors"] = errors
    return info


def _alive(config: Config, errors: list[str]) -> list[str]:
    """The workers that answer a ping."""
    celery = make_app(config)
    try:
        return answering_workers(celery)
    except TRANSIENT as exc:
        errors.append(f"workers: {exc}")
        return []
    finally:
        celery.close()
