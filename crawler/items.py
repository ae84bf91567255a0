"""What the spider hands to the item pipelines: one capture attempt of one source."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProbeResult:
    """How a host answers a made-up URL on it: the yardstick for soft 404s."""

    origin: str
    status: int | None
    final_url: str | None
    text: str  # judged content of that answer
    probed_at: str


@dataclass
class CaptureItem:
    """Everything kept of one capture attempt, before it is stored.

    ``http_status`` is None when the browser got no real response (DNS, refused, timeout,
    refused destination): such a capture is never reported as a live page.
    """

    source_id: str
    url: str
    captured_at: str
    final_url: str | None = None
    http_status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    redirect_chain: list[dict] = field(default_factory=list)
    media_type: str = ""
    raw: bytes | None = None
    dom: bytes | None = None
    screenshot: bytes | None = None
    text: str | None = None  # only when there is no DOM: the judged text is computed later
    warc: bytes | None = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    refused: list[dict] = field(default_factory=list)
    resources: int = 0
    probe: ProbeResult | None = None
    # sha256 over every exchange's method, URL, status and body: equal means the browser
    # got the same payloads, so an unchanged capture need not store its WARC again.
    traffic_sha256: str | None = None
    # Set by a cheap re-check (crawler/recheck.py): {"basis": capture id, "reason": why
    # unchanged}; such an item has no DOM, screenshot or WARC of its own.
    recheck: dict | None = None
    # The media stage's results (crawler/media/); None when it did not run (no HTML page,
    # media off), [] when the page has no media.
    media: list | None = None

    @property
    def answered(self) -> bool:
        return self.http_status is not None
