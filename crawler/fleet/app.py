"""The Celery app of a fleet, built from a config (no module-level app: no ``celery -A``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from celery import Celery

from crawler.config import Config
from crawler.errors import UsageError

TASK_NAME = "citearchive.capture_batch"
# Socket timeouts toward the broker and the result backend: a Redis that vanishes without
# closing the connection must not hang a publish or a poll forever.
SOCKET_TIMEOUT_S = 10.0


def visibility_timeout(config: Config) -> float:
    """How long Redis keeps a delivered, unacknowledged task before delivering it again.

    Longer than a lease: a redelivered task then finds the dead worker's leases expired
    (a live worker renews its leases, so a long batch is at worst delivered twice and the
    second delivery skips what the first holds).
    """
    lease = config.queue.lease_seconds
    return lease + min(300.0, max(5.0, lease * 0.25))


def redis_url(config: Config) -> str | None:
    """The fleet's Redis (results, heartbeats, politeness): ``[queue] redis`` or the broker."""
    if config.queue.redis:
        return config.queue.redis
    if urlsplit(config.queue.broker).scheme in ("redis", "rediss"):
        return config.queue.broker
    return None


def check_fleet_store(config: Config) -> None:
    """UsageError for a local folder store the other machines cannot see."""
    if urlsplit(config.store_url).scheme == "file" and not config.store.shared:
        raise UsageError(
            f"[store] url = {config.store.url!r}: a file: store is local to this machine; "
            "with [queue] broker every worker needs the same store (use s3://, or set "
            "[store] shared = true for a folder mounted on every worker)"
        )


def make_app(config: Config) -> Celery:
    """A Celery app for ``config``'s broker: late acks, one task prefetched at a time."""
    if not config.queue.broker:
        raise UsageError("[queue] broker is not set: fleet mode needs a broker URL")
    backend = redis_url(config)
    if backend is None:
        raise UsageError(
            f"[queue] broker = {config.queue.broker!r}: task results need Redis; "
            'set [queue] redis = "redis://..."'
        )
    app = Celery("citearchive", broker=config.queue.broker, backend=backend, set_as_current=False)
    restore_every = max(1.0, min(10.0, config.queue.lease_seconds / 4))
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=config.queue.queue_name,
        task_routes={TASK_NAME: {"queue": config.queue.queue_name}},
        # At-least-once: a task is acknowledged when it has finished, and comes back if its
        # worker dies; leases make the second delivery skip what was captured.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        broker_transport_options={
            "visibility_timeout": visibility_timeout(config),
            # Recover a dead worker's task soon after its visibility timeout, not minutes later.
            "unacked_restore_interval": restore_every,
            "unacked_restore_throttle": 1,
            "socket_timeout": SOCKET_TIMEOUT_S,
            "socket_connect_timeout": SOCKET_TIMEOUT_S,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker outlives a Redis restart
        result_backend_transport_options={"socket_timeout": SOCKET_TIMEOUT_S},
        redis_socket_timeout=SOCKET_TIMEOUT_S,
        redis_socket_connect_timeout=SOCKET_TIMEOUT_S,
        redis_backend_health_check_interval=5,
        result_backend_always_retry=True,
        result_backend_max_retries=60,
        result_expires=7 * 24 * 3600,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        # The worker's own process runs no crawl (each batch is a child process), so a
        # long-lived worker stays small; a child that leaks dies with its batch.
        worker_max_tasks_per_child=None,
    )
    return app
