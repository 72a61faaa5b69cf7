"""Progress of long loops (parsing, packing, generating, reading stores).

On a terminal it is a live rich bar. Without one (``> log``, SLURM, nohup), where a live
bar shows only its last frame, it is plain lines at a steady pace (every ``every_s``
seconds and at the end): ``parsing 640/1200 (53%), 85.3/s, 0:07 elapsed, 0:07 left``. The lines go
to the ``avvp_lit.utils.progress`` logger when logging is configured to show them (a
Hydra app: the console and the run's ``<task>.log``), else to stderr.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger("avvp_lit.utils.progress")
EVERY_S = 30.0


def clock(seconds: float) -> str:
    """Elapsed or remaining time in whole seconds: ``0:07``, ``12:30``, ``1:02:03``."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def report_line(message: str) -> None:
    """One progress line: to the logger when logging is set up, else to stderr."""
    if logging.getLogger().handlers and log.isEnabledFor(logging.INFO):
        log.info(message)
    else:
        print(message, file=sys.stderr, flush=True)


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress, self._task = progress, task

    def advance(self, steps: int = 1) -> None:
        if self._progress is not None and steps:
            self._progress.advance(self._task, steps)


class _LineBar:
    """Plain progress lines at a steady pace, for output without a terminal."""

    def __init__(self, description: str, total: int, every_s: float) -> None:
        self.description, self.total, self.every_s = description, total, every_s
        self.done = 0
        self.start = self.last = time.perf_counter()

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        if time.perf_counter() - self.last >= self.every_s:
            self.line()

    def line(self) -> None:
        now = time.perf_counter()
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        report_line(
            f"{self.description} {self.done}/{self.total}{share}, {rate:.1f}/s, "
            f"{clock(elapsed)} elapsed, {clock(left)} left"
        )


@contextmanager
def progress_bar(
    description: str, *, total: int, enabled: bool = True, every_s: float = EVERY_S
) -> Iterator[_Bar | _LineBar]:
    """A progress bar on a terminal, steady plain lines without one (``every_s`` apart,
    and a last one at the end); ``enabled=False`` gives a silent stand-in."""
    if not enabled:
        yield _Bar(None, None)
        return
    if not sys.stdout.isatty():
        bar = _LineBar(description, total, every_s)
        yield bar
        bar.line()
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))
