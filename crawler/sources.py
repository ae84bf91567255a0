"""Register sources: canonical URL, the original URLs seen, and who cites them.

A source record is written to the store first (it is the truth ``reindex`` rebuilds
from), then to the index. Registering the same source again only merges new original
URLs and citations into its record.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crawler.errors import ConfigError, InvalidURLError
from crawler.urls import canonicalize
from storage.archive import Archive
from storage.ids import source_id, utc_now_rfc3339
from storage.index import Index


@dataclass(frozen=True)
class Citation:
    """One place that cites a URL: the document, where in it, the link text and passage."""

    url: str  # as seen in the document
    document: str | None = None  # path or URL of the citing document, or a name
    passage: str | None = None
    location: str | None = None
    anchor: str | None = None
    document_sha256: str | None = None

    def as_record(self) -> dict:
        fields = {
            "document": self.document,
            "document_sha256": self.document_sha256,
            "location": self.location,
            "anchor": self.anchor,
            "passage": self.passage,
        }
        record = {k: v for k, v in fields.items() if v}
        if record:
            record["url"] = self.url
        return record


def merge_source(existing: dict | None, canonical: str, citation: Citation) -> dict:
    """The source record after registering ``citation`` (``existing`` is not modified)."""
    record = (
        dict(existing)
        if existing
        else {
            "id": source_id(canonical),
            "canonical_url": canonical,
            "urls": [],
            "citations": [],
            "added_at": utc_now_rfc3339(),
        }
    )
    record["urls"] = list(record["urls"])
    record["citations"] = list(record["citations"])
    if citation.url not in record["urls"]:
        record["urls"].append(citation.url)
    cited = citation.as_record()
    if cited and cited not in record["citations"]:
        record["citations"].append(cited)
    return record


def register(
    archive: Archive,
    index: Index,
    citations: list[Citation],
    canon: Callable[[str], str] = canonicalize,
) -> list[dict]:
    """Validate every URL first (all or nothing), then store and index each source."""
    canonical = [canon(c.url) for c in citations]
    records: dict[str, dict] = {}
    for citation, canon in zip(citations, canonical, strict=True):
        sid = source_id(canon)
        existing = records.get(sid) or archive.get_source(sid)
        records[sid] = merge_source(existing, canon, citation)
    for record in records.values():
        record.pop("removed_at", None)  # registering again brings a removed source back
    save_sources(archive, index, list(records.values()))
    return list(records.values())


def save_sources(archive: Archive, index: Index, records: list[dict]) -> None:
    """The store first (the truth), then the index in one transaction."""
    for record in records:
        archive.put_source(record)
    index.upsert_sources(records)


def load_citation_list(path: Path) -> list[Citation]:
    """Read a TOML citation list: ``[[citation]]`` tables with url, document, passage."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: citation list not found") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read citation list: {exc}") from exc
    unknown = set(data) - {"citation"}
    if unknown:
        raise ConfigError(f"{path}: unknown key '{sorted(unknown)[0]}'")
    citations = []
    for n, entry in enumerate(data.get("citation", []), start=1):
        extra = set(entry) - {"url", "document", "passage"}
        if extra or not isinstance(entry.get("url"), str):
            what = f"unknown key '{sorted(extra)[0]}'" if extra else "missing url"
            raise ConfigError(f"{path}: citation {n}: {what}")
        citation = Citation(entry["url"], entry.get("document"), entry.get("passage"))
        try:
            canonicalize(citation.url)
        except InvalidURLError as exc:
            raise ConfigError(f"{path}: citation {n}: {exc}") from exc
        citations.append(citation)
    return citations
