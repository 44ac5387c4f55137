"""What a server does before it stops (``sidra serve`` on SIGINT or SIGTERM).

Stopping the gRPC server ends its calls; work that runs inside it on its own threads
has more to lose. :class:`ServerStop` gathers the steps that end such work well, in
the order they were added, within one wait: the jobs' manager adds one that stops every
running training job at its next step or epoch boundary, so that the job keeps its
record and checkpoint (jobs.proto, "Going on from a checkpoint") instead of being found
interrupted with nothing at the next start.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["JOB_STOP_WAIT_S", "ServerStop"]

JOB_STOP_WAIT_S = 30.0
"""How long ``sidra serve`` waits, when told to stop, for its running jobs to reach a
boundary, s (a service manager's stop timeout is commonly 90 s)."""


class ServerStop:
    """Steps to take before the server stops, each given what is left of one wait."""

    def __init__(self) -> None:
        self._steps: list[Callable[[float], object]] = []

    def add(self, step: Callable[[float], object]) -> None:
        """``step(wait_s)`` is taken at the stop, with the seconds it may use."""
        self._steps.append(step)

    def run(self, wait_s: float) -> None:
        """Takes every step in turn, all of them within ``wait_s`` seconds."""
        deadline = time.monotonic() + wait_s
        for step in self._steps:
            step(max(0.0, deadline - time.monotonic()))
