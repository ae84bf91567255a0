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
    8  run-once (fleet) stopped waiting at [queue] wait_timeout_s: tasks left queued
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import sys
import traceback
from pathlib import Path

import click

from crawler.app import App, parse_time
from crawler.config import Config, load_config
from crawler.errors import CitearchiveError
from crawler.fileout import write_atomically
from crawler.reports import (
    capture_record,
    fleet_line,
    json_array,
    status_records,
    status_table,
)
from crawler.sources import Citation, register
from crawler.urls import with_scheme
from storage.runlog import RunLog

EXIT_STORE_FAILED = 6
EXIT_FLEET_UNFINISHED = 8
ARTIFACTS = ("dom", "raw", "screenshot", "text", "warc", "media")
logger = logging.getLogger("citearchive")


# Commands defined elsewhere, imported only when run: `status` on a cron box must not
# pay for loading Scrapy, Playwright, Flask and trafilatura.
LAZY_COMMANDS = {
    "diff": "crawler.diff_cli:diff_cmd",
    "export": "crawler.export_cli:export_cmd",
    "import": "crawler.documents_cli:import_cmd",
    "remove": "crawler.documents_cli:remove_cmd",
    "report": "crawler.report_cli:report_cmd",
    "schedule": "crawler.daemon:schedule_cmd",
    "serve": "crawler.web.cli:serve_cmd",
    "sources": "crawler.documents_cli:sources_cmd",
    "verify": "crawler.verify_cli:verify_cmd",
    "worker": "crawler.fleet.worker_cli:worker_cmd",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS and name not in self.commands:
            module, attr = LAZY_COMMANDS[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


def _check_urls(config: Config, urls: tuple[str, ...], *, add_scheme: bool = False) -> None:
    """InvalidURLError for the first bad URL, before the store or index is opened:
    bad input creates nothing, not even an empty index."""
    for url in urls:
        config.canonical(with_scheme(url) if add_scheme else url)


@cli.command()
@click.argument("urls", nargs=-1, required=True)
@click.option("--document", help="Name of the document that cites these URLs.")
@click.pass_context
def add(ctx: click.Context, urls: tuple[str, ...], document: str | None) -> None:
    """Register sources by hand."""
    config = _config(ctx)
    _check_urls(config, urls)
    app = App.open(config)
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
@click.option("--no-wait", is_flag=True, help="With [queue] broker: only enqueue, then exit.")
@click.pass_context
def run_once(ctx: click.Context, everything: bool, limit: int | None, no_wait: bool) -> None:
    """Capture the sources that are due (or all of them) and exit."""
    config = _config(ctx)
    if config.queue.broker:  # a fleet: the workers capture (crawler/fleet/)
        from crawler.fleet.enqueue import run_once as run_fleet

        summary = run_fleet(config, everything=everything, limit=limit, wait_for_tasks=not no_wait)
    elif no_wait:
        raise click.BadParameter(
            "needs [queue] broker (a fleet to enqueue for)", param_hint="--no-wait"
        )
    else:
        from crawler.runonce import execute  # Scrapy and Playwright: only when crawling

        summary = execute(
            config, everything=everything, limit=limit, log_level=ctx.obj["log_level"]
        )
    click.echo(summary.line())
    if no_wait:
        return
    if summary.not_stored:
        click.echo(f"citearchive: {summary.not_stored} capture(s) could not be stored", err=True)
        ctx.exit(EXIT_STORE_FAILED)
    if summary.unfinished:
        click.echo(
            f"citearchive: stopped waiting after [queue] wait_timeout_s = "
            f"{config.queue.wait_timeout_s:g} s; {summary.unfinished} source(s) stay queued",
            err=True,
        )
        ctx.exit(EXIT_FLEET_UNFINISHED)


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
        worker = f"  on {r.worker}" if r.worker else ""
        click.echo(f"{r.started_at}  {r.kind:<9} {r.status:<11} due {r.due:<5} {counts}{worker}")
        for error in r.errors:
            click.echo(f"    {error}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Each source with its latest verdict."""
    app = App.for_command(ctx)
    dead_after = app.config.verdicts.dead_after
    try:
        if as_json:
            # 100,000 sources are 1.5 million new dicts, lists and strings, none of them
            # garbage: the cyclic collector would only scan them again and again (half the
            # time of this read). It runs again once the records exist.
            gc.disable()
            try:
                records = status_records(app.index.status_rows(with_citations=True), dead_after)
            finally:
                gc.enable()
        else:
            table = status_table(app.index.status_lines(), dead_after)
        fleet = None
        if app.config.queue.broker:  # Celery and Redis only for a fleet: status stays fast
            from crawler.fleet.status import fleet_info

            fleet = fleet_info(app)
    finally:
        app.close()
    if as_json:
        listing = json_array(records)
        click.echo(
            listing
            if fleet is None
            else f'{{\n"fleet": {json.dumps(fleet)},\n"sources": {listing}\n}}'
        )
    else:
        click.echo(table)
        if fleet is not None:
            click.echo(fleet_line(fleet))


@cli.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def history(ctx: click.Context, url: str, as_json: bool) -> None:
    """One source's captures, oldest first."""
    from crawler.media_get import history_records, history_text

    app = App.for_command(ctx)
    try:
        source = app.source_for(url)
        captures = app.index.captures(source.id)
        rows = history_records(app, captures, [capture_record(r) for r in captures])
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(history_text(source.canonical_url, rows))


@cli.command()
@click.argument("url")
@click.option("--at", "at", help="Time (RFC 3339): the last capture at or before it.")
@click.option("--artifact", type=click.Choice(ARTIFACTS), default="dom", show_default=True)
@click.option(
    "--index",
    "media_index",
    type=click.IntRange(min=1),
    help="With --artifact media: which of the capture's media (1-based, default 1).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="File to write (default stdout)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the capture's metadata instead.")
@click.pass_context
def get(
    ctx: click.Context,
    url: str,
    at: str | None,
    artifact: str,
    media_index: int | None,
    output: str | None,
    as_json: bool,
) -> None:
    """A preserved copy of a source (media: a video, audio, photo or document of the page)."""
    try:
        when = parse_time(at) if at is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from exc
    if media_index is not None and artifact != "media":
        raise click.BadParameter("only goes with --artifact media", param_hint="--index")
    config = _config(ctx)
    _check_urls(config, (url,), add_scheme=True)
    app = App.open(config)
    try:
        if artifact == "media" and not as_json:
            from crawler.media_get import read_media

            data = read_media(app, app.source_for(url), when, media_index or 1)
        else:
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
