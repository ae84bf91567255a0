"""Import the citations of a document: register each cited source with its provenance.

A document is identified by its path (absolute) or URL. What it cited at its last import is
kept in ``documents/<id>.json``; importing the same bytes again changes nothing, and
importing a new version replaces that document's citations and reports what was added or
dropped. Every link is validated before anything is written (all or nothing per document),
and the document record is written last, so an interrupted import is simply redone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from crawler.errors import InvalidURLError
from crawler.readers import ParsedDocument
from crawler.sources import Citation, merge_source, save_sources
from crawler.urls import with_scheme
from storage.archive import Archive
from storage.ids import source_id, utc_now_rfc3339
from storage.index import Index


@dataclass
class ImportReport:
    document: str
    kind: str
    sha256: str
    unchanged: bool = False
    added: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # links that cannot be sources
    citations: int = 0

    def summary(self) -> str:
        if self.unchanged:
            return f"{self.document}: unchanged since the last import ({self.citations} citations)"
        parts = [
            f"{len(self.added)} added",
            f"{len(self.dropped)} dropped",
            f"{len(self.kept)} kept",
        ]
        if self.skipped:
            parts.append(f"{len(self.skipped)} links skipped (not http(s) sources)")
        return f"{self.document}: {self.citations} citations of {len(self.sources)} sources; " + (
            ", ".join(parts)
        )

    @property
    def sources(self) -> list[str]:
        return self.added + self.kept


def document_id(ref: str) -> str:
    """Store id of a citing document (its absolute path or URL): a hash, never the text."""
    return hashlib.sha256(f"document:{ref}".encode()).hexdigest()[:32]


def _citations(
    parsed: ParsedDocument, ref: str, canon: Callable[[str], str], report: ImportReport
) -> dict[str, list[Citation]]:
    """canonical URL -> this document's citations of it, in document order."""
    cited: dict[str, list[Citation]] = {}
    for link in parsed.links:
        try:
            canonical = canon(with_scheme(link.url))
        except InvalidURLError:
            report.skipped.append(link.url)
            continue
        cited.setdefault(canonical, []).append(
            Citation(
                url=link.url,
                document=ref,
                passage=link.passage,
                location=link.location,
                anchor=link.anchor,
                document_sha256=parsed.sha256,
            )
        )
    return cited


def import_document(
    archive: Archive, index: Index, parsed: ParsedDocument, ref: str, canon: Callable[[str], str]
) -> ImportReport:
    """Register what ``parsed`` (the document at ``ref``) cites; see the module docstring."""
    report = ImportReport(document=ref, kind=parsed.kind, sha256=parsed.sha256)
    doc_id = document_id(ref)
    previous = archive.get_document(doc_id)
    cited = _citations(parsed, ref, canon, report)
    report.citations = sum(len(c) for c in cited.values())
    if previous is not None and previous.get("sha256") == parsed.sha256:
        report.unchanged = True
        return report
    before = set(previous.get("sources", [])) if previous else set()
    report.added = [u for u in cited if u not in before]
    report.kept = [u for u in cited if u in before]
    report.dropped = sorted(before - set(cited))

    records = []
    for canonical in [*cited, *report.dropped]:
        record = archive.get_source(source_id(canonical))
        if record is not None:
            record = dict(record)
            record["citations"] = [c for c in record["citations"] if c.get("document") != ref]
        for citation in cited.get(canonical, []):
            record = merge_source(record, canonical, citation)
        if record is None:
            continue
        if canonical in cited:
            record.pop("removed_at", None)
        records.append(record)
    save_sources(archive, index, records)
    archive.put_document(
        {
            "id": doc_id,
            "ref": ref,
            "kind": parsed.kind,
            "sha256": parsed.sha256,
            "imported_at": utc_now_rfc3339(),
            "sources": list(cited),
            "citations": report.citations,
        }
    )
    return report
