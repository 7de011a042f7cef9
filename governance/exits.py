"""What the governance commands' exit codes mean, and the alias they move by default: kept
apart from `promotion` so the CLI's parser (built by every `maestro` command, the operator's
included) imports neither pandas nor the audit log's database driver."""

from __future__ import annotations

from enum import IntEnum

DEFAULT_ALIAS = "champion"


class Exit(IntEnum):
    """What the commands' exit codes mean."""

    DONE = 0
    REFUSED = 1  # a gate failed, or the approval rules refused it
    BAD_INPUT = 2
    UNAVAILABLE = 3  # registry, audit log or cluster unreachable: nothing changed
