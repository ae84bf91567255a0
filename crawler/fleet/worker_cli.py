"""``citearchive worker``: a Celery worker that captures the batches the fleet enqueues."""

from __future__ import annotations

import click

from crawler.app import App
from crawler.config import load_config
from crawler.daemon import _config_file
from crawler.errors import UsageError
from crawler.fleet.app import check_fleet_store, make_app
from crawler.fleet.tasks import register_tasks


@click.command("worker")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=64),
    default=1,
    show_default=True,
    help="Batches captured at once (each in a crawl process of its own).",
)
@click.option(
    "--hostname",
    default="citearchive@%h",
    show_default=True,
    help="This worker's name in the fleet (%h: the machine's host name).",
)
@click.pass_context
def worker_cmd(ctx: click.Context, concurrency: int, hostname: str) -> None:
    """Capture enqueued batches until SIGTERM (which lets the batches in hand finish)."""
    config_file = _config_file(ctx.obj["config_path"])
    config = load_config(config_file)
    if not config.queue.broker:
        raise UsageError("worker: [queue] broker is not set (a worker needs the fleet's broker)")
    check_fleet_store(config)
    App.open(config).close()  # a bad store or index fails now, not in every task
    app = make_app(config)
    register_tasks(app, config_file, ctx.obj["log_level"])
    worker = app.Worker(
        hostname=hostname,
        concurrency=concurrency,
        # Threads suffice: a task only leases, starts its crawl process and waits.
        pool="threads",
        queues=[config.queue.queue_name],
        loglevel=ctx.obj["log_level"],
        quiet=True,
        without_mingle=True,
        without_gossip=True,
    )
    worker.start()  # blocks; Celery's handlers: SIGTERM = warm shutdown
    ctx.exit(worker.exitcode or 0)
