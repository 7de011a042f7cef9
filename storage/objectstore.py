"""Objects at `s3://<bucket>/<key>` URIs, read and written through the S3 API (boto3).

Any S3-compatible store will do: SeaweedFS on the local platform, MinIO or AWS S3 in
production. Where it is and who is asking come from the standard AWS variables, which
the Secret `maestro-objectstore` (SECRET_NAME) gives workloads in the cluster:
AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL; neither for AWS itself), AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_REGION. Buckets are addressed path-style
(`<endpoint>/<bucket>/<key>`), which every S3 implementation answers.

Failures come as two exceptions: ObjectNotFound (no such key or bucket) and
ObjectStoreUnavailable (unreachable, or refusing these credentials), each with a message
that names the URI and says what to check."""

from __future__ import annotations

import builtins
import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import boto3.exceptions
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

# The Secret (in each namespace whose workloads use the store) holding the AWS_* variables.
SECRET_NAME = "maestro-objectstore"  # pragma: allowlist secret (a name)
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
DEFAULT_REGION = "us-east-1"
# Error codes S3 implementations answer for a key or bucket that is not there (HEAD
# requests have no body, so only the status code: "404").
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404"})
CLIENT_CONFIG = Config(
    s3={"addressing_style": "path"},
    signature_version="s3v4",
    connect_timeout=5,
    read_timeout=60,
    # Standard mode retries throttling, 5xx answers and dropped connections (3 attempts).
    retries={"max_attempts": 3, "mode": "standard"},
)


class ObjectStoreUnavailable(Exception):
    """The object store cannot be used: unreachable, or refusing these credentials."""


class ObjectNotFound(Exception):
    """No object (or no bucket) at the URI."""


@dataclass(frozen=True)
class ObjectInfo:
    """One object, as a listing describes it."""

    uri: str
    size: int
    last_modified: datetime
    etag: str


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://<bucket>/<key>` -> (bucket, key); the key may be empty (the whole bucket) and
    keeps any `?` or `#` it contains (S3 keys may hold them)."""
    if not uri[:5].lower() == "s3://":
        raise ValueError(f"not an s3://<bucket>/<key> URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}: expected s3://<bucket>/<key>")
    return bucket, key


def _object(uri: str) -> tuple[str, str]:
    bucket, key = parse_s3_uri(uri)
    if not key or key.endswith("/"):
        raise ValueError(f"{uri!r} names no object: expected s3://<bucket>/<key>")
    return bucket, key


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((env[n] for n in names if env.get(n)), None)


class ObjectStore:
    """Reads and writes objects by s3:// URI through one boto3 S3 client."""

    def __init__(self, client: Any, endpoint: str | None = None) -> None:
        self.client = client
        self.endpoint = endpoint

    @classmethod
    def from_settings(
        cls,
        endpoint: str | None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
        session_token: str | None = None,
    ) -> ObjectStore:
        """A client for `endpoint` (None: AWS S3). Credentials left None come from boto3's
        own chain (~/.aws, instance roles)."""
        session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            region_name=region or DEFAULT_REGION,
        )
        client = session.client("s3", endpoint_url=endpoint, config=CLIENT_CONFIG)
        return cls(client, endpoint)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ObjectStore:
        """The store the standard AWS variables describe (`env`, by default os.environ)."""
        env = os.environ if env is None else env
        return cls.from_settings(
            _first(env, ENDPOINT_VARIABLES),
            env.get("AWS_ACCESS_KEY_ID") or None,
            env.get("AWS_SECRET_ACCESS_KEY") or None,
            env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            env.get("AWS_SESSION_TOKEN") or None,
        )

    @staticmethod
    def configured(env: Mapping[str, str] | None = None) -> bool:
        """Whether the environment (`env`, by default os.environ) names an endpoint or
        credentials: a workload given the Secret has both."""
        env = os.environ if env is None else env
        return _first(env, ENDPOINT_VARIABLES + CREDENTIAL_VARIABLES) is not None

    @property
    def _where(self) -> str:
        return self.endpoint or "AWS S3"

    @contextlib.contextmanager
    def _errors(self, uri: str) -> Iterator[None]:
        """boto3's exceptions -> ObjectNotFound / ObjectStoreUnavailable, naming `uri`."""
        try:
            yield
        except ClientError as err:
            error = err.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in NOT_FOUND_CODES or status == 404:
                what = "bucket" if code == "NoSuchBucket" else "object"
                raise ObjectNotFound(f"{uri}: no such {what} ({code or status})") from err
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied") or (
                status in (401, 403)
            ):
                raise ObjectStoreUnavailable(
                    f"the object store at {self._where} refused access to {uri} ({code}): "
                    "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (in the cluster, the "
                    f"Secret {SECRET_NAME}) and what that identity may do"
                ) from err
            raise ObjectStoreUnavailable(
                f"the object store at {self._where} failed on {uri}: {code or status} "
                f"{error.get('Message', '')}".rstrip()
            ) from err
        except NoCredentialsError as err:
            raise ObjectStoreUnavailable(
                f"no credentials for the object store to access {uri}: set AWS_ACCESS_KEY_ID "
                f"and AWS_SECRET_ACCESS_KEY (in the cluster, from the Secret {SECRET_NAME})"
            ) from err
        except boto3.exceptions.S3UploadFailedError as err:
            # upload_file wraps the ClientError in a message; its code is all that is left.
            if "NoSuchBucket" in str(err):
                raise ObjectNotFound(f"{uri}: no such bucket ({err})") from err
            raise ObjectStoreUnavailable(f"uploading to {uri} failed: {err}") from err
        except BotoCoreError as err:
            raise ObjectStoreUnavailable(
                f"the object store at {self._where} is unreachable ({err}) while accessing "
                f"{uri}: check AWS_ENDPOINT_URL_S3 and that the store runs (the local "
                "platform starts it: `make demo`, or the cluster tests' fixtures)"
            ) from err

    def put_bytes(self, uri: str, data: bytes, content_type: str | None = None) -> None:
        bucket, key = _object(uri)
        extra = {"ContentType": content_type} if content_type else {}
        with self._errors(uri):
            self.client.put_object(Bucket=bucket, Key=key, Body=data, **extra)

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = _object(uri)
        with self._errors(uri):
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
        return data

    def list(self, prefix_uri: str) -> builtins.list[ObjectInfo]:
        """Every object whose key starts with the URI's key (recursively: no delimiter),
        in key order; empty if none. ObjectNotFound if the bucket does not exist."""
        bucket, prefix = parse_s3_uri(prefix_uri)
        found = []
        with self._errors(prefix_uri):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found.append(
                        ObjectInfo(
                            uri=f"s3://{bucket}/{item['Key']}",
                            size=int(item["Size"]),
                            last_modified=item["LastModified"],
                            etag=str(item.get("ETag", "")).strip('"'),
                        )
                    )
        return found

    def folders(self, prefix_uri: str) -> builtins.list[str]:
        """The next level of "folders" under a prefix ending in "/" (keys split at "/"),
        as s3:// URIs ending in "/"; what a listing per partition starts from."""
        bucket, prefix = parse_s3_uri(prefix_uri)
        found = []
        with self._errors(prefix_uri):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                for item in page.get("CommonPrefixes", []):
                    found.append(f"s3://{bucket}/{item['Prefix']}")
        return found

    def exists(self, uri: str) -> bool:
        bucket, key = _object(uri)
        try:
            with self._errors(uri):
                self.client.head_object(Bucket=bucket, Key=key)
        except ObjectNotFound:
            return False
        return True

    def upload_file(self, path: str | Path, uri: str) -> None:
        """Upload a local file (multipart when large)."""
        bucket, key = _object(uri)
        with self._errors(uri):
            self.client.upload_file(str(path), bucket, key)

    def download_file(self, uri: str, path: str | Path) -> None:
        """Download to `path` (its folder is created); a partial download never shows
        under `path`."""
        bucket, key = _object(uri)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with self._errors(uri):
            self.client.download_file(bucket, key, str(path))

    def delete(self, uri: str) -> None:
        """Delete the object; as in S3, deleting a missing key is no error (a missing
        bucket is: ObjectNotFound)."""
        bucket, key = _object(uri)
        with self._errors(uri):
            self.client.delete_object(Bucket=bucket, Key=key)

    def ensure_bucket(self, bucket: str) -> None:
        """Create `bucket` unless it exists (what a platform does once, not workloads)."""
        uri = f"s3://{bucket}"
        try:
            with self._errors(uri):
                self.client.head_bucket(Bucket=bucket)
            return
        except ObjectNotFound:
            pass
        try:
            with self._errors(uri):
                self.client.create_bucket(Bucket=bucket)
        except ObjectStoreUnavailable as err:
            cause = err.__cause__
            if not (
                isinstance(cause, ClientError)
                and cause.response.get("Error", {}).get("Code")
                in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
            ):
                raise
