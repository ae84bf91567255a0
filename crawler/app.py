"""The application the commands act on: config, archive and index, opened together.

No module-level state: each command builds one ``App`` from its ``--config`` and closes it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crawler.config import Config, load_config
from crawler.errors import LockedError, NotFoundError, StorageError
from crawler.urls import with_scheme
from storage.archive import Archive
from storage.ids import source_id
from storage.index import CaptureRow, Index, SourceRow
from storage.objectstore import ObjectStore
from storage.spool import open_spooling


@dataclass
class App:
    config: Config
    archive: Archive
    index: Index

    @classmethod
    def open(cls, config: Config) -> App:
        return cls(config, Archive(open_configured_store(config)), Index(config.index_url))

    def close(self) -> None:
        self.index.close()

    @classmethod
    def for_command(cls, ctx: Any) -> App:
        """The App of a CLI command: the config named by the group's ``--config``."""
        return cls.open(load_config(ctx.obj["config_path"]))

    def canonical(self, url: str) -> str:
        """The canonical form of ``url`` under this config's tracking-parameter list."""
        return self.config.canonical(url)

    def source_for(self, url: str) -> SourceRow:
        """The registered source of ``url`` (any spelling of it), or NotFoundError."""
        row = self.index.get_source(source_id(self.canonical(with_scheme(url))))
        if row is None:
            raise NotFoundError(f"{url}: not a registered source (add it first)")
        return row

    def due_sources(self, everything: bool, limit: int | None = None) -> list[SourceRow]:
        if everything:
            return self.index.list_sources()[:limit]
        interval = timedelta(hours=self.config.schedule.interval_hours)
        return self.index.due_sources(datetime.now(UTC), interval, limit)

    def count_due(self) -> int:
        interval = timedelta(hours=self.config.schedule.interval_hours)
        return self.index.count_due(datetime.now(UTC), interval)

    def capture_at(
        self, source: SourceRow, at: datetime | None, artifact: str | None
    ) -> CaptureRow:
        """The last capture at or before ``at`` (Memento semantics) that holds ``artifact``."""
        chosen = None
        for row in self.index.captures(source.id):
            if at is not None and parse_time(row.captured_at) > at:
                break
            if artifact is None or artifact in row.artifacts:
                chosen = row
        if chosen is None:
            what = f" with a {artifact} artifact" if artifact else ""
            when = f" at or before {at.isoformat()}" if at else ""
            raise NotFoundError(f"{source.canonical_url}: no capture{what}{when}")
        return chosen

    @contextmanager
    def run_lock(self) -> Iterator[None]:
        """Hold the run lock; a second run gets LockedError at once instead of waiting."""
        path = self.config.lock_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"{path}: cannot open run lock: {exc.strerror}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise LockedError(f"{path}: another citearchive run is in progress") from exc
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            os.close(fd)


def spool_dir(config: Config) -> Path:
    """``[store] spool``, or citearchive-spool beside the index (or the config)."""
    if config.store.spool:
        return config.base_dir / config.store.spool  # an absolute path stays as it is
    index = config.index_url
    if index.startswith("sqlite:///"):
        return Path(index.removeprefix("sqlite:///")).parent / "citearchive-spool"
    return config.base_dir / "citearchive-spool"


def open_configured_store(config: Config) -> ObjectStore:
    """The config's store; a remote one retries and spools while it is down
    (storage/spool.py), and the crawl in this process shares that instance."""
    return open_spooling(
        config.store_url,
        spool_dir(config),
        retry_seconds=config.store.retry_seconds,
        connect_timeout=config.store.connect_timeout,
        read_timeout=config.store.read_timeout,
    )


def parse_time(text: str) -> datetime:
    """RFC 3339 / ISO 8601 (a date alone means its end), or 14-digit YYYYMMDDhhmmss; UTC."""
    value = text.strip()
    try:
        if value.isdigit() and len(value) == 14:
            return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a time (use RFC 3339, e.g. 2021-08-26T12:00:00Z)"
        ) from exc
    if len(value) == 10:  # a date: the whole day counts
        parsed = parsed + timedelta(days=1) - timedelta(microseconds=1)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
