"""An object store in a local directory: one file per key, written atomically."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from crawler.errors import BlobNotFound, ConfigError, StorageError
from storage.objectstore import check_key, check_prefix, is_key, redact_url

# "#" is not allowed in keys, so a temp file can never be mistaken for an object.
_TEMP_PREFIX = ".#"


class LocalStore:
    """Objects as files under root; keys are relative paths."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = self.root.absolute().as_uri()

    @classmethod
    def from_url(cls, url: str) -> LocalStore:
        """Open "file:///absolute/path"; relative paths and remote hosts are refused."""
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise ConfigError(f"malformed store url {redact_url(url)!r}") from exc
        if parts.scheme.lower() != "file":
            raise ConfigError(f"not a file:// url: {redact_url(url)!r}")
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"file store url {redact_url(url)!r} names a host; use file:///path")
        if parts.query or parts.fragment:
            raise ConfigError(f"file store url {url!r} has a query or fragment")
        path = unquote(parts.path)
        if not path.startswith("/") or path.startswith("//"):
            raise ConfigError(f"file store url {url!r} needs an absolute path: file:///abs/dir")
        return cls(Path(path))

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        """Write to a temp file in the target dir, fsync, then rename over the key.

        content_type is not kept: files have no metadata and readers know their formats.
        """
        target = self._path(key)
        temp = target.with_name(f"{_TEMP_PREFIX}{target.name}.{secrets.token_hex(8)}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # os.open with 0o666 lets the umask decide permissions, unlike mkstemp's 0o600,
            # so other processes of the same group (web UI, backups) can read the archive.
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, target)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            _fsync_dir(target.parent)
        except OSError as exc:
            raise self._error("write", key, exc) from exc

    def get(self, key: str) -> bytes:
        """Read the object; BlobNotFound if it is missing."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise BlobNotFound(f"{key} not found in local store {self.root}") from exc
        except OSError as exc:
            raise self._error("read", key, exc) from exc

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Read ``length`` bytes from ``start`` without reading the rest of the file."""
        path = self._path(key)
        try:
            with path.open("rb") as handle:
                handle.seek(start)
                return handle.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise BlobNotFound(f"{key} not found in local store {self.root}") from exc
        except OSError as exc:
            raise self._error("read", key, exc) from exc

    def exists(self, key: str) -> bool:
        """Whether a file exists for the key."""
        path = self._path(key)
        try:
            return path.is_file()
        except OSError as exc:
            raise self._error("stat", key, exc) from exc

    def list(self, prefix: str) -> Iterator[str]:
        """Keys starting with prefix, sorted; files that are not valid keys are skipped."""
        check_prefix(prefix)
        # Only walk the deepest directory the prefix names; "captures/ab" walks "captures".
        base_dir = prefix.rpartition("/")[0]
        start = self.root.joinpath(*base_dir.split("/")) if base_dir else self.root
        return iter(sorted(self._walk(start, prefix)))

    def _walk(self, start: Path, prefix: str) -> Iterator[str]:
        def fail(exc: OSError) -> None:
            # A start dir that is missing or is a file just means no keys; anything else
            # (permissions, I/O) must not be hidden as an empty listing.
            if exc.errno in (errno.ENOENT, errno.ENOTDIR) and Path(exc.filename or "") == start:
                return
            raise StorageError(
                f"cannot list {prefix!r} in local store {self.root}: {exc.strerror or exc}"
            ) from exc

        for dirpath, _dirnames, filenames in os.walk(start, onerror=fail):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix) and is_key(key):
                    yield key

    def delete(self, key: str) -> None:
        """Remove the file; a missing key is fine.

        Empty directories are left in place: removing them could race a concurrent put
        that just created them.
        """
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._error("delete", key, exc) from exc

    def _error(self, action: str, key: str, exc: OSError) -> StorageError:
        reason = exc.strerror or exc
        return StorageError(f"cannot {action} {key} in local store {self.root}: {reason}")

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself; without it a crash can lose a completed put."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some filesystems cannot fsync a directory; the data itself is already synced.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)
