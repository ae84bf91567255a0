"""The ``export`` command: captures' WARCs as files or as one WACZ package."""

from __future__ import annotations

from pathlib import Path

import click

from crawler.app import App
from crawler.export import choose_captures, export_wacz, export_warcs, resolve_sources


@click.command("export")
@click.argument("refs", nargs=-1, metavar="[URL|DOCUMENT]...")
@click.option("--wacz", type=click.Path(dir_okay=False), help="Write one WACZ package here.")
@click.option(
    "--warc",
    "warc_dir",
    type=click.Path(file_okay=False),
    help="Write each capture's WARC into this directory.",
)
@click.option("--latest", is_flag=True, help="Only each source's latest capture with a WARC.")
@click.pass_context
def export_cmd(
    ctx: click.Context, refs: tuple[str, ...], wacz: str | None, warc_dir: str | None, latest: bool
) -> None:
    """Export captures (of these URLs or documents; default all) as WARC files or a WACZ."""
    if (wacz is None) == (warc_dir is None):
        raise click.UsageError("give exactly one of --wacz FILE or --warc DIR")
    app = App.for_command(ctx)
    try:
        sources = resolve_sources(app, refs)
        chosen = choose_captures(app, sources, latest=latest)
        if wacz is not None:
            export_wacz(app, chosen, Path(wacz))
            where = wacz
        else:
            export_warcs(app, chosen, Path(warc_dir))
            where = warc_dir
    finally:
        app.close()
    n_sources = len({c.source.id for c in chosen})
    click.echo(f"exported {len(chosen)} capture(s) of {n_sources} source(s) to {where}")
