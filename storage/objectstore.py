"""The object store interface, key rules and the URL scheme registry.

An object store maps keys ("blobs/sha256/ab/cd/abcd...") to immutable bytes. The archive
is written against this protocol only, so local disk and S3 behave the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from crawler.errors import ConfigError, StorageError

_KEY_CHARS = re.compile(r"[A-Za-z0-9._/-]+")


@runtime_checkable
class ObjectStore(Protocol):
    """Bytes under keys; a local directory or an S3 bucket prefix."""

    url: str

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        """Store data atomically: a reader sees the whole object or nothing."""
        ...

    def get(self, key: str) -> bytes:
        """Return the object's bytes; BlobNotFound if it is missing."""
        ...

    def exists(self, key: str) -> bool:
        """Whether the object exists."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys starting with prefix, sorted lexicographically."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""
        ...


@runtime_checkable
class RangedStore(Protocol):
    """A store that can read part of an object (optional: Archive falls back to ``get``)."""

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from offset ``start`` (fewer at the end of the object);
        BlobNotFound if the object is missing."""
        ...


def check_key(key: str) -> str:
    """Return key if it is a safe relative key, else raise StorageError.

    Keys become file paths and S3 keys: no "." or ".." segments, no leading "/", no
    empty segments, only [A-Za-z0-9._/-], so a key can never escape the store's root or
    alias another key.
    """
    if not isinstance(key, str) or not key:
        raise StorageError(f"invalid store key {key!r}: empty")
    if not _KEY_CHARS.fullmatch(key):
        raise StorageError(f"invalid store key {key!r}: only A-Z a-z 0-9 . _ / - allowed")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise StorageError(f"invalid store key {key!r}: empty, '.' or '..' segment")
    return key


def is_key(key: str) -> bool:
    """Whether check_key accepts key; used to skip temp files and folder markers."""
    try:
        check_key(key)
    except StorageError:
        return False
    return True


def check_prefix(prefix: str) -> str:
    """Return prefix if it is "" or a key, optionally ending in "/"; else StorageError."""
    if prefix == "":
        return prefix
    check_key(prefix.removesuffix("/"))
    return prefix


def redact_url(url: str) -> str:
    """The url without user info, for messages: a password must never reach a log."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "<malformed url>"
    return urlunsplit(parts._replace(netloc=f"***@{netloc}"))


# Imported on use: opening a local store must not pay for importing boto3.
def _open_file(url: str) -> ObjectStore:
    from storage.localstore import LocalStore

    return LocalStore.from_url(url)


def _open_s3(url: str) -> ObjectStore:
    from storage.s3store import S3Store

    return S3Store.from_url(url)


STORE_SCHEMES: dict[str, Callable[[str], ObjectStore]] = {
    "file": _open_file,
    "s3": _open_s3,
}

# Stores a command set up with options (storage.spool.SpoolingStore) by the URL they were
# opened for. The crawl's pipeline and runner open the store again by URL in the same
# process; they must get the same instance, which holds the spool and the outage state.
_SHARED: dict[str, ObjectStore] = {}


def share_store(url: str, store: ObjectStore) -> None:
    """Make ``open_store(url)`` return ``store`` for the rest of this process."""
    _SHARED[url] = store


def shared_store(url: str) -> ObjectStore | None:
    """The store shared for ``url``, if any."""
    return _SHARED.get(url)


def open_store(url: str) -> ObjectStore:
    """Open the store a URL names ("file:///abs/dir", "s3://bucket/prefix")."""
    shared = _SHARED.get(url)
    if shared is not None:
        return shared
    try:
        scheme = urlsplit(url).scheme.lower()
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"malformed store url {url!r}") from exc
    opener = STORE_SCHEMES.get(scheme)
    if opener is None:
        known = ", ".join(f"{name}://" for name in sorted(STORE_SCHEMES))
        raise ConfigError(f"unsupported store url {redact_url(url)!r}: use one of {known}")
    return opener(url)
