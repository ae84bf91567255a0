"""The ``citearchive`` command line.

Exit codes (a cron wrapper can act on them; see README):
    0  done (changed, gone or unreachable sources are findings, not errors)
    1  unexpected internal error
    2  bad input: config, URL, arguments — nothing was written
    3  the source or capture asked for does not exist
    4  the store or the index failed
    5  another run holds the lock
    6  the run finished but some captures could not be stored
    7  verify found damage: a manifest, blob or hash chain does not check out
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path

import click

from crawler.app import App, parse_time
from crawler.config import Config, load_config
from crawler.daemon import schedule_cmd
from crawler.diff_cli import diff_cmd
from crawler.documents_cli import COMMANDS
from crawler.errors import CitearchiveError
from crawler.export_cli import export_cmd
from crawler.fileout import write_atomically
from crawler.report_cli import report_cmd
from crawler.reports import capture_record, history_table, status_records, status_table
from crawler.runonce import execute
from crawler.sources import Citation, register
from crawler.verify_cli import verify_cmd
from crawler.web.cli import serve_cmd
from storage.runlog import RunLog

EXIT_STORE_FAILED = 6
ARTIFACTS = ("dom", "raw", "screenshot", "text", "warc")
logger = logging.getLogger("citearchive")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML config file (default: ./citearchive.toml, ./config/citearchive.toml).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int, debug: bool) -> None:
    """Keep the web sources a document cites from silently changing or vanishing."""
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for handler in logging.root.handlers:
        # Scrapy lowers the root logger's level; the handler keeps ours.
        handler.setLevel(level)
    ctx.obj = {"config_path": config_path, "log_level": logging.getLevelName(level)}


def _config(ctx: click.Context) -> Config:
    return load_config(ctx.obj["config_path"])


@cli.command()
@click.argument("urls", nargs=-1, required=True)
@click.option("--document", help="Name of the document that cites these URLs.")
@click.pass_context
def add(ctx: click.Context, urls: tuple[str, ...], document: str | None) -> None:
    """Register sources by hand."""
    app = App.for_command(ctx)
    try:
        citations = [Citation(u, document) for u in urls]
        records = register(app.archive, app.index, citations, app.canonical)
    finally:
        app.close()
    for record in records:
        click.echo(f"{record['id']}  {record['canonical_url']}")


@cli.command("run-once")
@click.option("--all", "everything", is_flag=True, help="Capture every source, due or not.")
@click.option("--limit", type=click.IntRange(min=1), help="Capture at most this many sources.")
@click.pass_context
def run_once(ctx: click.Context, everything: bool, limit: int | None) -> None:
    """Capture the sources that are due (or all of them) and exit."""
    summary = execute(
        _config(ctx), everything=everything, limit=limit, log_level=ctx.obj["log_level"]
    )
    click.echo(summary.line())
    if summary.not_stored:
        click.echo(f"citearchive: {summary.not_stored} capture(s) could not be stored", err=True)
        ctx.exit(EXIT_STORE_FAILED)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.pass_context
def runs(ctx: click.Context, as_json: bool, limit: int) -> None:
    """Recent runs: start, end, status, counts and errors (newest first)."""
    app = App.for_command(ctx)
    try:
        records = RunLog(app.index).recent(limit)
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in records], indent=2))
        return
    for r in records:
        counts = ", ".join(f"{n} {v}" for v, n in sorted(r.counts.items()))
        click.echo(f"{r.started_at}  {r.kind:<9} {r.status:<11} due {r.due:<5} {counts}")
        for error in r.errors:
            click.echo(f"    {error}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Each source with its latest verdict."""
    app = App.for_command(ctx)
    try:
        rows = app.index.status_rows(with_citations=as_json)
    finally:
        app.close()
    dead_after = app.config.verdicts.dead_after
    if as_json:
        click.echo(json.dumps(status_records(rows, dead_after), indent=2))
    else:
        click.echo(status_table(rows, dead_after))


@cli.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def history(ctx: click.Context, url: str, as_json: bool) -> None:
    """One source's captures, oldest first."""
    app = App.for_command(ctx)
    try:
        source = app.source_for(url)
        rows = [capture_record(r) for r in app.index.captures(source.id)]
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(history_table(source.canonical_url, rows))


@cli.command()
@click.argument("url")
@click.option("--at", "at", help="Time (RFC 3339): the last capture at or before it.")
@click.option("--artifact", type=click.Choice(ARTIFACTS), default="dom", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="File to write (default stdout)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the capture's metadata instead.")
@click.pass_context
def get(
    ctx: click.Context, url: str, at: str | None, artifact: str, output: str | None, as_json: bool
) -> None:
    """A preserved copy of a source."""
    try:
        when = parse_time(at) if at is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from exc
    app = App.for_command(ctx)
    try:
        row = app.capture_at(app.source_for(url), when, None if as_json else artifact)
        if as_json:
            click.echo(json.dumps(capture_record(row), indent=2))
            return
        data = app.archive.get_blob(row.artifacts[artifact]["sha256"])
    finally:
        app.close()
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_atomically(Path(output), data)


@cli.command()
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Rebuild the index from the store alone."""
    app = App.for_command(ctx)
    try:
        sources, captures = app.index.rebuild(app.archive)
    finally:
        app.close()
    click.echo(f"reindexed {sources} sources, {captures} captures")


for _command in COMMANDS:
    cli.add_command(_command)
cli.add_command(diff_cmd)
cli.add_command(schedule_cmd)
cli.add_command(report_cmd)
cli.add_command(serve_cmd)
cli.add_command(export_cmd)
cli.add_command(verify_cmd)


def main(argv: list[str] | None = None) -> int:
    """Entry point: map every error to one stderr line and a documented exit code.

    The traceback is printed only with ``--debug`` (read from argv: the error may come
    before or during option parsing).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    try:
        code = cli.main(args=args, prog_name="citearchive", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("citearchive: aborted", err=True)
        return 130
    except click.ClickException as exc:
        return _fail(exc.format_message(), 2, debug)
    except CitearchiveError as exc:
        return _fail(str(exc), exc.exit_code, debug)
    except OSError as exc:
        return _fail(str(exc), 1, debug)
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        return _fail(f"unexpected {type(exc).__name__}: {exc}", 1, debug)
    return code if isinstance(code, int) else 0


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    # One line, whatever the message holds: scripts read the last line of stderr.
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    click.echo(f"citearchive: error: {line}", err=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
