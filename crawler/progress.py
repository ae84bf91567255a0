"""Run a batch with a rich progress bar when someone is watching a terminal."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from crawler.config import Config
from crawler.pipelines import CaptureResult
from crawler.runner import BatchOutcome, run_batch
from spiders.capture import CaptureTarget
from storage.index import SourceRow


def run_with_progress(
    config: Config,
    sources: Sequence[SourceRow],
    log_level: str,
    stop: threading.Event | None = None,
) -> BatchOutcome:
    targets = [CaptureTarget(s.id, s.canonical_url) for s in sources]
    if not sys.stderr.isatty() or not targets:
        return run_batch(config, targets, log_level=log_level, stop=stop)
    console = Console(stderr=True)
    columns = (
        TextColumn("capturing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("", total=len(targets))

        def advance(result: CaptureResult) -> None:
            progress.update(task, advance=1, description=f"{result.verdict}: {result.url}")

        return run_batch(config, targets, on_result=advance, log_level=log_level, stop=stop)
