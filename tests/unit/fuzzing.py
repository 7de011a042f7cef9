"""How hard the fuzz tests try. In `make test` a fixed set of examples (derandomized: the same
draw every run, so CI never fails on a draw nobody can reproduce); `make fuzz` sets
MAESTRO_FUZZ_EXAMPLES for many more, drawn afresh each run (hypothesis prints any failing
example, and keeps it in .hypothesis/ to replay)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_EXAMPLES = os.environ.get("MAESTRO_FUZZ_EXAMPLES")


def fuzz(examples: int) -> settings:
    """`examples` in `make test`; MAESTRO_FUZZ_EXAMPLES, at random, under `make fuzz`."""
    return settings(
        max_examples=int(_EXAMPLES) if _EXAMPLES else examples,
        derandomize=not _EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
