"""An object store in an S3-compatible bucket under a key prefix."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions

from crawler.errors import BlobNotFound, ConfigError, StorageError, StoreUnavailable
from storage.objectstore import check_key, check_prefix, is_key, redact_url

# botocore's DEBUG log prints each request's headers and string to sign, which name the
# access key id: never below INFO, whatever -vv asks of the root logger.
logging.getLogger("botocore").setLevel(logging.INFO)

DEFAULT_REGION = "us-east-1"
# Loose on purpose: legacy us-east-1 buckets may have capitals and underscores; this only
# catches names no server accepts.
_BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_MISSING_BUCKET_CODES = {"NoSuchBucket"}
_DENIED_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "403",
}
_MISSING_KEY_CODES = {"NoSuchKey", "404"}
# Answers that say "try again later", not "you asked wrongly".
_TRANSIENT_CODES = {
    "500",
    "502",
    "503",
    "504",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
}
_BOTO_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
# Refused, reset, read or connect timeout (ReadTimeoutError is an HTTPClientError).
_UNREACHABLE = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)


def client_config(
    connect_timeout: float = 10, read_timeout: float = 60, max_attempts: int = 5
) -> botocore.config.Config:
    """Timeouts and retries for every S3 client of citearchive."""
    return botocore.config.Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
    )


class S3Store:
    """Objects in bucket under prefix; the bucket must already exist."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._bucket_checked = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        max_attempts: int = 5,
    ) -> S3Store:
        """Open "s3://bucket/prefix" with a client configured the standard boto3 way.

        Endpoint, credentials and region come from the environment or the AWS profile
        (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_PROFILE, ...); no request is made here.
        """
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise ConfigError(f"malformed store url {redact_url(url)!r}") from exc
        if parts.scheme.lower() != "s3":
            raise ConfigError(f"not an s3:// url: {redact_url(url)!r}")
        if "@" in parts.netloc or ":" in parts.netloc:
            raise ConfigError(
                f"s3 store url {redact_url(url)!r} must be s3://bucket/prefix; "
                "give credentials and endpoint through the AWS environment or profile"
            )
        if parts.query or parts.fragment:
            raise ConfigError(f"s3 store url {url!r} has a query or fragment")
        bucket = parts.netloc
        if not bucket:
            raise ConfigError(f"s3 store url {url!r} names no bucket: use s3://bucket/prefix")
        if not _BUCKET_NAME.fullmatch(bucket):
            raise ConfigError(f"s3 store url {url!r}: {bucket!r} is not a valid bucket name")
        prefix = parts.path.strip("/")
        if prefix:
            try:
                check_key(prefix)
            except StorageError as exc:
                raise ConfigError(f"s3 store url {url!r}: invalid prefix {prefix!r}") from exc
        try:
            session = boto3.session.Session()
            client = session.client(
                "s3",
                region_name=session.region_name or DEFAULT_REGION,
                config=client_config(connect_timeout, read_timeout, max_attempts),
            )
        except (botocore.exceptions.BotoCoreError, ValueError) as exc:
            raise ConfigError(
                f"cannot set up the S3 client for bucket {bucket!r}: {type(exc).__name__}: {exc}"
            ) from exc
        return cls(client, bucket, prefix)

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        """One PutObject: S3 makes an object visible only once it is complete."""
        extra = {"ContentType": content_type} if content_type else {}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)
        except _BOTO_ERRORS as exc:
            raise self._error(exc, "write", key) from exc

    def get(self, key: str) -> bytes:
        """Read the object; BlobNotFound if it is missing."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read()
        except _BOTO_ERRORS as exc:
            if _code(exc) in _MISSING_KEY_CODES:
                raise BlobNotFound(f"{key} not found in S3 bucket {self.bucket!r}") from exc
            raise self._error(exc, "read", key) from exc

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """One ranged GetObject: only the asked-for bytes cross the network."""
        if length <= 0:
            return b""
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{start + length - 1}"
            )
            return response["Body"].read()
        except _BOTO_ERRORS as exc:
            if _code(exc) in _MISSING_KEY_CODES:
                raise BlobNotFound(f"{key} not found in S3 bucket {self.bucket!r}") from exc
            if _code(exc) == "InvalidRange":  # start at or past the end: nothing there
                return b""
            raise self._error(exc, "read", key) from exc

    def exists(self, key: str) -> bool:
        """HeadObject; a 404 is checked against the bucket once, since HEAD cannot tell
        a missing key from a missing bucket."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except _BOTO_ERRORS as exc:
            if _code(exc) not in _MISSING_KEY_CODES:
                raise self._error(exc, "check", key) from exc
        self._check_bucket()
        return False

    def _check_bucket(self) -> None:
        if self._bucket_checked:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except _BOTO_ERRORS as exc:
            code = "NoSuchBucket" if _code(exc) == "404" else None
            raise self._error(exc, "check", None, code=code) from exc
        self._bucket_checked = True

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under prefix via the ListObjectsV2 paginator (S3 returns them sorted)."""
        check_prefix(prefix)
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        return self._list(full_prefix, prefix)

    def _list(self, full_prefix: str, prefix: str) -> Iterator[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for item in page.get("Contents", ()):
                    key = item["Key"][strip:]
                    # Folder markers ("dir/") and foreign keys are not objects of this store.
                    if is_key(key):
                        yield key
        except _BOTO_ERRORS as exc:
            raise self._error(exc, "list", prefix or "/") from exc

    def delete(self, key: str) -> None:
        """DeleteObject; a missing key is fine."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except _BOTO_ERRORS as exc:
            raise self._error(exc, "delete", key) from exc

    def _error(
        self, exc: Exception, action: str, key: str | None, *, code: str | None = None
    ) -> StorageError:
        """A one-line StorageError naming the bucket; built from error codes only, because
        server messages and request dumps may echo the access key id."""
        code = code or _code(exc)
        where = f"S3 bucket {self.bucket!r} at {_endpoint(self.client)}"
        if code in _MISSING_BUCKET_CODES:
            return StorageError(f"{where} does not exist (create it first)")
        if code in _DENIED_CODES:
            return StorageError(f"access to {where} denied ({code}): check the AWS credentials")
        what = f"{action} {key}" if key else action
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return StorageError(f"no AWS credentials found to {what} in {where}")
        if isinstance(exc, _UNREACHABLE):
            return StoreUnavailable(f"cannot {what} in {where}: endpoint unreachable or timed out")
        if code in _TRANSIENT_CODES:
            return StoreUnavailable(f"cannot {what} in {where}: store unavailable ({code})")
        if code:
            return StorageError(f"cannot {what} in {where}: {code}")
        return StorageError(f"cannot {what} in {where}: {type(exc).__name__}")

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"


def _code(exc: Exception) -> str | None:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "") or None
    return None


def _endpoint(client: Any) -> str:
    return redact_url(str(getattr(client.meta, "endpoint_url", "") or "default endpoint"))
