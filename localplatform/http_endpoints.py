"""What the local platform's HTTP services share: a readiness probe, a POSTed reload, and
config files rewritten only when their content changes (so an unchanged config needs no
reload)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path


def answers_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether `url` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def post(url: str, timeout: float = 10.0) -> str | None:
    """POST to `url` (a /-/reload, say); None when it answers 200, else why not (the
    server's own message when it gives one)."""
    request = urllib.request.Request(url, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return None if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as err:
        return err.read().decode(errors="replace").strip() or str(err)
    except (urllib.error.URLError, OSError) as err:
        return str(err)


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` to `path` (and its folder); return whether the content changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True
