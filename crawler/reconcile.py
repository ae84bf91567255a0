"""Bring the index up to the store for the sources a run is about to capture.

A capture is stored blobs → manifest → index row. A run killed between the manifest and the
row leaves a capture the store has and the index lacks: the source would look due again,
be captured twice for one due time, and be judged against a history missing its latest
capture. Before it captures, a run therefore records such manifests (the store is the
truth; the index is derived from it), then selects the due sources again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from storage.archive import Archive
from storage.index import Index

logger = logging.getLogger(__name__)


def record_unindexed(archive: Archive, index: Index, source_ids: Iterable[str]) -> int:
    """Record the stored manifests of these sources that the index lacks; how many."""
    recorded = 0
    for sid in source_ids:
        latest = archive.latest_manifest(sid)
        if latest is None or index.get_capture(latest.manifest["id"]) is not None:
            continue  # the usual case: one listing, nothing to do
        for stored in archive.iter_manifests(sid):
            if index.get_capture(stored.manifest["id"]) is None:
                index.record_capture(stored)
                recorded += 1
    if recorded:
        logger.warning(
            "recorded %d stored capture(s) the index lacked (an earlier run was interrupted)",
            recorded,
            extra={"recorded": recorded},
        )
    return recorded
