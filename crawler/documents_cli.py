"""Commands about citing documents: ``import``, ``sources`` and ``remove``."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import click

from crawler.app import App
from crawler.errors import NotFoundError, UsageError
from crawler.importer import ImportReport, document_id, import_document
from crawler.readers import ParsedDocument, UnreadableDocument, parse_document, read_document
from crawler.sources import save_sources
from storage.ids import source_id, utc_now_rfc3339


def _open(ctx: click.Context) -> App:
    return App.for_command(ctx)


def fetch_article(app: App, url: str, log_level: str) -> ParsedDocument:
    """Render an online article with the crawler and read its links from the rendered DOM.

    The article is registered and captured as a source itself, so the citing page is
    preserved beside what it cites.
    """
    from crawler.runner import run_batch  # Scrapy/Playwright only when crawling
    from crawler.sources import Citation, register
    from spiders.capture import CaptureTarget

    [record] = register(app.archive, app.index, [Citation(url)], app.canonical)
    outcome = run_batch(
        app.config, [CaptureTarget(record["id"], record["canonical_url"])], log_level=log_level
    )
    results = outcome.results
    capture = app.index.latest_capture(record["id"])
    if not results or capture is None or "dom" not in capture.artifacts:
        reason = results[0].reason if results else "no capture"
        raise UnreadableDocument(f"{url}: cannot render the article: {reason}")
    dom = app.archive.get_blob(capture.artifacts["dom"]["sha256"])
    # Relative links resolve against where the article really is, after redirects.
    return parse_document(with_base(dom, capture.final_url or url), url)


_HEAD = re.compile(rb"<head(?:\s[^>]*)?>", re.IGNORECASE)


def with_base(dom: bytes, base_url: str) -> bytes:
    """The rendered DOM with a ``<base href>`` inside its head (unless it has one)."""
    if re.search(rb"<base\s", dom[:65536], re.IGNORECASE):
        return dom
    tag = f'<base href="{html.escape(base_url, quote=True)}">'.encode()
    head = _HEAD.search(dom)
    if head is not None:
        return dom[: head.end()] + tag + dom[head.end() :]
    return tag + dom


def _document_ref(app: App, document: str) -> str:
    if document.startswith(("http://", "https://")):
        return app.canonical(document)
    return str(Path(document).resolve())


@click.command("import")
@click.argument("documents", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.pass_context
def import_cmd(ctx: click.Context, documents: tuple[str, ...], as_json: bool) -> None:
    """Register the URLs that documents cite (text, Markdown, HTML, PDF, DOCX, or a URL)."""
    app = _open(ctx)
    reports: list[ImportReport] = []
    failed = 0
    try:
        for document in documents:
            ref = _document_ref(app, document)
            try:
                if document.startswith(("http://", "https://")):
                    parsed = fetch_article(app, ref, ctx.obj["log_level"])
                else:
                    parsed = read_document(Path(document))
                reports.append(import_document(app.archive, app.index, parsed, ref, app.canonical))
            except UsageError as exc:  # this document only: the others go on
                click.echo(f"citearchive: error: {exc}", err=True)
                failed += 1
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps([r.__dict__ | {"sources": r.sources} for r in reports], indent=2))
    else:
        for report in reports:
            click.echo(report.summary())
            for url in report.added:
                click.echo(f"  + {url}")
            for url in report.dropped:
                click.echo(f"  - {url}")
    if failed:
        ctx.exit(UsageError.exit_code)


@click.command("sources")
@click.option("--document", help="Only the sources this document cites (path or URL).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def sources_cmd(ctx: click.Context, document: str | None, as_json: bool) -> None:
    """Registered sources with their citations."""
    app = _open(ctx)
    try:
        ref = _document_ref(app, document) if document else None
        rows = app.index.list_sources()
    finally:
        app.close()
    records = []
    for row in rows:
        citations = [c for c in row.citations if ref is None or c.get("document") == ref]
        if ref is not None and not citations:
            continue
        records.append(
            {"id": row.id, "url": row.canonical_url, "urls": row.urls, "citations": citations}
        )
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    for record in records:
        click.echo(record["url"])
        for c in record["citations"]:
            where = ", ".join(x for x in (c.get("document"), c.get("location")) if x)
            passage = f": {c['passage'][:100]}" if c.get("passage") else ""
            click.echo(f"    {where}{passage}")


@click.command("remove")
@click.argument("urls", nargs=-1)
@click.option("--document", help="Unregister what this document cites (path or URL).")
@click.pass_context
def remove_cmd(ctx: click.Context, urls: tuple[str, ...], document: str | None) -> None:
    """Unregister sources (their captures stay in the archive)."""
    if not urls and not document:
        raise click.UsageError("give URLs or --document")
    app = _open(ctx)
    try:
        removed = [_remove_source(app, app.source_for(url).id) for url in urls]
        if document:
            removed += _remove_document(app, _document_ref(app, document))
    finally:
        app.close()
    click.echo(f"removed {sum(removed)} source(s)")


def _remove_source(app: App, sid: str, *, only_document: str | None = None) -> bool:
    """Drop one document's citations (or all); unregister the source when none are left."""
    record = app.archive.get_source(sid)
    if record is None:
        return False
    record = dict(record)
    if only_document is not None:
        record["citations"] = [c for c in record["citations"] if c.get("document") != only_document]
    gone = only_document is None or not record["citations"]
    if gone:
        record["removed_at"] = utc_now_rfc3339()
    save_sources(app.archive, app.index, [record])
    return gone


def _remove_document(app: App, ref: str) -> list[bool]:
    doc = app.archive.get_document(document_id(ref))
    if doc is None:
        raise NotFoundError(f"{ref}: no document imported from there")
    removed = [_remove_source(app, source_id(url), only_document=ref) for url in doc["sources"]]
    app.archive.delete_document(doc["id"])
    return removed


COMMANDS = (import_cmd, sources_cmd, remove_cmd)
