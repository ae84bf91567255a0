"""The ``serve`` command: the web UI and Memento endpoints, served by waitress."""

from __future__ import annotations

import ipaddress

import click

from crawler.config import load_config
from crawler.errors import UsageError

TOKEN_ENV = "CITEARCHIVE_UI_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8077, show_default=True)
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    default=None,
    help=f"Require this bearer token (or env {TOKEN_ENV}); needed off loopback.",
)
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True)
@click.pass_context
def serve_cmd(ctx: click.Context, host: str, port: int, token: str | None, threads: int) -> None:
    """Browse sources, captures and diffs, and answer Memento (RFC 7089) requests."""
    if not is_loopback(host) and not token:
        raise UsageError(f"--host {host}: binding beyond loopback needs --token or {TOKEN_ENV}")
    from waitress import create_server

    from crawler.web import create_app

    app = create_app(load_config(ctx.obj["config_path"]), token=token or None)
    server = create_server(app, host=host, port=port, threads=threads)
    where = f"http://{host}:{server.effective_port}/"
    auth = " (token required)" if token else ""
    click.echo(f"citearchive: serving {where}{auth}; Ctrl-C stops", err=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        app.extensions["citearchive"].close()
