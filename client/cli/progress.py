"""The progress bar of a run, and of a job followed from here (``--remote-job``): Rich's
bar on a terminal, a line every :data:`LOG_EVERY_S` elsewhere."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

__all__ = ["LOG_EVERY_S", "LoggedProgress", "progress_bar"]

LOG_EVERY_S = 10.0
"""How often a run's progress is written as a line where no bar is drawn, s."""


class LoggedProgress(Progress):
    """Rich's bar on a terminal. Elsewhere (a log file under nohup or a batch system)
    Rich draws only the last bar, at the end: there a line with the same figures is
    written every :data:`LOG_EVERY_S`, so a log says how far a run is while it runs.

    A run that fails before its first step (a checkpoint of other options to go on
    from, a layer no tile holds) takes its empty bar away with it: the error is then
    what the command printed, not a ``0/3000`` above it."""

    _logged_s = 0.0

    def __exit__(self, *failed: Any) -> None:
        if failed[0] is not None and all(task.completed == 0 for task in self.tasks):
            self.live.transient = True  # erased as the display stops (a log: never drawn)
        super().__exit__(*failed)

    def update(self, task_id: TaskID, **fields: Any) -> None:
        super().update(task_id, **fields)
        if self.console.is_terminal or self.console.quiet:
            return
        now = time.monotonic()
        if now - self._logged_s < LOG_EVERY_S:
            return
        self._logged_s = now
        task = self._tasks[task_id]
        total = "" if task.total is None else f"/{task.total:g}"
        status = str(task.fields.get("status", ""))
        self.console.print(f"{task.description} {task.completed:g}{total} {status}".rstrip())


def progress_bar(console: Console) -> Progress:
    """A run's bar: its description, the bar, steps done of all, its ``status`` field and
    the time left; a line every :data:`LOG_EVERY_S` off a terminal."""
    return LoggedProgress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        console=console,
    )
