"""Secret files (`maestro serve --secret-file ENV=PATH`): the specs, the load before the models
with an error that names the file and never the value, and the refresh that follows rotation."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from maestro.monitoring import metric_names
from maestro.serving import contract
from maestro.serving.metrics import ServingMetrics
from maestro.serving.secret_files import (
    SecretFileError,
    SecretFiles,
    load_secret_files,
    parse_spec,
    parse_specs,
)
from maestro.serving.settings import ServeSettings

pytestmark = pytest.mark.unit

VALUE = "s3cr3t-v1-do-not-log"
ROTATED = "s3cr3t-v2-do-not-log"


def secret(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


# --- specs ------------------------------------------------------------------------------------


def test_a_spec_is_a_variable_and_an_absolute_path() -> None:
    assert parse_spec("FEATURE_STORE_TOKEN=/vault/secrets/FEATURE_STORE_TOKEN") == (
        "FEATURE_STORE_TOKEN",
        Path("/vault/secrets/FEATURE_STORE_TOKEN"),
    )
    assert parse_spec("_a1=/x=y") == ("_a1", Path("/x=y"))  # the first '=' splits
    assert parse_specs(["A=/a", "B=/b"]) == {"A": Path("/a"), "B": Path("/b")}


@pytest.mark.parametrize(
    ("specs", "reason"),
    [
        (["TOKEN"], "expected ENV=PATH"),
        (["=/vault/secrets/x"], "expected ENV=PATH"),
        (["TOKEN="], "expected ENV=PATH"),
        (["1TOKEN=/x"], "not an environment variable name"),
        (["FEATURE-TOKEN=/x"], "not an environment variable name"),
        (["TOKEN=vault/secrets/TOKEN"], "not absolute"),
        (["TOKEN=/a", "TOKEN=/b"], "given twice"),
    ],
    ids=["no-equals", "no-name", "no-path", "leading-digit", "dash", "relative", "twice"],
)
def test_bad_specs_name_the_flag_and_the_spec(specs: list[str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as raised:
        parse_specs(specs)
    assert "--secret-file" in str(raised.value) and specs[-1] in str(raised.value)


def test_the_setting_takes_flags_or_json_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(contract.MODEL_URI, "models:/a/1")
    flags = ServeSettings(secret_files=["A=/vault/secrets/A"])  # type: ignore[arg-type]
    assert flags.secret_files == {"A": Path("/vault/secrets/A")}
    assert flags.secret_refresh_seconds == 2.0
    monkeypatch.setenv(contract.SECRET_FILES, '{"B": "/vault/secrets/B"}')
    monkeypatch.setenv("MAESTRO_SERVE_SECRET_REFRESH_SECONDS", "0.5")
    from_env = ServeSettings()
    assert from_env.secret_files == {"B": Path("/vault/secrets/B")}
    assert from_env.secret_refresh_seconds == 0.5
    monkeypatch.setenv("MAESTRO_SECRET_FILES", '["C=/vault/secrets/C"]')
    assert ServeSettings().secret_files == {"B": Path("/vault/secrets/B")}  # SERVE_ first
    monkeypatch.delenv(contract.SECRET_FILES)
    assert ServeSettings().secret_files == {"C": Path("/vault/secrets/C")}
    monkeypatch.delenv("MAESTRO_SECRET_FILES")
    monkeypatch.setenv(contract.SECRET_FILES, '{"B": "relative"}')
    with pytest.raises(ValidationError, match="secret_files"):
        ServeSettings()
    monkeypatch.delenv(contract.SECRET_FILES)
    monkeypatch.setenv("MAESTRO_SERVE_SECRET_REFRESH_SECONDS", "0")
    with pytest.raises(ValidationError, match="secret_refresh_seconds"):
        ServeSettings()


# --- load -------------------------------------------------------------------------------------


def test_load_puts_each_value_in_the_environment_without_its_newline(tmp_path: Path) -> None:
    environ: dict[str, str] = {"OTHER": "kept"}
    files = {
        "A": secret(tmp_path, "A", VALUE + "\n"),
        "B": secret(tmp_path, "B", "with spaces inside \r\n"),
        "C": secret(tmp_path, "C", "no-newline"),
    }
    secrets = load_secret_files(files, environ)
    assert environ == {"OTHER": "kept", "A": VALUE, "B": "with spaces inside ", "C": "no-newline"}
    assert secrets.versions == {"A": 1, "B": 1, "C": 1}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "is missing: was the Vault Agent injected?"),
        ("\n", "is empty"),
        (b"\xff", "is unreadable: not UTF-8"),
    ],
    ids=["missing", "empty", "not-text"],
)
def test_a_file_that_cannot_give_a_value_stops_the_load(
    tmp_path: Path, content: str | bytes | None, reason: str
) -> None:
    good = secret(tmp_path, "GOOD", VALUE)
    bad = tmp_path / "FEATURE_STORE_TOKEN"
    if content is not None:
        secret(tmp_path, bad.name, content)
    environ: dict[str, str] = {}
    with pytest.raises(SecretFileError) as raised:
        load_secret_files({"GOOD": good, "FEATURE_STORE_TOKEN": bad}, environ)
    message = str(raised.value)
    assert message.startswith(f"secret file {bad} for FEATURE_STORE_TOKEN {reason}")
    assert VALUE not in message and "GOOD" not in message
    assert environ == {}  # all or nothing


def test_every_failing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError) as raised:
        load_secret_files({"A": tmp_path / "A", "B": tmp_path / "B"}, {})
    assert f"{tmp_path / 'A'} for A is missing" in str(raised.value)
    assert f"{tmp_path / 'B'} for B is missing" in str(raised.value)


def test_an_unreadable_file_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()  # a directory: read_bytes fails with IsADirectoryError
    with pytest.raises(SecretFileError, match=f"secret file {folder} for A is unreadable"):
        load_secret_files({"A": folder}, {})


# --- refresh ----------------------------------------------------------------------------------


@pytest.fixture
def loaded(tmp_path: Path) -> tuple[SecretFiles, dict[str, str], list[str], Path]:
    environ: dict[str, str] = {}
    told: list[str] = []
    path = secret(tmp_path, "TOKEN", VALUE + "\n")
    secrets = load_secret_files({"TOKEN": path}, environ, told.append)
    return secrets, environ, told, path


def test_refresh_sees_nothing_when_nothing_changed(
    loaded: tuple[SecretFiles, dict[str, str], list[str], Path],
) -> None:
    secrets, environ, told, path = loaded
    assert secrets.refresh() == []
    path.write_text(VALUE)  # only the trailing newline went: the same value
    assert secrets.refresh() == []
    assert environ == {"TOKEN": VALUE} and told == [] and secrets.versions == {"TOKEN": 1}


def test_refresh_follows_a_rotation_and_never_logs_the_value(
    loaded: tuple[SecretFiles, dict[str, str], list[str], Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets, environ, told, path = loaded
    caplog.set_level(logging.INFO, logger="maestro.serving.secret_files")
    path.write_text(ROTATED + "\n")
    assert secrets.refresh() == ["TOKEN"]
    assert environ == {"TOKEN": ROTATED} and told == ["TOKEN"]
    assert secrets.refresh() == []
    path.write_text(VALUE)  # same size as before, any mtime: the hash tells
    assert secrets.refresh() == ["TOKEN"]
    assert environ == {"TOKEN": VALUE} and told == ["TOKEN", "TOKEN"]
    messages = [r.getMessage() for r in caplog.records]
    assert "secret TOKEN changed (version 2)" in messages
    assert "secret TOKEN changed (version 3)" in messages
    assert not [m for m in caplog.text.splitlines() if VALUE in m or ROTATED in m]


def test_a_file_gone_while_serving_keeps_the_value_and_warns_once(
    loaded: tuple[SecretFiles, dict[str, str], list[str], Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets, environ, told, path = loaded
    caplog.set_level(logging.INFO, logger="maestro.serving.secret_files")
    path.unlink()
    assert secrets.refresh() == [] and secrets.refresh() == []
    path.write_text("")
    assert secrets.refresh() == []
    assert environ == {"TOKEN": VALUE} and told == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "is missing" in warnings[0], warnings
    assert "TOKEN keeps its last value" in warnings[0]
    path.write_text(ROTATED)  # back, with a new value
    assert secrets.refresh() == ["TOKEN"] and environ == {"TOKEN": ROTATED}
    path.unlink()
    secrets.refresh()  # gone again: a new warning
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert VALUE not in caplog.text and ROTATED not in caplog.text


def test_the_watch_thread_refreshes_until_stopped(
    loaded: tuple[SecretFiles, dict[str, str], list[str], Path],
) -> None:
    secrets, environ, _, path = loaded
    changed = threading.Event()
    secrets.on_change = lambda env: changed.set()
    stop = secrets.watch(0.01)
    try:
        path.write_text(ROTATED)
        assert changed.wait(5)
        assert environ == {"TOKEN": ROTATED}
    finally:
        stop()
    path.write_text("third")
    assert secrets.refresh() == ["TOKEN"]  # the thread is gone: nothing refreshed meanwhile


def test_reloads_are_counted_per_variable() -> None:
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry, deployment="iris", revision="v4")
    metrics.secret_reloads_of("A")
    metrics.secret_reloads_of("B").inc()
    labels = {"deployment": "iris", "revision": "v4"}
    name = metric_names.counter(metric_names.SECRET_RELOADS)
    assert registry.get_sample_value(name, {**labels, "env": "A"}) == 0
    assert registry.get_sample_value(name, {**labels, "env": "B"}) == 1
