"""Redis from Debian's packages (Feast's online store), started by `make services`."""

from __future__ import annotations

import uuid

import pytest
import redis

pytestmark = pytest.mark.services


def test_redis_answers_on_loopback() -> None:
    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as err:
        pytest.fail(
            f"Redis is not running on 127.0.0.1:6379 ({err}); start it with `make services`",
            pytrace=False,
        )
    key = f"maestro-test-{uuid.uuid4().hex}"
    client.set(key, "v", ex=30)
    assert client.get(key) == b"v"
    client.delete(key)
