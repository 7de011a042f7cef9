"""Errors a trainer reports to the person who wrote the TrainingRun."""

from __future__ import annotations


class TrainingError(Exception):
    """Bad input (dataset, params, search space): fixing the spec fixes it, retrying does not.

    `maestro train` prints the message alone on stderr and exits 2, so the pod's termination
    message names the problem instead of ending in a traceback.
    """
