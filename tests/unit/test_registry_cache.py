"""core.registry_cache: one registry request per reference per interval, whatever the number
of callers; back-off for references the registry does not have; failures not cached."""

from __future__ import annotations

import threading
import time

import pytest

from maestro.operators.core.registry_cache import RegistryCache, reference

pytestmark = pytest.mark.unit


class Missing(Exception):
    pass


class Unreachable(Exception):
    pass


class Registry:
    """What the MLflow registry would answer, counting the requests it gets."""

    def __init__(self, versions: dict[str, str]) -> None:
        self.versions = versions
        self.calls: list[str] = []
        self.down = False
        self.delay = 0.0

    def resolve(self, uri: str) -> str | None:
        self.calls.append(uri)
        time.sleep(self.delay)
        if self.down:
            raise Unreachable("connection refused")
        if uri not in self.versions:
            raise Missing(f"no {uri}")
        return self.versions[uri]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(registry: Registry, clock: Clock) -> RegistryCache:
    return RegistryCache(
        resolve=registry.resolve,
        is_missing=lambda err: isinstance(err, Missing),
        interval=30.0,
        max_backoff=300.0,
        clock=clock,
    )


@pytest.mark.parametrize(
    ("uri", "key"),
    [
        pytest.param("models:/iris@champion", ("iris", "@champion"), id="alias"),
        pytest.param("models:/iris/3", ("iris", "3"), id="version"),
        pytest.param("models:/iris/latest", ("iris", "latest"), id="latest"),
        pytest.param("models:/iris/Production", ("iris", "Production"), id="stage"),
        pytest.param("runs:/abc/model", None, id="run"),
        pytest.param("s3://bucket/model", None, id="s3"),
        pytest.param("models:/", None, id="malformed"),
    ],
)
def test_reference(uri: str, key: tuple[str, str] | None) -> None:
    assert reference(uri) == key


def test_one_request_per_reference_per_interval_for_every_caller() -> None:
    registry, clock = Registry({"models:/iris@champion": "3"}), Clock()
    shared = cache(registry, clock)
    answers = {shared.lookup("models:/iris@champion").version for _ in range(100)}
    assert answers == {"3"} and len(registry.calls) == 1
    clock.now += 29
    shared.lookup("models:/iris@champion")
    assert len(registry.calls) == 1
    registry.versions["models:/iris@champion"] = "4"  # the alias moved
    clock.now += 2
    assert shared.lookup("models:/iris@champion").version == "4"
    assert len(registry.calls) == 2 == shared.requests


def test_concurrent_callers_wait_for_one_request() -> None:
    registry = Registry({"models:/iris@champion": "3"})
    registry.delay = 0.2
    shared = RegistryCache(registry.resolve, lambda err: False, interval=30.0)
    results: list[str | None] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(shared.lookup("models:/iris@champion").version)
        )
        for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["3"] * 20
    assert len(registry.calls) == 1


def test_a_missing_reference_is_asked_again_with_back_off_and_found_once_registered() -> None:
    registry, clock = Registry({}), Clock()
    shared = cache(registry, clock)
    waits = []
    for _ in range(6):
        found = shared.lookup("models:/nosuch/1")
        assert found.version is None and "nosuch" in found.missing
        due = shared.next_check("models:/nosuch/1")
        assert due is not None
        waits.append(due)
        clock.now += due
    assert waits == [30.0, 60.0, 120.0, 240.0, 300.0, 300.0]
    registry.versions["models:/nosuch/1"] = "1"
    clock.now += 300
    assert shared.lookup("models:/nosuch/1").version == "1"
    assert shared.next_check("models:/nosuch/1") == 30.0


def test_an_unreachable_registry_is_not_cached() -> None:
    registry, clock = Registry({"models:/iris@champion": "3"}), Clock()
    shared = cache(registry, clock)
    registry.down = True
    with pytest.raises(Unreachable):
        shared.lookup("models:/iris@champion")
    registry.down = False
    assert shared.lookup("models:/iris@champion").version == "3"
    assert len(registry.calls) == 2


def test_uris_outside_the_registry_cost_nothing() -> None:
    registry, clock = Registry({}), Clock()
    shared = cache(registry, clock)
    assert shared.lookup("runs:/abc/model").version is None
    assert shared.lookup("runs:/abc/model").missing == ""
    assert shared.next_check("runs:/abc/model") is None
    assert registry.calls == []


def test_invalidate_forgets_every_answer_about_one_model() -> None:
    registry, clock = (
        Registry({"models:/iris@champion": "3", "models:/wine@champion": "1"}),
        Clock(),
    )
    shared = cache(registry, clock)
    shared.lookup("models:/iris@champion")
    shared.lookup("models:/wine@champion")
    registry.versions["models:/iris@champion"] = "4"  # the webhook says iris changed
    shared.invalidate("iris")
    assert shared.lookup("models:/iris@champion").version == "4"
    shared.lookup("models:/wine@champion")
    assert registry.calls.count("models:/wine@champion") == 1
