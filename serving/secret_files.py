"""Secrets delivered as files (the Vault Agent writes /vault/secrets/<ENV>, the raw value and
nothing else) put into the server's environment: read once before the models load, then
re-read every few seconds so a rotated value reaches the running process.

`maestro serve --secret-file ENV=PATH` (or MAESTRO_SERVE_SECRET_FILES) names them. A file
that is missing, unreadable or empty at start stops the server before it serves; one that
goes away later keeps the last value. Values are never logged, nor any part of their hash.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FLAG = "--secret-file"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_REFRESH_SECONDS = 2.0
_USAGE = "expected ENV=PATH, ENV a variable name ([A-Za-z_][A-Za-z0-9_]*) and PATH absolute"


class SecretFileError(Exception):
    """A secret file cannot give its value; the message names the file and variable only."""


def check_spec(env: str, path: str | Path) -> tuple[str, Path]:
    """`env` and `path` as given to the server, or ValueError naming them."""
    spec = f"{env}={path}"
    if not ENV_NAME.fullmatch(env):
        raise ValueError(f"{FLAG} {spec!r}: {env!r} is not an environment variable name")
    if not Path(path).is_absolute():
        raise ValueError(f"{FLAG} {spec!r}: the path {str(path)!r} is not absolute")
    return env, Path(path)


def parse_spec(spec: str) -> tuple[str, Path]:
    """`ENV=PATH` as (ENV, PATH), or ValueError naming the flag and the spec."""
    env, sep, path = spec.partition("=")
    if not sep or not env or not path:
        raise ValueError(f"{FLAG} {spec!r}: {_USAGE}")
    return check_spec(env, path)


def parse_specs(specs: Iterable[str]) -> dict[str, Path]:
    """Every `ENV=PATH`, each variable at most once."""
    found: dict[str, Path] = {}
    for spec in specs:
        env, path = parse_spec(spec)
        if env in found:
            raise ValueError(f"{FLAG} {spec!r}: {env} is given twice")
        found[env] = path
    return found


def read_secret(env: str, path: Path) -> str:
    """The value in `path` without its trailing newline, or SecretFileError saying why not."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SecretFileError(
            f"secret file {path} for {env} is missing: was the Vault Agent injected?"
            " (check the pod's vault.hashicorp.com annotations and the vault-agent-init logs)"
        ) from None
    except OSError as err:
        raise SecretFileError(
            f"secret file {path} for {env} is unreadable: {err.strerror or type(err).__name__}"
        ) from None
    try:
        value = raw.decode().rstrip("\r\n")
    except UnicodeDecodeError:
        raise SecretFileError(f"secret file {path} for {env} is unreadable: not UTF-8") from None
    if not value:
        raise SecretFileError(
            f"secret file {path} for {env} is empty: does the Vault secret have the key?"
        )
    if "\0" in value:
        raise SecretFileError(f"secret file {path} for {env} is unreadable: holds a NUL byte")
    return value


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


@dataclass
class SecretFiles:
    """The secret files and the environment they feed. `load()` reads all of them (raising
    one SecretFileError naming every file that failed); `refresh()` re-reads them and
    returns the variables whose value changed. `on_change(env)` is called for each."""

    files: Mapping[str, Path]
    environ: MutableMapping[str, str]
    on_change: Callable[[str], None] | None = None
    versions: dict[str, int] = field(default_factory=dict)
    _digests: dict[str, bytes] = field(default_factory=dict, repr=False)
    _warned: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def load(self) -> None:
        problems: list[str] = []
        values: dict[str, str] = {}
        for env, path in self.files.items():
            try:
                values[env] = read_secret(env, path)
            except SecretFileError as err:
                problems.append(str(err))
        if problems:
            raise SecretFileError("; ".join(problems))
        with self._lock:
            for env, value in values.items():
                self.environ[env] = value
                self._digests[env] = _digest(value)
                self.versions[env] = 1
        if values:
            log.info("secrets loaded: %s", ", ".join(values), extra={"secrets": list(values)})

    def refresh(self) -> list[str]:
        changed: list[str] = []
        with self._lock:
            for env, path in self.files.items():
                try:
                    value = read_secret(env, path)
                except SecretFileError as err:
                    if env not in self._warned:
                        self._warned.add(env)
                        log.warning("%s; %s keeps its last value", err, env)
                    continue
                self._warned.discard(env)
                digest = _digest(value)
                if digest == self._digests.get(env):
                    continue
                self.environ[env] = value
                self._digests[env] = digest
                self.versions[env] = self.versions.get(env, 0) + 1
                changed.append(env)
                log.info(
                    "secret %s changed (version %d)",
                    env,
                    self.versions[env],
                    extra={"secret": env, "version": self.versions[env]},
                )
        for env in changed:
            if self.on_change is not None:
                self.on_change(env)
        return changed

    def watch(self, interval: float) -> Callable[[], None]:
        """Refresh every `interval` seconds in a daemon thread; returns what stops it."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    self.refresh()
                except Exception:  # a bug here must not end the refreshes for good
                    log.exception("cannot refresh the secret files")

        thread = threading.Thread(target=loop, name="secret-files", daemon=True)
        thread.start()

        def stopper() -> None:
            stop.set()
            thread.join(timeout=interval + 1)

        return stopper


def load_secret_files(
    files: Mapping[str, Path],
    environ: MutableMapping[str, str],
    on_change: Callable[[str], None] | None = None,
) -> SecretFiles:
    """The secret files, read into `environ` (SecretFileError when one cannot be read)."""
    secrets = SecretFiles(files, environ, on_change)
    secrets.load()
    return secrets
