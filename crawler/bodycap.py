"""A cap on one response body: counted as it is sent and as it decodes, stopped past a limit.

The egress proxy meters every plain-HTTP response body it relays. Chromium decodes
``Content-Encoding`` itself, so a small gzip, deflate, brotli or zstd stream can expand to
gigabytes (a decompression bomb) in the browser and in every copy made of it (recorder,
WARC, text). The meter decodes in bounded steps only to count, and keeps nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

import brotli
from backports import zstd

from crawler.errors import ResponseTooLarge

__all__ = ["BodyMeter"]

_STEP = 1024 * 1024  # decoded bytes produced per step: memory stays bounded by this


def _zlib_steps(wbits: int) -> Callable[[bytes], Iterator[int]]:
    decoder = zlib.decompressobj(wbits)

    def steps(data: bytes) -> Iterator[int]:
        while data and not decoder.eof:
            yield len(decoder.decompress(data, _STEP))
            data = decoder.unconsumed_tail

    return steps


def _brotli_steps() -> Callable[[bytes], Iterator[int]]:
    decoder = brotli.Decompressor()

    def steps(data: bytes) -> Iterator[int]:
        if decoder.is_finished():
            return
        produced = len(decoder.process(data, output_buffer_limit=_STEP))
        yield produced
        while produced and not decoder.is_finished():  # output still held back: drain it
            produced = len(decoder.process(b"", output_buffer_limit=_STEP))
            yield produced

    return steps


def _zstd_steps() -> Callable[[bytes], Iterator[int]]:
    decoder = zstd.ZstdDecompressor()

    def steps(data: bytes) -> Iterator[int]:
        if decoder.eof:
            return
        yield len(decoder.decompress(data, _STEP))
        while not decoder.eof and not decoder.needs_input:
            yield len(decoder.decompress(b"", _STEP))

    return steps


_DECODERS: dict[str, Callable[[], Callable[[bytes], Iterator[int]]]] = {
    "gzip": lambda: _zlib_steps(16 + zlib.MAX_WBITS),
    "x-gzip": lambda: _zlib_steps(16 + zlib.MAX_WBITS),
    "deflate": lambda: _zlib_steps(zlib.MAX_WBITS),
    "br": _brotli_steps,
    "zstd": _zstd_steps,
}


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB"


class BodyMeter:
    """Feed a body's bytes as they pass; ``ResponseTooLarge`` once either count passes ``limit``.

    Only a single content coding is decoded (the common case); for a chain of codings, or
    a stream that does not decode, the bytes as sent are still counted.
    """

    def __init__(self, limit: int, content_encoding: str = "") -> None:
        self.limit = limit
        self.sent = 0
        self.decoded = 0
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        make = _DECODERS.get(codings[0]) if len(codings) == 1 else None
        self._steps = make() if make is not None else None

    def feed(self, data: bytes) -> None:
        self.sent += len(data)
        if self.sent > self.limit:
            raise ResponseTooLarge(f"body over {_mb(self.limit)}: cut by the egress proxy")
        if self._steps is None:
            return
        try:
            for produced in self._steps(data):
                self.decoded += produced
                if self.decoded > self.limit:
                    raise ResponseTooLarge(
                        f"body over {_mb(self.limit)} once decoded (sent {self.sent} bytes): "
                        "cut by the egress proxy"
                    )
        except (zlib.error, brotli.error, zstd.ZstdError):
            self._steps = None  # not decodable: the browser fails on it; keep counting as sent
