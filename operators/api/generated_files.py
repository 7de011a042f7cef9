"""Folders of generated files committed beside the code that makes them (the CRDs, the
Prometheus rule files, the dashboards): written only where they changed, files the generator
no longer makes removed, and a unified diff for the tests that fail when a commit forgot to
regenerate."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
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


def run(
    argv: Sequence[str] | None,
    *,
    description: str,
    default_out: Path,
    write: Callable[[Path], list[Path]],
    diff: Callable[[Path], str],
) -> int:
    """A generator's command line: write the folder (printing each file), or with --check
    print the diff and exit 1 when the committed files are out of date."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("out", nargs="?", type=Path, default=default_out)
    parser.add_argument(
        "--check", action="store_true", help="only compare; exit 1 when out of date"
    )
    args = parser.parse_args(argv)
    if args.check:
        changes = diff(args.out)
        sys.stdout.write(changes)
        return 1 if changes else 0
    for path in write(args.out):
        print(path)
    return 0
