"""The ``diff`` command: what changed between two captures of one source."""

from __future__ import annotations

import json
from pathlib import Path

import click

from crawler.app import App
from crawler.diffing import DiffSide, html_diff, json_diff, text_diff
from crawler.errors import NotFoundError, UsageError
from crawler.fileout import write_atomically
from storage.index import CaptureRow, SourceRow

MIN_PREFIX = 6


def resolve_capture(app: App, source: SourceRow, rows: list[CaptureRow], ref: str) -> CaptureRow:
    """The capture of ``source`` named by ``ref``: a full id or a unique prefix of one."""
    if len(ref) < MIN_PREFIX:
        raise UsageError(f"{ref!r}: give at least {MIN_PREFIX} characters of a capture id")
    exact = [row for row in rows if row.id == ref]
    found = exact or [row for row in rows if row.id.startswith(ref)]
    if len(found) > 1:
        ids = ", ".join(row.id for row in found)
        raise UsageError(
            f"{ref!r} is the start of several captures of {source.canonical_url}: {ids}"
        )
    if not found:
        other = app.index.get_capture(ref)
        where = " (it belongs to another source)" if other is not None else ""
        raise NotFoundError(f"{ref}: no capture of {source.canonical_url} has this id{where}")
    if "text" not in found[0].artifacts:
        raise NotFoundError(
            f"{found[0].id}: capture of {source.canonical_url} has no text "
            f"({found[0].verdict}: {found[0].reason})"
        )
    return found[0]


def default_from(rows: list[CaptureRow], to: CaptureRow) -> CaptureRow | None:
    """The latest capture before ``to`` whose content differs from it, if any."""
    earlier = rows[: rows.index(to)]
    for row in reversed(earlier):
        if "text" in row.artifacts and row.text_sha256 != to.text_sha256:
            return row
    return None


def _side(app: App, source: SourceRow, row: CaptureRow) -> DiffSide:
    text = app.archive.get_blob(row.artifacts["text"]["sha256"]).decode("utf-8", "replace")
    shot = row.artifacts.get("screenshot")
    return DiffSide(
        capture_id=row.id,
        captured_at=row.captured_at,
        url=row.final_url or source.canonical_url,
        text=text,
        screenshot=app.archive.get_blob(shot["sha256"]) if shot else None,
    )


def _emit(output: str | None, text: str) -> None:
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        write_atomically(Path(output), text.encode("utf-8"))


@click.command("diff")
@click.argument("url")
@click.option("--from", "from_ref", help="Capture id (or a unique prefix of 6+ characters).")
@click.option("--to", "to_ref", help="Capture id (default: the latest capture with text).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "html", "json"]),
    default="text",
    show_default=True,
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="File to write (default stdout)."
)
@click.pass_context
def diff_cmd(
    ctx: click.Context,
    url: str,
    from_ref: str | None,
    to_ref: str | None,
    fmt: str,
    output: str | None,
) -> None:
    """What changed between two captures of a source.

    By default the latest capture is compared with the previous one whose content differs.
    """
    app = App.for_command(ctx)
    try:
        source = app.source_for(url)
        rows = app.index.captures(source.id)
        if to_ref is not None:
            to = resolve_capture(app, source, rows, to_ref)
        else:
            with_text = [row for row in rows if "text" in row.artifacts]
            if not with_text:
                raise NotFoundError(f"{source.canonical_url}: no capture with text yet")
            to = with_text[-1]
        if from_ref is not None:
            start = resolve_capture(app, source, rows, from_ref)
        else:
            start = default_from(rows, to)
        if start is None:
            scope = "" if to_ref is None else f" up to {to.id}"
            message = (
                f"no change: every capture of {source.canonical_url}{scope} has the same content"
            )
            if fmt == "json":
                record = {"changes": False, "url": source.canonical_url, "to": to.id}
                _emit(output, json.dumps(record | {"message": message}, indent=2) + "\n")
            else:
                click.echo(message)
            return
        a, b = _side(app, source, start), _side(app, source, to)
    finally:
        app.close()
    if fmt == "json":
        record = {"changes": start.text_sha256 != to.text_sha256, **json_diff(a, b)}
        _emit(output, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    elif fmt == "html":
        _emit(output, html_diff(a, b))
    else:
        _emit(
            output,
            text_diff(a, b) or f"no differences in the text of {a.capture_id} and {b.capture_id}\n",
        )
