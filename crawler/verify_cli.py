"""``citearchive verify [--repair] [--json]``: the archive check as a command."""

from __future__ import annotations

import json

import click

from crawler.app import App
from crawler.verify import Problem, VerifyReport, repair, verify

EXIT_DAMAGED = 7


def summary_line(report: VerifyReport) -> str:
    """One line: what was checked and what was found."""
    checked = (
        f"verify: {report.sources} sources, {report.manifests} manifests, "
        f"{report.blobs} blobs checked"
    )
    if report.damage:
        latest = len({p.source_id for p in report.damage if p.latest})
        found = (
            f"DAMAGED: {len(report.damage)} problem(s) in "
            f"{len(report.damaged_sources())} source(s), {latest} with a damaged latest capture"
        )
    else:
        found = "clean"
    leftovers = f"{len(report.orphans)} orphan blob(s), {len(report.unindexed)} unindexed"
    repaired = ""
    if report.removed or report.indexed:
        repaired = f"; removed {len(report.removed)}, indexed {len(report.indexed)}"
    return f"{checked}: {found}; {leftovers}{repaired}"


def problem_line(problem: Problem) -> str:
    if problem.source_id == "-":  # a blob no manifest names
        return f"damaged {problem.kind}: {problem.key}: {problem.detail}"
    where = problem.url or "(source not in the index)"
    latest = " [latest capture]" if problem.latest else ""
    return (
        f"damaged {problem.kind}: source {problem.source_id} {where}{latest}: "
        f"{problem.key}: {problem.detail}"
    )


def _lines(report: VerifyReport) -> list[str]:
    lines = [summary_line(report)]
    lines += [problem_line(p) for p in report.damage]
    removed = set(report.removed)
    for sha256 in report.orphans:
        state = "removed" if sha256 in removed else "kept (remove with --repair)"
        lines.append(f"orphan blob {sha256}: no manifest names it; {state}")
    indexed = set(report.indexed)
    for key in report.unindexed:
        state = "now indexed" if key in indexed else "not in the index (record with --repair)"
        lines.append(f"unindexed {key}: {state}")
    if report.repair_refused:
        lines.append(f"repair: {report.repair_refused}")
    return lines


@click.command("verify")
@click.option(
    "--repair",
    "do_repair",
    is_flag=True,
    help="Remove orphan blobs and index unindexed manifests (takes the run lock).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def verify_cmd(ctx: click.Context, do_repair: bool, as_json: bool) -> None:
    """Check every capture's blobs, hashes and hash chain; exit 7 if anything is damaged."""
    app = App.for_command(ctx)
    try:
        if do_repair:
            # Under the run lock: a run could be between a blob and its manifest.
            with app.run_lock():
                report = verify(app.archive, app.index)
                repair(app.archive, app.index, report)
        else:
            report = verify(app.archive, app.index)
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo("\n".join(_lines(report)))
    if not report.clean:
        ctx.exit(EXIT_DAMAGED)
