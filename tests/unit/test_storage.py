"""maestro.storage: s3:// URIs, which environment counts as configured, and how the S3
API's answers become ObjectNotFound / ObjectStoreUnavailable (botocore's Stubber answers
in place of a store: no I/O)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from botocore.stub import Stubber

from maestro.storage.objectstore import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreUnavailable,
    parse_s3_uri,
)

pytestmark = pytest.mark.unit

ENV = {
    "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1",
    "AWS_ACCESS_KEY_ID": "key",
    "AWS_SECRET_ACCESS_KEY": "secret",  # pragma: allowlist secret
    "AWS_REGION": "us-east-1",
}


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/key.parquet", ("bucket", "key.parquet")),
        ("s3://bucket/a/b/c.csv", ("bucket", "a/b/c.csv")),
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
        ("S3://Bucket/k", ("Bucket", "k")),
        ("s3://bucket/what?#not-a-query", ("bucket", "what?#not-a-query")),
    ],
    ids=["object", "nested", "bucket-only", "bucket-slash", "scheme-case", "query-chars-kept"],
)
def test_parse_s3_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    ["s3:///key", "s3://", "file:///x.csv", "/local/x.csv", "gs://bucket/key", "s3:/bucket/k"],
    ids=["empty-bucket", "nothing", "file", "path", "other-scheme", "one-slash"],
)
def test_parse_s3_uri_refuses_what_is_not_one(uri: str) -> None:
    with pytest.raises(ValueError, match="s3://") as err:
        parse_s3_uri(uri)
    assert repr(uri) in str(err.value)


@pytest.mark.parametrize(
    ("env", "configured"),
    [
        ({}, False),
        ({"AWS_ENDPOINT_URL_S3": "http://store"}, True),
        ({"AWS_ENDPOINT_URL": "http://store"}, True),
        ({"AWS_ACCESS_KEY_ID": "k"}, True),
        ({"AWS_SECRET_ACCESS_KEY": "s"}, True),
        ({"AWS_REGION": "eu-west-1"}, False),
        ({"AWS_ENDPOINT_URL_S3": ""}, False),
    ],
    ids=["empty", "s3-endpoint", "endpoint", "access-key", "secret", "region-only", "blank"],
)
def test_configured(env: dict[str, str], configured: bool) -> None:
    assert ObjectStore.configured(env) is configured


def test_from_env_uses_the_endpoint_path_style_and_region() -> None:
    store = ObjectStore.from_env(
        {**ENV, "AWS_ENDPOINT_URL_S3": "http://s3.local:8333", "AWS_ENDPOINT_URL": "http://x"}
    )
    assert store.endpoint == "http://s3.local:8333"
    assert store.client.meta.endpoint_url == "http://s3.local:8333"
    assert store.client.meta.region_name == "us-east-1"
    assert store.client.meta.config.s3["addressing_style"] == "path"
    assert ObjectStore.from_env({**ENV, "AWS_REGION": ""}).client.meta.region_name == "us-east-1"


@pytest.fixture
def stubbed() -> Iterator[tuple[ObjectStore, Stubber]]:
    store = ObjectStore.from_env(ENV)
    with Stubber(store.client) as stubber:
        yield store, stubber
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "error", "message"),
    [
        ("NoSuchKey", 404, ObjectNotFound, r"s3://b/k: no such object \(NoSuchKey\)"),
        ("NoSuchBucket", 404, ObjectNotFound, r"s3://b/k: no such bucket"),
        ("InvalidAccessKeyId", 403, ObjectStoreUnavailable, "refused access to s3://b/k"),
        ("SignatureDoesNotMatch", 403, ObjectStoreUnavailable, "AWS_SECRET_ACCESS_KEY"),
        ("AccessDenied", 403, ObjectStoreUnavailable, "maestro-objectstore"),
        ("InternalError", 500, ObjectStoreUnavailable, "failed on s3://b/k: InternalError"),
    ],
    ids=["no-key", "no-bucket", "bad-key", "bad-secret", "denied", "server-error"],
)
def test_get_errors_name_the_uri(
    stubbed: tuple[ObjectStore, Stubber],
    code: str,
    status: int,
    error: type[Exception],
    message: str,
) -> None:
    store, stubber = stubbed
    stubber.add_client_error("get_object", code, "msg", status)
    with pytest.raises(error, match=message):
        store.get_bytes("s3://b/k")


def test_exists_is_false_on_404_only(stubbed: tuple[ObjectStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("head_object", "404", "", 404)
    stubber.add_response("head_object", {"ContentLength": 1}, {"Bucket": "b", "Key": "k"})
    stubber.add_client_error("head_object", "403", "", 403)
    assert store.exists("s3://b/k") is False
    assert store.exists("s3://b/k") is True
    with pytest.raises(ObjectStoreUnavailable):
        store.exists("s3://b/k")


def test_list_pages_through_everything_under_the_prefix(
    stubbed: tuple[ObjectStore, Stubber],
) -> None:
    store, stubber = stubbed
    when = datetime(2026, 1, 2, tzinfo=UTC)
    stubber.add_response(
        "list_objects_v2",
        {
            "Contents": [{"Key": "p/a", "Size": 1, "LastModified": when, "ETag": '"e1"'}],
            "IsTruncated": True,
            "NextContinuationToken": "t",
        },
        {"Bucket": "b", "Prefix": "p/"},
    )
    stubber.add_response(
        "list_objects_v2",
        {
            "Contents": [{"Key": "p/sub/b", "Size": 2, "LastModified": when, "ETag": '"e2"'}],
            "IsTruncated": False,
        },
        {"Bucket": "b", "Prefix": "p/", "ContinuationToken": "t"},
    )
    assert store.list("s3://b/p/") == [
        ObjectInfo("s3://b/p/a", 1, when, "e1"),
        ObjectInfo("s3://b/p/sub/b", 2, when, "e2"),
    ]


@pytest.mark.parametrize(
    "uri", ["s3://b", "s3://b/", "s3://b/dir/"], ids=["bucket", "slash", "dir"]
)
def test_object_operations_need_a_key(uri: str) -> None:
    store = ObjectStore.from_env(ENV)
    with pytest.raises(ValueError, match="names no object"):
        store.get_bytes(uri)


def test_an_unreachable_endpoint_says_what_to_check() -> None:
    # Port 1 on loopback: refused at once (standard retries: three quick attempts).
    store = ObjectStore.from_env(ENV)
    with pytest.raises(ObjectStoreUnavailable, match=r"unreachable .*AWS_ENDPOINT_URL_S3"):
        store.get_bytes("s3://b/k")
