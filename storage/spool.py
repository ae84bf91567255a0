"""Riding out an unavailable remote store: bounded retries, then a local spool.

``SpoolingStore`` wraps a remote ObjectStore (S3). An operation that fails with
StoreUnavailable (refused, reset, timed out, 5xx) is retried with exponential backoff for
up to ``retry_seconds``. If the store is still down the process goes *offline*: from then
on writes go to the spool folder without waiting, reads are answered from the spool and
from what this process already read or wrote, and nothing reaches the remote store until
``flush`` uploads the spool: blobs first, then records (sources, documents, probes), then
manifests oldest first, so the store never holds a manifest that names a missing blob.

Reads while offline: storing a capture reads the listing of the source's manifests, the
latest manifest (hash chain) and the last answered capture's manifest and text (verdict).
``begin_run`` flushes what an earlier run spooled and reads these ahead for every due
source, so a capture taken after the store went down is judged and chained exactly as it
would have been online. Spooled objects stay readable (``get`` reads the spool first).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from crawler.errors import BlobNotFound, StoreUnavailable
from storage.archive import Archive, blob_key
from storage.index import Index
from storage.localstore import LocalStore
from storage.objectstore import ObjectStore, check_prefix, open_store, share_store, shared_store

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_BACKOFF_START = 0.5
_BACKOFF_MAX = 8.0
_IMMUTABLE = ("blobs/", "captures/")  # a kept copy of these is as good as the store's
READ_RETRY_SECONDS = 30.0  # offline, how often a read tries the store again
_KEEP_JSON_MAX = 1 << 20
_READ_AHEAD_THREADS = 8  # JSON records read online are kept for offline reads up to this size


def _flush_rank(key: str) -> tuple[int, str]:
    """Blobs, then records, then manifests (their keys sort oldest first per source)."""
    if key.startswith("blobs/"):
        return (0, key)
    if key.startswith("captures/"):
        return (2, key)
    return (1, key)


def _content_type(key: str) -> str:
    return "application/json" if key.endswith(".json") else "application/octet-stream"


@dataclass(frozen=True)
class OutageReport:
    """What a run saw of the store: downtime, captures spooled and uploaded."""

    failures: int
    unavailable_seconds: float
    spooled: int  # manifests this process wrote to the spool
    uploaded_earlier: int  # manifests an earlier run spooled, uploaded at this run's start
    waiting: int  # manifests still in the spool
    spool_dir: Path

    def line(self) -> str | None:
        """One phrase for the run's summary line, or None when the store always answered."""
        parts = []
        if self.uploaded_earlier:
            parts.append(f"{self.uploaded_earlier} spooled capture(s) of an earlier run uploaded")
        if self.failures or self.spooled:
            text = f"store unavailable {round(self.unavailable_seconds)} s"
            if not self.spooled:
                text += ", writes retried, nothing spooled"
            elif self.waiting:
                text += (
                    f"; {self.spooled} capture(s) spooled in {self.spool_dir}, "
                    "to be uploaded by the next run"
                )
            else:
                text += f"; {self.spooled} capture(s) spooled, uploaded at the end of the run"
            parts.append(text)
        return "; ".join(parts) or None


class SpoolingStore:
    """A remote ObjectStore that retries, then spools writes locally while it is down."""

    def __init__(
        self,
        remote: ObjectStore,
        spool_dir: Path,
        *,
        retry_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.remote = remote
        self.url = remote.url
        self.spool_dir = Path(spool_dir)
        self.spool = LocalStore(self.spool_dir)
        self.retry_seconds = retry_seconds
        self._sleep = sleep
        self._lock = threading.Lock()
        self.offline = False
        self._next_read_try = 0.0
        self._failures = 0
        self._down_since: float | None = None
        self._down_total = 0.0
        self._written: set[str] = set()  # keys this process stored, remotely or spooled
        self._kept: dict[str, bytes] = {}  # bytes kept for reads while offline
        self._listings: dict[str, list[str]] = {}  # remote listings of captures/<id>/
        self._spooled = 0
        self.uploaded_earlier = 0  # set by begin_run

    # The remote store, retried

    def _call(self, fn: Callable[[], _T], budget: float) -> _T:
        """fn() against the remote store, retried with backoff while it is unavailable.

        Raises StoreUnavailable once ``budget`` seconds are spent, and marks the process
        offline; any other error is not retried (a denied key is no outage).
        """
        deadline = time.monotonic() + budget
        delay = _BACKOFF_START
        while True:
            started = time.monotonic()
            try:
                result = fn()
            except StoreUnavailable as exc:
                self._failed(started)
                if time.monotonic() + delay > deadline:
                    self._go_offline(exc)
                    raise
                logger.warning("%s; retrying in %.1f s", exc, delay)
                self._sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            self._answered()
            return result

    def _failed(self, started: float) -> None:
        with self._lock:
            self._failures += 1
            if self._down_since is None:
                self._down_since = started

    def _answered(self) -> None:
        with self._lock:
            if self._down_since is not None:
                self._down_total += time.monotonic() - self._down_since
                self._down_since = None

    def _go_offline(self, exc: StoreUnavailable) -> None:
        with self._lock:
            self._next_read_try = time.monotonic() + READ_RETRY_SECONDS
            if self.offline:
                return
            self.offline = True
        logger.warning(
            "%s; writes go to the spool %s until the store answers again", exc, self.spool_dir
        )

    def _online(self, fn: Callable[[], _T], *, read: bool = True) -> tuple[bool, _T | None]:
        """(True, result) from the remote store, or (False, None) when it is down.

        Offline, writes never try the store (a manifest must not overtake its spooled
        blobs), but a read tries once every READ_RETRY_SECONDS, so a long-lived process
        (the web UI) reads from the store again once it is back.
        """
        budget = self.retry_seconds
        if self.offline:
            with self._lock:
                if not read or time.monotonic() < self._next_read_try:
                    return False, None
                self._next_read_try = time.monotonic() + READ_RETRY_SECONDS
            budget = 0.0
        try:
            return True, self._call(fn, budget)
        except StoreUnavailable:
            return False, None

    # ObjectStore

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        """Store remotely; while the store is down, in the spool."""
        ok, _ = self._online(
            lambda: self.remote.put(key, data, content_type=content_type), read=False
        )
        if ok:
            # A copy an earlier run spooled is older than what was just stored.
            self.spool.delete(key)
        else:
            self.spool.put(key, data, content_type=content_type)
            if key.startswith("captures/"):
                with self._lock:
                    self._spooled += 1
        with self._lock:
            self._written.add(key)
            if key.startswith("captures/"):
                self._kept[key] = data

    def get(self, key: str) -> bytes:
        """The spooled copy if there is one (it is newer), else the remote object."""
        try:
            return self.spool.get(key)
        except BlobNotFound:
            pass
        if key.startswith(_IMMUTABLE):
            with self._lock:
                kept = self._kept.get(key)
            if kept is not None:
                return kept
        ok, data = self._online(lambda: self.remote.get(key))
        if ok and data is not None:
            if key.endswith(".json") and len(data) <= _KEEP_JSON_MAX:
                with self._lock:
                    self._kept[key] = data
            return data
        with self._lock:
            kept = self._kept.get(key)
        if kept is None:
            raise StoreUnavailable(f"cannot read {key}: {self.url} is unavailable")
        return kept

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Part of the spooled copy if there is one, else a ranged read of the remote."""
        try:
            return self.spool.get_range(key, start, length)
        except BlobNotFound:
            pass
        ranged = getattr(self.remote, "get_range", None)
        if ranged is None:
            return self.get(key)[start : start + length]
        ok, data = self._online(lambda: ranged(key, start, length))
        if not ok or data is None:
            raise StoreUnavailable(f"cannot read {key}: {self.url} is unavailable")
        return data

    def exists(self, key: str) -> bool:
        """While offline an unknown key counts as absent: a blob is then spooled again
        (content-addressed, so harmless), never lost."""
        if key in self._written or self.spool.exists(key):
            return True
        ok, found = self._online(lambda: self.remote.exists(key))
        if ok:
            return bool(found)
        with self._lock:
            return key in self._kept

    def list(self, prefix: str) -> Iterator[str]:
        """Remote keys and spooled keys; offline, the listing read before the outage."""
        check_prefix(prefix)
        keys = set(self.spool.list(prefix))
        ok, remote = self._online(lambda: list(self.remote.list(prefix)))
        with self._lock:
            if ok and remote is not None:
                if prefix.startswith("captures/"):
                    self._listings[prefix] = remote
            else:
                remote = self._listings.get(prefix)
                if remote is None:
                    raise StoreUnavailable(f"cannot list {prefix}: {self.url} is unavailable")
                keys.update(k for k in self._written if k.startswith(prefix))
        return iter(sorted(keys.union(remote)))

    def delete(self, key: str) -> None:
        self.spool.delete(key)
        with self._lock:
            self._written.discard(key)
            self._kept.pop(key, None)
        if self.offline:
            raise StoreUnavailable(f"cannot delete {key}: {self.url} is unavailable")
        self._call(lambda: self.remote.delete(key), self.retry_seconds)

    # Spool and reads ahead

    def keep(self, key: str) -> None:
        """Read key now and keep its bytes for reads while offline."""
        data = self.get(key)
        with self._lock:
            self._kept[key] = data

    def pending(self) -> list[str]:
        """Spooled keys in upload order."""
        return sorted(self.spool.list(""), key=_flush_rank)

    def flush(self, *, patient: bool = True) -> int:
        """Upload the spool in order; returns the manifests uploaded.

        StoreUnavailable if the store is still down: what is left stays spooled, and since
        blobs go first the store never names a blob it lacks. ``patient=False`` tries once.
        """
        uploaded = 0
        budget = self.retry_seconds if patient else 0.0
        for key in self.pending():
            self._upload(key, budget)
            self.spool.delete(key)
            if key.startswith("captures/"):
                uploaded += 1
        with self._lock:
            self.offline = False
        if uploaded:
            logger.info("uploaded %d spooled capture(s) to %s", uploaded, self.url)
        return uploaded

    def _upload(self, key: str, budget: float) -> None:
        data = self.spool.get(key)
        # A blob may be there already: spooled only because its existence was unknown.
        if key.startswith("blobs/") and self._call(lambda: self.remote.exists(key), budget):
            return
        self._call(lambda: self.remote.put(key, data, content_type=_content_type(key)), budget)

    def report(self) -> OutageReport:
        with self._lock:
            down = self._down_total
            if self._down_since is not None:
                down += time.monotonic() - self._down_since
            failures, spooled = self._failures, self._spooled
        waiting = sum(1 for _ in self.spool.list("captures/"))
        return OutageReport(failures, down, spooled, self.uploaded_earlier, waiting, self.spool_dir)

    def __repr__(self) -> str:
        return f"SpoolingStore({self.remote!r}, spool={str(self.spool_dir)!r})"


def open_spooling(
    url: str,
    spool_dir: Path,
    *,
    retry_seconds: float,
    connect_timeout: float,
    read_timeout: float,
) -> ObjectStore:
    """Open the store at url; an S3 store behind a SpoolingStore shared in this process."""
    shared = shared_store(url)
    if shared is not None:
        return shared
    if not url.lower().startswith("s3:"):
        return open_store(url)
    from storage.s3store import S3Store  # boto3 only for S3 stores

    # Two attempts per call: SpoolingStore does the patient retrying, bounded in time.
    remote = S3Store.from_url(
        url, connect_timeout=connect_timeout, read_timeout=read_timeout, max_attempts=2
    )
    store = SpoolingStore(remote, spool_dir, retry_seconds=retry_seconds)
    share_store(url, store)
    return store


def begin_run(archive: Archive, index: Index, source_ids: Iterable[str]) -> None:
    """Upload what earlier runs spooled, then read ahead what storing each source needs.

    StoreUnavailable if the store is down now: the run then captures nothing (the sources
    stay due) and the spool stays as it is.
    """
    store = archive.store
    if not isinstance(store, SpoolingStore):
        return
    waiting = len(store.pending())
    jobs = []  # per source: its id and the keys its verdict reads (the index knows them)
    for sid in source_ids:
        answered = [r for r in index.captures(sid) if r.verdict != "unreachable"]
        keys = [answered[-1].manifest_key] if answered else []
        if answered and "text" in answered[-1].artifacts:
            keys.append(blob_key(answered[-1].artifacts["text"]["sha256"]))
        jobs.append((sid, keys))

    def read_ahead(job: tuple[str, list[str]]) -> None:
        archive.latest_manifest(job[0])  # keeps the listing and the manifest
        for key in job[1]:
            store.keep(key)

    try:
        store.uploaded_earlier += store.flush()
        # Round trips, not bandwidth: a few at once (boto3 clients are thread-safe).
        with ThreadPoolExecutor(max_workers=_READ_AHEAD_THREADS) as pool:
            list(pool.map(read_ahead, jobs))
    except StoreUnavailable as exc:
        left = f"; {waiting} spooled object(s) wait in {store.spool_dir}" if waiting else ""
        raise StoreUnavailable(f"{exc}{left}; nothing was captured") from exc


def end_run(archive: Archive) -> str | None:
    """Try once to upload this run's spool; the phrase for the run's summary, if any."""
    store = archive.store
    if not isinstance(store, SpoolingStore):
        return None
    if store.pending():
        try:
            store.flush(patient=False)
        except StoreUnavailable as exc:
            logger.warning("%s; the spool is uploaded by the next run", exc)
    return store.report().line()
