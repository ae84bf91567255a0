"""HTTP/1.x message framing for the egress proxy: heads, body lengths, relaying bodies.

Just enough of RFC 9112 to forward one request and one response per connection without
buffering bodies: a head is parsed into its first line and fields, a body is delimited by
Content-Length, chunked coding or the connection's end, and copied piece by piece.
"""

from __future__ import annotations

import asyncio
import re

from crawler.bodycap import BodyMeter

__all__ = [
    "HOP_BY_HOP",
    "MAX_HEAD",
    "TOKEN",
    "Fields",
    "Idle",
    "body_framing",
    "copy",
    "copy_body",
    "parse_head",
    "tokens",
]

MAX_HEAD = 64 * 1024  # request/response head and chunk-size lines
_CHUNK = 64 * 1024
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
Fields = list[tuple[str, str]]
# Fields that concern one connection, never forwarded (RFC 9110 7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
}


def parse_head(head: bytes) -> tuple[str, Fields]:
    """Split a message head into its first line and its header fields; ValueError if malformed."""
    first, *lines = head.decode("latin-1").split("\r\n")
    fields = []
    for line in filter(None, lines):
        name, sep, value = line.partition(":")
        if not sep or not TOKEN.fullmatch(name):
            raise ValueError("malformed header field")
        fields.append((name, value.strip()))
    return first, fields


def tokens(fields: Fields, name: str) -> list[str]:
    return [t.strip().lower() for k, v in fields if k.lower() == name for t in v.split(",")]


def body_framing(fields: Fields, *, request: bool) -> str | int | None:
    """ "chunked", a Content-Length, or None (requests: no body; responses: until close)."""
    encodings = tokens(fields, "transfer-encoding")
    lengths = {v.strip() for k, v in fields if k.lower() == "content-length"}
    if encodings:
        if request and (lengths or encodings[-1] != "chunked"):
            raise ValueError("ambiguous request framing")  # request smuggling
        return "chunked" if encodings[-1] == "chunked" else None
    if len(lengths) > 1 or (lengths and not re.fullmatch(r"[0-9]{1,18}", next(iter(lengths)))):
        raise ValueError("bad Content-Length")
    return int(lengths.pop()) if lengths else None


class Idle:
    """When bytes last moved (either direction), for the idle timeout; whether a head went out."""

    def __init__(self) -> None:
        self.head_sent = False
        self.touch()

    def touch(self) -> None:
        self.last = asyncio.get_running_loop().time()


async def copy(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    idle: Idle,
    size: int | None = None,
    meter: BodyMeter | None = None,
) -> None:
    """Copy ``size`` bytes, or until EOF when None; ``meter`` sees each piece before it goes."""
    while size is None or size > 0:
        data = await reader.read(_CHUNK if size is None else min(_CHUNK, size))
        if not data:
            if size is None:
                return
            raise ConnectionError("connection closed inside a message body")
        idle.touch()
        if meter is not None:
            meter.feed(data)
        writer.write(data)
        await writer.drain()
        idle.touch()
        size = None if size is None else size - len(data)


async def copy_body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    idle: Idle,
    framing: str | int | None,
    meter: BodyMeter | None = None,
) -> None:
    """Copy one message body, and nothing after it."""
    if framing != "chunked":
        await copy(reader, writer, idle, int(framing or 0), meter)
        return
    while True:  # forward the chunks as they are, stop after the last one
        line = await reader.readuntil(b"\r\n")
        size = line.split(b";", 1)[0].strip()
        if not re.fullmatch(rb"[0-9A-Fa-f]{1,15}", size):
            raise ValueError("bad chunk size")
        writer.write(line)
        if int(size, 16) == 0:
            while line != b"\r\n":  # trailer fields, then the empty line
                line = await reader.readuntil(b"\r\n")
                writer.write(line)
            await writer.drain()
            return
        await copy(reader, writer, idle, int(size, 16), meter)
        await copy(reader, writer, idle, 2)  # the CRLF after the chunk
