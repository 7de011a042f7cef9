"""Folders of generated files committed beside the code that makes them (the CRDs, the
Prometheus rule files, the dashboards): written only where they changed, files the generator
no longer makes removed, and a unified diff for the tests that fail when a commit forgot to
regenerate."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path


def write_files(out: Path, files: Mapping[str, str], generated: Iterable[str]) -> list[Path]:
    """Write `files` (names relative to `out`) and remove the names of `generated` (the
    generator's own files now under `out`) that it no longer makes."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in sorted(set(generated) - files.keys()):
        (out / stale).unlink()
    written = []
    for name, text in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def diff_files(out: Path, files: Mapping[str, str], generated: Iterable[str]) -> str:
    """Unified diff between what is under `out` and `files`; empty when up to date."""
    chunks: list[str] = []
    for name in sorted(set(generated) | files.keys()):
        path = out / name
        old = path.read_text() if path.is_file() else ""
        new = files.get(name, "")
        if old != new:
            chunks.extend(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    fromfile=f"{path} (committed)",
                    tofile=f"{path} (generated)",
                )
            )
    return "".join(chunks)
