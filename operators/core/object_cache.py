"""Watch-fed copies of the objects a controller owns (what client-go calls an informer):
one LIST, then a WATCH, per kind, so that a reconcile reads its children from memory.

Measured at scale (`make bench-operator`), a ModelDeployment reconcile that LISTed each
owned kind by label spent most of its time waiting on those LISTs, and they were most of
kube-apiserver's load. Here each kind costs one watch for the whole operator.

The store is the plain part (`Store`: events in, objects out, no I/O); `ObjectCache` runs
one reflector thread per kind that keeps it filled: list, watch from the list's
resourceVersion, list again when the API server says the version is gone (410) or the
watch fails. A relist replaces the kind's objects, so one deleted while the watch was
down does not linger. The controller writes through (`applied`, `deleted`): a reconcile
that follows its own write sees it even before the watch brings it back.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from maestro.operators.core.kube import Kube, Obj
from maestro.operators.core.objects import Kind

log = logging.getLogger(__name__)

# Seconds a watch request lasts before the reflector renews it (from where it was).
WATCH_SECONDS = 240
RETRY_MIN_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


# What the store keeps of an object: everything but managedFields (the largest part of
# most objects, and nothing a controller decides on).
def _trimmed(obj: Mapping[str, Any], kind: Kind) -> Obj:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta}


def _version(obj: Mapping[str, Any]) -> int | None:
    raw = (obj.get("metadata") or {}).get("resourceVersion")
    # Opaque to clients by contract; every API server backed by etcd gives its revision.
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def _newer(incoming: Mapping[str, Any], kept: Mapping[str, Any] | None) -> bool:
    if kept is None:
        return True
    new, old = _version(incoming), _version(kept)
    return new is None or old is None or new >= old


def serves(namespace: str, patterns: Sequence[str]) -> bool:
    """Whether the operator serves `namespace` (Kopf's globs; `!glob` excludes)."""
    excluded = [p[1:] for p in patterns if p.startswith("!")]
    included = [p for p in patterns if not p.startswith("!")]
    if any(fnmatch.fnmatchcase(namespace, p) for p in excluded):
        return False
    return not included or any(fnmatch.fnmatchcase(namespace, p) for p in included)


ObjKey = tuple[str, str]  # namespace, name


Group = tuple[str, str]  # namespace, label value


@dataclass
class _Objects:
    """One kind's objects, by key and by group (what a reconcile asks for)."""

    label: str | None
    by_key: dict[ObjKey, Obj] = field(default_factory=dict)
    by_group: dict[Group, dict[ObjKey, Obj]] = field(default_factory=dict)

    def group(self, obj: Mapping[str, Any]) -> Group:
        meta = obj.get("metadata") or {}
        if self.label is None:
            return str(meta.get("namespace") or ""), ""
        return str(meta.get("namespace") or ""), str((meta.get("labels") or {}).get(self.label))

    def set(self, key: ObjKey, obj: Obj) -> None:
        self.drop(key)
        self.by_key[key] = obj
        self.by_group.setdefault(self.group(obj), {})[key] = obj

    def drop(self, key: ObjKey) -> None:
        old = self.by_key.pop(key, None)
        if old is None:
            return
        group = self.group(old)
        members = self.by_group.get(group, {})
        members.pop(key, None)
        if not members:
            self.by_group.pop(group, None)


@dataclass
class Store:
    """The objects of each kind that carry `label` (all of them: None), indexed by
    namespace and label value. Thread-safe; every read returns copies of the lists (the
    objects are shared: callers must not change them)."""

    label: str | None
    _kinds: dict[Kind, _Objects] = field(default_factory=dict)
    _synced: set[Kind] = field(default_factory=set)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def synced(self, kind: Kind) -> bool:
        with self._guard:
            return kind in self._synced

    def _of(self, kind: Kind) -> _Objects:
        """Under the guard."""
        return self._kinds.setdefault(kind, _Objects(self.label))

    def owned(self, kind: Kind, namespace: str, value: str) -> list[Obj] | None:
        """The objects of `kind` in `namespace` whose label is `value`; None until the
        kind's first list is in (the caller asks the API server instead)."""
        with self._guard:
            if kind not in self._synced:
                return None
            return list(self._of(kind).by_group.get((namespace, value), {}).values())

    def replace(
        self, kind: Kind, items: Iterable[Mapping[str, Any]]
    ) -> tuple[list[Obj], list[Obj]]:
        """A fresh list of the kind becomes the store's. Returned: what changed and what
        is gone since the store last had the kind (while nobody watched); nothing for the
        kind's first list, which tells nothing new."""
        fresh = _Objects(self.label)
        for item in items:
            fresh.set(_key(item), _trimmed(item, kind))
        with self._guard:
            kept = self._of(kind).by_key
            first = kind not in self._synced
            self._kinds[kind] = fresh
            self._synced.add(kind)
        if first:
            return [], []
        changed = [
            obj
            for key, obj in fresh.by_key.items()
            if key not in kept or _version(kept[key]) != _version(obj)
        ]
        return changed, [obj for key, obj in kept.items() if key not in fresh.by_key]

    def put(self, kind: Kind, obj: Mapping[str, Any]) -> Obj | None:
        """An added or changed object (from a watch or a write's answer), as stored; None
        when the store already holds a newer version."""
        key = _key(obj)
        kept = _trimmed(obj, kind)
        with self._guard:
            objects = self._of(kind)
            if not _newer(obj, objects.by_key.get(key)):
                return None
            objects.set(key, kept)
            return kept

    def remove(self, kind: Kind, namespace: str, name: str) -> None:
        with self._guard:
            self._of(kind).drop((namespace, name))


def _key(obj: Mapping[str, Any]) -> ObjKey:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class WatchGone(Exception):
    """The API server no longer has the version the watch started from (410)."""


def watch_events(lines: Iterable[bytes]) -> Iterator[tuple[str, Obj]]:
    """The (type, object) events of a watch response's JSON lines; an ERROR event raises
    (WatchGone for 410: list again)."""
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        kind, obj = str(event.get("type")), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise WatchGone(obj.get("message", "gone"))
            raise RuntimeError(f"watch error: {obj.get('message', obj)}")
        yield kind, obj


def _lines(response: Any) -> Iterator[bytes]:
    """The lines of a streamed HTTP body (events are newline-delimited JSON)."""
    pending = b""
    for chunk in response.stream(65536, decode_content=True):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


# Told of each change: (event type, the object). ADDED, MODIFIED, DELETED.
OnChange = Callable[[str, Obj], None]


class ObjectCache:
    """A `Store` kept filled by one reflector thread per kind, cluster-wide (the objects of
    namespaces the operator does not serve are dropped)."""

    def __init__(
        self,
        kube: Kube,
        kinds: Sequence[Kind],
        label: str | None,
        *,
        namespaces: Sequence[str] = (),
        on_change: OnChange | None = None,
    ) -> None:
        self.kube = kube
        self.kinds = tuple(kinds)
        self.store = Store(label)
        self.namespaces = tuple(namespaces)
        self.on_change = on_change
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- reads and write-through (the controller's side) ---------------------------------

    def owned(self, kind: Kind, namespace: str, value: str = "") -> list[Obj]:
        """The store's objects when the kind is synced, else a LIST (at start-up). Without
        a label: every object of the kind in the namespace (value "")."""
        found = self.store.owned(kind, namespace, value)
        if found is not None:
            return found
        label = self.store.label
        selector = f"{label}={value}" if label is not None else None
        return [
            _trimmed(item, kind)
            for item in self.kube.list(kind.api_version, kind.plural, namespace, selector)
        ]

    def applied(self, obj: Mapping[str, Any]) -> None:
        """The API server's answer to an apply of a watched kind."""
        kind = self._kind_of(obj)
        if kind is not None:
            self.store.put(kind, obj)

    def deleted(self, api_version: str, kind_name: str, namespace: str, name: str) -> None:
        for kind in self.kinds:
            if kind.api_version == api_version and kind.kind == kind_name:
                self.store.remove(kind, namespace, name)

    def _kind_of(self, obj: Mapping[str, Any]) -> Kind | None:
        return next(
            (
                k
                for k in self.kinds
                if k.api_version == obj.get("apiVersion") and k.kind == obj.get("kind")
            ),
            None,
        )

    # --- reflectors ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the reflectors, in threads of their own: `on_change` is called there,
        outside any handler's context (see WorkQueue.wake)."""
        for kind in self.kinds:
            thread = threading.Thread(
                target=self._reflect, args=(kind,), name=f"watch-{kind.plural}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Reflectors end at their next event or watch renewal (daemon threads: an exit
        does not wait for them)."""
        self._stopped.set()

    def _reflect(self, kind: Kind) -> None:
        delay = RETRY_MIN_SECONDS
        warned = False
        while not self._stopped.is_set():
            try:
                version = self._relist(kind)
                delay = RETRY_MIN_SECONDS
                while not self._stopped.is_set():
                    version = self._watch(kind, version)
            except WatchGone:
                log.debug("watch of %s: version gone, listing again", kind.plural)
                continue
            except Exception as err:  # the API server away, RBAC, a missing CRD
                (log.debug if warned else log.warning)(
                    "watch of %s failed (retry in %.0fs): %s", kind.plural, delay, err
                )
                warned = True
                self._stopped.wait(delay)
                delay = min(RETRY_MAX_SECONDS, delay * 2)

    def _selector(self) -> list[tuple[str, str]]:
        label = self.store.label
        return [("labelSelector", label)] if label is not None else []

    def _path(self, kind: Kind) -> str:
        return self.kube.path(kind.api_version, kind.plural)

    def _relist(self, kind: Kind) -> str:
        found = self.kube.get_path(self._path(kind), self._selector())
        found = found or {}
        items = [i for i in found.get("items") or [] if self._served(i)]
        changed, gone = self.store.replace(kind, items)
        for obj in changed:
            self._tell("MODIFIED", obj)
        for obj in gone:
            self._tell("DELETED", obj)
        return str((found.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, kind: Kind, version: str) -> str:
        query = [
            ("watch", "true"),
            *self._selector(),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", version),
            ("timeoutSeconds", str(WATCH_SECONDS)),
        ]
        response = self.kube.stream(self._path(kind), query, WATCH_SECONDS + 30)
        try:
            for event, obj in watch_events(_lines(response)):
                if self._stopped.is_set():
                    break
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if event == "BOOKMARK" or not self._served(obj):
                    continue
                if event == "DELETED":
                    meta = obj["metadata"]
                    self.store.remove(kind, meta.get("namespace", ""), meta["name"])
                    self._tell(event, _trimmed(obj, kind))
                elif (kept := self.store.put(kind, obj)) is not None:
                    self._tell(event, kept)
        finally:
            response.release_conn()
        return version

    def _served(self, obj: Mapping[str, Any]) -> bool:
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        return serves(namespace, self.namespaces)

    def _tell(self, event: str, obj: Obj) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(event, obj)
        except Exception:
            log.exception("handling a %s of %s failed", event, obj.get("kind"))
