"""Export captures' WARCs: as plain ``.warc.gz`` files, or as one WACZ 1.1.1 package.

The WARC blobs are exported byte for byte (their sha256 is the index's). A WACZ is a zip
(every member stored, not deflated, so players can seek into it) holding:

    archive/data-<n>.warc.gz     the captures' gzipped WARCs, concatenated member-wise
    indexes/index.cdxj           one line per response/resource record, sorted
    pages/pages.jsonl            one page per capture
    datapackage.json             every file above with its sha256 and size
    datapackage-digest.json      the sha256 of datapackage.json

Every output file is written to a temporary file beside it and renamed into place, so an
error leaves the old file (or none), never half of a new one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator

from crawler.app import App
from crawler.errors import IntegrityError, NotFoundError, UsageError
from crawler.fileout import write_atomically
from crawler.importer import document_id
from crawler.media_get import media_of
from crawler.urls import with_scheme
from storage.ids import format_rfc3339, parse_rfc3339, source_id
from storage.index import CaptureRow, SourceRow

WACZ_VERSION = "1.1.1"
# A new archive/data-<n>.warc.gz is started once the current one passes this size.
WARC_MEMBER_LIMIT = 1 << 30
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class OutputError(UsageError):
    """The output file or directory cannot be written; nothing was written."""


@dataclass(frozen=True)
class Chosen:
    """One capture to export, with its source."""

    source: SourceRow
    capture: CaptureRow

    @property
    def warc_sha256(self) -> str:
        return self.capture.artifacts["warc"]["sha256"]


# Choosing what to export


def _document_sources(app: App, ref: str) -> list[str] | None:
    """Canonical URLs a previously imported document cites, or None if ``ref`` is none."""
    if ref.startswith(("http://", "https://")):
        key = app.canonical(ref)
    else:
        key = str(Path(ref).resolve())
    record = app.archive.get_document(document_id(key))
    return None if record is None else list(record.get("sources", []))


def resolve_sources(app: App, refs: tuple[str, ...] | list[str]) -> list[SourceRow]:
    """The sources named by URLs or documents (none given: every registered source)."""
    if not refs:
        return app.index.list_sources()
    chosen: dict[str, SourceRow] = {}
    for ref in refs:
        urls = _document_sources(app, ref)
        if urls is None:
            if not ref.startswith(("http://", "https://")) and Path(ref).exists():
                raise NotFoundError(f"{ref}: no document imported from there")
            row = app.source_for(ref)
            chosen.setdefault(row.id, row)
            continue
        for url in urls:
            row = app.index.get_source(source_id(app.canonical(with_scheme(url))))
            if row is not None:
                chosen.setdefault(row.id, row)
    return list(chosen.values())


def choose_captures(app: App, sources: list[SourceRow], *, latest: bool) -> list[Chosen]:
    """Each source's captures that hold a WARC, oldest first (or only the latest one)."""
    chosen: list[Chosen] = []
    for source in sources:
        rows = [r for r in app.index.captures(source.id) if "warc" in r.artifacts]
        if latest:
            rows = rows[-1:]
        chosen.extend(Chosen(source, r) for r in rows)
    if not chosen:
        raise NotFoundError("no capture with a WARC to export")
    return chosen


# --warc DIR


def _ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".citearchive-probe.")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write there: {exc.strerror or exc}") from exc
    os.close(fd)
    os.unlink(probe)


def _verified_warc(app: App, item: Chosen, sha256: str | None = None) -> bytes:
    sha256 = sha256 or item.warc_sha256
    data = app.archive.get_blob(sha256)
    if hashlib.sha256(data).hexdigest() != sha256:  # get_blob checks too
        raise IntegrityError(f"capture {item.capture.id}: WARC blob {sha256} does not match")
    return data


def media_warcs(app: App, chosen: list[Chosen]) -> list[tuple[Chosen, str]]:
    """The WARCs of the chosen captures' media (manifest ``media[i]["warc"]``), each once:
    content-addressed, so captures that share a download share its WARC."""
    found: dict[str, Chosen] = {}
    for item in chosen:
        for entry in media_of(app, item.capture):
            warc = entry.get("warc")
            sha256 = warc.get("sha256") if isinstance(warc, dict) else None
            if isinstance(sha256, str) and sha256 != item.warc_sha256:
                found.setdefault(sha256, item)
    return [(item, sha256) for sha256, item in found.items()]


def export_warcs(app: App, chosen: list[Chosen], out_dir: Path) -> list[Path]:
    """Write each capture's WARC blob as ``<dir>/<source-id>-<capture-id>.warc.gz``, and
    each media WARC once as ``<dir>/media-<sha256>.warc.gz``."""
    _ensure_dir(out_dir)
    written = []
    parts = [(item, item.warc_sha256, f"{item.source.id}-{item.capture.id}") for item in chosen]
    parts += [(item, sha, f"media-{sha}") for item, sha in media_warcs(app, chosen)]
    for item, sha256, stem in parts:
        path = out_dir / f"{stem}.warc.gz"
        data = _verified_warc(app, item, sha256)
        try:
            write_atomically(path, data)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from exc
        written.append(path)
    return written


# --wacz FILE


def surt(url: str) -> str:
    """Sort-friendly URI Reordering Transform (the CDXJ key), as pywb spells it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return url
    host = parts.hostname.lower()
    if host.startswith("www."):
        host = host[4:]
    key = ",".join(reversed(host.split(".")))
    try:
        port = parts.port
    except ValueError:
        port = None
    if port and port != _DEFAULT_PORTS[parts.scheme]:
        key += f":{port}"
    path = parts.path or "/"
    query = "&".join(sorted(parts.query.split("&"))) if parts.query else ""
    return (f"{key}){path}" + (f"?{query}" if query else "")).lower()


def _timestamp14(warc_date: str) -> str:
    return parse_rfc3339(warc_date).strftime("%Y%m%d%H%M%S")


def _mime(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower() or "unk"


def _title(dom: bytes) -> str | None:
    match = _TITLE.search(dom)
    if not match:
        return None
    title = " ".join(unescape(match.group(1).decode("utf-8", "replace")).split())
    return title or None


@dataclass
class _Indexed:
    lines: list[str]
    title: str | None


def index_warc(data: bytes, filename: str, base_offset: int) -> _Indexed:
    """CDXJ lines for the response/resource records of one gzipped WARC at ``base_offset``."""
    lines: list[str] = []
    title = None
    it = ArchiveIterator(io.BytesIO(data))
    for record in it:
        if record.rec_type not in ("response", "resource"):
            continue
        headers = record.rec_headers
        url = headers.get_header("WARC-Target-URI")
        entry: dict[str, str] = {"url": url}
        if record.rec_type == "response" and record.http_headers is not None:
            entry["mime"] = _mime(record.http_headers.get_header("Content-Type"))
            entry["status"] = record.http_headers.get_statuscode()
        else:
            entry["mime"] = _mime(headers.get_header("Content-Type"))
            entry["status"] = "200"
            if url.startswith("urn:dom:") and title is None:
                title = _title(record.content_stream().read())
        digest = headers.get_header("WARC-Payload-Digest") or headers.get_header(
            "WARC-Block-Digest"
        )
        if digest:
            entry["digest"] = digest
        entry["length"] = str(it.get_record_length())
        entry["offset"] = str(base_offset + it.get_record_offset())
        entry["filename"] = filename
        ts = _timestamp14(headers.get_header("WARC-Date"))
        lines.append(f"{surt(url)} {ts} {json.dumps(entry)}")
    return _Indexed(lines, title)


class _HashingWriter:
    """Counts and hashes what goes into one zip member."""

    def __init__(self, fh) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.sha.update(data)
        self.size += len(data)


def _software() -> str:
    try:
        return f"citearchive {metadata.version('citearchive')}"
    except metadata.PackageNotFoundError:
        return "citearchive"


def _resource(path: str, sha256: str, size: int) -> dict:
    return {
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "hash": f"sha256:{sha256}",
        "bytes": size,
    }


def _stored(zf: zipfile.ZipFile, path: str, data: bytes) -> dict:
    info = zipfile.ZipInfo(path, date_time=datetime.now(UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_STORED
    zf.writestr(info, data)
    return _resource(path, hashlib.sha256(data).hexdigest(), len(data))


def _warc_members(
    app: App,
    parts: list[tuple[Chosen, str]],
    zf: zipfile.ZipFile,
    resources: list[dict],
    limit: int,
) -> list[tuple[Chosen, str, _Indexed]]:
    """Write the WARCs (capture, sha256) into archive/data-<n>.warc.gz members; return the
    index of each."""
    indexed: list[tuple[Chosen, str, _Indexed]] = []
    n = 0
    name = ""
    member = None
    writer: _HashingWriter | None = None
    try:
        for item, sha256 in parts:
            data = _verified_warc(app, item, sha256)
            if member is not None and writer is not None and writer.size + len(data) > limit:
                member.close()
                resources.append(_resource(name, writer.sha.hexdigest(), writer.size))
                member, writer = None, None
                n += 1
            if member is None or writer is None:
                name = f"archive/data-{n}.warc.gz"
                info = zipfile.ZipInfo(name, date_time=datetime.now(UTC).timetuple()[:6])
                info.compress_type = zipfile.ZIP_STORED
                member = zf.open(info, "w", force_zip64=True)
                writer = _HashingWriter(member)
            indexed.append((item, sha256, index_warc(data, name.rsplit("/", 1)[-1], writer.size)))
            writer.write(data)
    finally:
        if member is not None:
            member.close()  # also on error, so the zip (to be discarded) can be closed
    if writer is not None:
        resources.append(_resource(name, writer.sha.hexdigest(), writer.size))
    return indexed


def build_wacz(
    app: App, chosen: list[Chosen], fh, *, title: str = "citearchive export", limit: int = 0
) -> dict:
    """Write a WACZ package of ``chosen`` to the binary file ``fh``; return datapackage.json."""
    resources: list[dict] = []
    cdxj: list[str] = []
    pages = [json.dumps({"format": "json-pages-1.0", "id": "pages", "title": "All Pages"})]
    parts = [(item, item.warc_sha256) for item in chosen]
    pages_of = {item.warc_sha256 for item in chosen}
    parts += [p for p in media_warcs(app, chosen) if p[1] not in pages_of]
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        members = _warc_members(app, parts, zf, resources, limit or WARC_MEMBER_LIMIT)
        for item, sha256, indexed in members:
            cdxj.extend(indexed.lines)
            if sha256 not in pages_of:
                continue  # a media WARC: indexed, but no page of its own
            url = item.source.canonical_url
            page = {
                "url": url,
                "ts": item.capture.captured_at,
                "title": indexed.title or url,
                "id": item.capture.id,
            }
            pages.append(json.dumps(page))
        cdxj.sort()
        resources.append(
            _stored(zf, "indexes/index.cdxj", "".join(f"{x}\n" for x in cdxj).encode())
        )
        resources.append(
            _stored(zf, "pages/pages.jsonl", "".join(f"{p}\n" for p in pages).encode())
        )
        package = {
            "profile": "data-package",
            "wacz_version": WACZ_VERSION,
            "title": title,
            "created": format_rfc3339(datetime.now(UTC)),
            "software": _software(),
            "resources": resources,
        }
        package_bytes = json.dumps(package, indent=2).encode()
        _stored(zf, "datapackage.json", package_bytes)
        digest = {
            "path": "datapackage.json",
            "hash": f"sha256:{hashlib.sha256(package_bytes).hexdigest()}",
        }
        _stored(zf, "datapackage-digest.json", json.dumps(digest, indent=2).encode())
    return package


def export_wacz(app: App, chosen: list[Chosen], out_file: Path, *, limit: int = 0) -> dict:
    """Write the WACZ atomically: a temporary file beside ``out_file``, then a rename."""
    parent = out_file.resolve().parent
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{out_file.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"{out_file}: cannot write: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            package = build_wacz(app, chosen, fh, limit=limit)
        os.replace(tmp, out_file)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"{out_file}: cannot write: {exc.strerror or exc}") from exc
        raise
    return package
