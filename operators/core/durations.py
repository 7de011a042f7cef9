"""Spec durations (api.common.Duration: whole units such as 30s, 5m, 1h30m, 7d). Pure."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"([0-9]+[smhd])+")
_DURATION_PART = re.compile(r"([0-9]+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """A spec duration as a timedelta."""
    if not _DURATION.fullmatch(text):
        raise ValueError(f"invalid duration {text!r}: use whole units such as 30s, 5m, 1h30m, 7d")
    return timedelta(
        seconds=sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    )
