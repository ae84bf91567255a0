"""``citearchive report DOCUMENT``: the citation health of one imported document."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from crawler.app import App
from crawler.fileout import write_atomically
from crawler.report import build_report, robust_links_document, to_html, to_markdown


@click.command("report")
@click.argument("document")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "md", "json"]),
    default="md",
    show_default=True,
    help="Report format.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="File to write (default stdout)."
)
@click.option(
    "--robust-links",
    "robust",
    type=click.Path(dir_okay=False),
    help="Also write a copy of the (HTML) document with Robust Links attributes.",
)
@click.option("--ui-url", help="Base URL of `citearchive serve` (default: [notify] ui_url).")
@click.pass_context
def report_cmd(
    ctx: click.Context,
    document: str,
    fmt: str,
    output: str | None,
    robust: str | None,
    ui_url: str | None,
) -> None:
    """The citation health of an imported document (path or URL, as `import` took it)."""
    app = App.for_command(ctx)
    try:
        report = build_report(app, document, ui_url)
        linked = robust_links_document(app, report, report["kind"]) if robust else None
    finally:
        app.close()
    if fmt == "json":
        text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    elif fmt == "html":
        text = to_html(report)
    else:
        text = to_markdown(report)
    if linked is not None:
        write_atomically(Path(robust), linked)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomically(Path(output), text.encode("utf-8"))
