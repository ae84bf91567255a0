"""The configuration a user edits, parsed once into a typed object.

A config file is TOML. Unknown keys and wrong types are refused (``ConfigError``, exit 2)
so a typo never silently falls back to a default. Relative paths in the file (a
``file:`` store, an index, citation lists) are resolved against the file's own folder,
so a cron job with another working directory reads the same archive.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from crawler.errors import ConfigError
from crawler.urls import canonicalize

DEFAULT_CONFIG_NAMES = ("citearchive.toml", "config/citearchive.toml")
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0 Safari/537.36 citearchive/0.1 (citation archiver)"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(_Section):
    url: str = "file:archive"
    # A remote store that does not answer: each operation is retried with backoff for up
    # to retry_seconds, then writes go to the spool folder (default: citearchive-spool
    # beside the index) and are uploaded by the next run. See docs/storage.md.
    spool: str = ""
    retry_seconds: Annotated[float, Field(ge=0, le=3600)] = 60.0
    connect_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    read_timeout: Annotated[float, Field(gt=0, le=600)] = 60.0
    # With a broker, every worker must see the same store: a file: store is refused unless
    # it is marked shared (an NFS mount on every worker). See docs/scaling.md.
    shared: bool = False


class QueueConfig(_Section):
    """Fleet mode (docs/scaling.md): with a broker, captures run on `citearchive worker`s."""

    broker: str = ""  # any URL kombu accepts: "redis://host:6379/0", "amqp://..."
    # Where task results and the fleet's shared state live (politeness, scheduler guard,
    # worker heartbeats); empty: the broker itself when it is redis://.
    redis: str = ""
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 20  # sources per task
    # A source's lease lasts this long; a task not acknowledged in this time is delivered
    # again (the broker's visibility timeout is set a little longer).
    lease_seconds: Annotated[float, Field(ge=10, le=86_400)] = 1800.0
    queue_name: str = "citearchive"
    # run-once stops waiting for its tasks after this long (exit 8; they stay queued for
    # the workers); 0: until they finish, however long.
    wait_timeout_s: Annotated[float, Field(ge=0, le=7 * 86_400)] = 0.0


class IndexConfig(_Section):
    # Empty means: next to a file:// store, or citearchive-index.sqlite beside the config.
    url: str = ""


class CrawlConfig(_Section):
    allow_private_networks: bool = False
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    page_timeout: Annotated[float, Field(gt=0, le=600)] = 30.0
    settle_timeout: Annotated[float, Field(ge=0, le=300)] = 10.0
    chromium_path: str = "/usr/bin/chromium"
    user_agent: str = DEFAULT_USER_AGENT
    viewport_width: Annotated[int, Field(ge=200, le=4000)] = 1280
    viewport_height: Annotated[int, Field(ge=200, le=4000)] = 900
    max_screenshot_height: Annotated[int, Field(ge=200, le=100_000)] = 20_000
    pages_per_context: Annotated[int, Field(ge=1, le=10_000)] = 50
    # "tiered": a source whose content needs no script is re-checked by a conditional
    # HTTP fetch first, and rendered only if that cannot prove it unchanged (docs/rechecks.md).
    recheck: Literal["tiered", "full"] = "tiered"
    full_render_days: Annotated[float, Field(gt=0)] = 7.0  # render at least this often
    # "HOST:PORT" endpoints allowed despite the private-address guard (docs/security.md).
    allow_hosts: list[str] = []
    max_body_mb: Annotated[float, Field(gt=0, le=4096)] = 50.0  # one response body, decoded

    @field_validator("allow_hosts")
    @classmethod
    def _endpoints(cls, entries: list[str]) -> list[str]:
        from crawler.netguard import parse_endpoint

        for entry in entries:
            parse_endpoint(entry)  # ValueError names the entry
        return entries


class ScheduleRule(_Section):
    """A schedule for some sources: those of a host, of a citing document, or one URL."""

    host: str | None = None  # matches the host and its subdomains
    document: str | None = None  # a citing document's path or URL, as `sources` shows it
    url: str | None = None  # one source (any spelling of its URL)
    interval_hours: Annotated[float, Field(gt=0)] | None = None
    cron: str | None = None  # five-field crontab expression, UTC

    @model_validator(mode="after")
    def _one_selector_one_timing(self) -> ScheduleRule:
        if sum(x is not None for x in (self.host, self.document, self.url)) != 1:
            raise ValueError("a rule needs exactly one of host, document, url")
        if (self.interval_hours is None) == (self.cron is None):
            raise ValueError("a rule needs exactly one of interval_hours, cron")
        if self.cron is not None:
            from crawler.schedule import cron_trigger  # only when a rule uses cron

            try:
                cron_trigger(self.cron)
            except ValueError as exc:
                raise ValueError(f"cron {self.cron!r}: {exc}") from exc
        return self


class ScheduleConfig(_Section):
    interval_hours: Annotated[float, Field(gt=0)] = 24.0
    jitter_minutes: Annotated[float, Field(ge=0)] = 0.0  # random delay added to each due time
    check_seconds: Annotated[float, Field(ge=1)] = 60.0  # how often `schedule` looks for due work
    batch_size: Annotated[int, Field(ge=1)] = 200  # sources per crawl process
    misfire_grace_seconds: Annotated[float, Field(ge=1)] = 300.0
    rules: list[ScheduleRule] = []  # first matching rule wins; TOML: [[schedule.rules]]


class PolitenessConfig(_Section):
    per_host_concurrency: Annotated[int, Field(ge=1, le=32)] = 2
    per_host_delay: Annotated[float, Field(ge=0, le=600)] = 1.0  # seconds between requests
    obey_robots_txt: bool = False  # citation archivists capture what was cited
    max_retry_after_hours: Annotated[float, Field(gt=0)] = 24.0  # cap on a server's Retry-After


class NotifyConfig(_Section):
    apprise_urls: list[str] = []  # e.g. "mailtos://...", "ntfy://topic", "json://host/path"
    webhook_url: str | None = None  # plain JSON POST of each event (or the digest)
    events: list[Literal["changed", "gone", "moved", "restored", "dead"]] = [
        "changed",
        "gone",
        "moved",
        "restored",
        "dead",
    ]
    digest: bool = False  # one message per run instead of one per event
    timeout: Annotated[float, Field(gt=0, le=300)] = 20.0
    ui_url: str | None = None  # base URL of `citearchive serve`, for links in messages


class VerdictsConfig(_Section):
    # A source whose last N captures were all unreachable is reported as dead.
    dead_after: Annotated[int, Field(ge=1, le=1000)] = 3


class UrlsConfig(_Section):
    # None: the built-in list (crawler.urls.DEFAULT_TRACKING_PARAMS); names ending in "*"
    # are prefixes. Changing it changes source identity: set it before the first import.
    tracking_params: list[str] | None = None


class SourcesConfig(_Section):
    # TOML citation lists registered at the start of every run (see config/citations.toml).
    lists: list[str] = []


VOLATILE_MEDIA_PARAMS = [
    "token",
    "sig",
    "signature",
    "expires",
    "exp",
    "policy",
    "key-pair-id",
    "hdnts",
    "hdntl",
    "hmac",
    "auth",
    "x-amz-*",
    "x-goog-*",
]


class MediaConfig(_Section):
    """The media a cited page shows (docs/media.md): found, downloaded, judged."""

    enabled: bool = True
    max_mb: Annotated[float, Field(gt=0, le=100_000)] = 500.0  # one media file
    max_duration_s: Annotated[float, Field(gt=0)] = 7200.0
    timeout_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0  # one media item, all requests
    max_items: Annotated[int, Field(ge=1, le=100)] = 10  # per page
    # Query parameters that sign or expire a CDN URL: not part of the media's identity.
    volatile_params: list[str] = VOLATILE_MEDIA_PARAMS
    ffmpeg_dir: str = "/usr/bin"


class Config(_Section):
    store: StoreConfig = StoreConfig()
    index: IndexConfig = IndexConfig()
    crawl: CrawlConfig = CrawlConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    sources: SourcesConfig = SourcesConfig()
    urls: UrlsConfig = UrlsConfig()
    verdicts: VerdictsConfig = VerdictsConfig()
    politeness: PolitenessConfig = PolitenessConfig()
    notify: NotifyConfig = NotifyConfig()
    media: MediaConfig = MediaConfig()
    queue: QueueConfig = QueueConfig()
    # Folder that relative paths are resolved against; not a TOML key.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    def canonical(self, url: str) -> str:
        """The canonical form of ``url`` under this config's tracking-parameter list."""
        params = self.urls.tracking_params
        return canonicalize(url, frozenset(params) if params is not None else None)

    @property
    def store_url(self) -> str:
        """The store URL with a relative ``file:`` path made absolute."""
        parts = urlsplit(self.store.url)
        if parts.scheme == "file":
            path = Path(parts.path)
            if not path.is_absolute():
                path = self.base_dir / path
            return "file://" + str(path.resolve())
        return self.store.url

    @property
    def index_url(self) -> str:
        if self.index.url:
            if self.index.url.startswith("sqlite:///") and not self.index.url.startswith(
                "sqlite:////"
            ):
                rel = self.index.url.removeprefix("sqlite:///")
                return "sqlite:///" + str((self.base_dir / rel).resolve())
            return self.index.url
        store = urlsplit(self.store_url)
        if store.scheme == "file":
            return "sqlite:///" + str(Path(store.path) / "index.sqlite")
        return "sqlite:///" + str((self.base_dir / "citearchive-index.sqlite").resolve())

    @property
    def lock_path(self) -> Path:
        """Where run-once keeps its lock: beside the index."""
        url = self.index_url
        if url.startswith("sqlite:///"):
            return Path(url.removeprefix("sqlite:///")).with_suffix(".lock")
        return self.base_dir / "citearchive.lock"

    @property
    def citation_lists(self) -> list[Path]:
        return [self.base_dir / p for p in self.sources.lists]


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read the config at ``path``, or the first default that exists, or built-in defaults."""
    if path is None:
        found = next((Path(n) for n in DEFAULT_CONFIG_NAMES if Path(n).is_file()), None)
        if found is None:
            return Config()
        path = found
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from exc
    return parse_config(raw, base_dir=path.resolve().parent, origin=str(path))


def parse_config(raw: dict, *, base_dir: Path, origin: str) -> Config:
    """Validate a parsed TOML mapping; the first problem becomes a one-line ConfigError."""
    if "base_dir" in raw:
        raise ConfigError(f"{origin}: unknown key 'base_dir'")
    try:
        config = Config.model_validate({**raw, "base_dir": base_dir})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"{origin}: unknown key '{where}'") from exc
        raise ConfigError(f"{origin}: invalid value for '{where}': {err['msg']}") from exc
    store = urlsplit(config.store.url)
    if store.scheme not in ("file", "s3"):
        raise ConfigError(
            f"{origin}: store.url {config.store.url!r} must start with file: or s3://"
        )
    if store.scheme == "file" and store.netloc not in ("", "localhost"):
        # store_url keeps only the path: the host would silently be dropped.
        raise ConfigError(
            f"{origin}: store.url {config.store.url!r} names a host; use file:///path"
        )
    return config
