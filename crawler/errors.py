"""The one exception tree of citearchive.

Library errors (boto3/botocore, Playwright, Twisted, SQLAlchemy, OS errors) are mapped to
these at the boundary where they happen, with ``raise ... from exc``, so callers handle a
handful of types and the CLI maps each to a documented exit code.

    CitearchiveError
    ├── UsageError          bad input from the user: config, URL, arguments     (exit 2)
    │   ├── ConfigError         malformed config file or unknown key
    │   └── InvalidURLError     a URL that cannot be a source
    ├── StorageError        the object store or the index failed                (exit 4)
    │   ├── BlobNotFound        a blob or manifest key is missing
    │   ├── IntegrityError      stored bytes do not match their hash / chain
    │   ├── StoreUnavailable    the store did not answer (network, timeout, 5xx): transient
    │   └── BrokerUnavailable   the fleet's broker or result backend did not answer
    ├── LockedError         another run holds the lock                          (exit 5)
    ├── NotFoundError       a source or capture the user named does not exist   (exit 3)
    └── CaptureError        one source could not be captured (recorded, never fatal)
        ├── DestinationRefused  the network guard refused a destination
        ├── ResponseTooLarge    a response body went over [crawl] max_body_mb
        └── MediaError          one media item of a page could not be kept (recorded with
                                its reason; the page's capture and verdict stand)
"""

from __future__ import annotations


class CitearchiveError(Exception):
    """Base of every error citearchive raises on purpose."""

    exit_code = 1


class UsageError(CitearchiveError):
    """Bad input from the user; nothing was written."""

    exit_code = 2


class ConfigError(UsageError):
    """The config file is unreadable, malformed or has unknown keys."""


class InvalidURLError(UsageError):
    """A URL that cannot be registered or captured."""


class NotFoundError(CitearchiveError):
    """A source or capture named by the user does not exist."""

    exit_code = 3


class StorageError(CitearchiveError):
    """The object store or the index failed."""

    exit_code = 4


class BlobNotFound(StorageError):
    """A blob or manifest key is missing from the store."""


class IntegrityError(StorageError):
    """Stored bytes do not match their recorded hash, or a hash chain is broken."""


class StoreUnavailable(StorageError):
    """The store did not answer in time or answered 5xx; worth retrying later."""


class BrokerUnavailable(StorageError):
    """The fleet's broker (``[queue] broker``) or its result backend did not answer."""


class LockedError(CitearchiveError):
    """Another run holds the run lock."""

    exit_code = 5


class CaptureError(CitearchiveError):
    """One source could not be captured; recorded as `unreachable`, never fatal."""


class DestinationRefused(CaptureError):
    """The network guard refused a destination (non-global address, bad scheme)."""


class ResponseTooLarge(CaptureError):
    """A response body (as sent or once decoded) went over the size cap; it was cut."""


class MediaError(CaptureError):
    """One media item could not be downloaded or read (over a cap, live, timeout, HTTP)."""

    def __init__(self, reason: str, *, status: str = "failed") -> None:
        super().__init__(reason)
        self.reason = reason
        # "gone": the server said it is not there (404/410), evidence of a removal;
        # "skipped": refused on purpose (over a cap, a live stream); "failed": anything else.
        self.status = status
