"""Set up the media stage of a crawl batch from the config, and what it needs to know of
the sources' last captures."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from crawler.config import Config
from crawler.egress_proxy import EgressProxy
from crawler.media.collect import MediaCollector, MediaSettings
from crawler.media.ytdl import MB, FetchLimits
from crawler.netguard import DestinationPolicy
from storage.archive import Archive
from storage.index import Index


@contextlib.contextmanager
def media_stage(config: Config, policy: DestinationPolicy) -> Iterator[MediaCollector | None]:
    """A MediaCollector for one batch, or None with ``[media] enabled = false``.

    Media have their own egress proxy: the same destination policy as the browser's, with
    the media size cap in place of the page body cap. Downloads live in a temporary folder
    removed with the batch, so a worker keeps nothing another one needs.
    """
    if not config.media.enabled:
        yield None
        return
    cfg = config.media
    limits = FetchLimits(
        max_bytes=int(cfg.max_mb * MB),
        max_duration_s=cfg.max_duration_s,
        timeout_s=cfg.timeout_s,
        user_agent=config.crawl.user_agent,
        ffmpeg_dir=cfg.ffmpeg_dir,
    )
    settings = MediaSettings(limits, list(cfg.volatile_params), cfg.max_items)
    workroot = Path(tempfile.mkdtemp(prefix="citearchive-media-"))
    try:
        with EgressProxy(
            policy,
            connect_timeout=min(config.crawl.page_timeout, 30.0),
            max_body_bytes=limits.max_bytes,
        ) as proxy:
            assert proxy.url is not None
            yield MediaCollector(settings, proxy.url, workroot)
    finally:
        shutil.rmtree(workroot, ignore_errors=True)


def previous_media(archive: Archive, index: Index, source_id: str) -> tuple[dict, ...]:
    """The media entries of the source's latest capture, each marked with the capture
    that holds its bytes (``_capture``); () when it has none (read from the index first)."""
    row = index.latest_capture(source_id)
    if row is None or not (row.rendering or {}).get("media"):
        return ()
    media = archive.read_manifest(row.manifest_key).manifest.get("media") or []
    return tuple({**m, "_capture": m.get("same_as") or row.id} for m in media)
