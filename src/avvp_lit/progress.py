"""A rich progress bar for long loops (packing, generating, reading stores)."""

from __future__ import annotations

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


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress, self._task = progress, task

    def advance(self, steps: int = 1) -> None:
        if self._progress is not None and steps:
            self._progress.advance(self._task, steps)


@contextmanager
def progress_bar(description: str, *, total: int, enabled: bool = True) -> Iterator[_Bar]:
    """A transient-free progress bar; ``enabled=False`` gives a silent stand-in."""
    if not enabled:
        yield _Bar(None, None)
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
