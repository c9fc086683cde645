"""A progress bar on stderr for long work (sweep chunks, SGD steps), or nothing when it is off."""
from __future__ import annotations


class ProgressBar:
    """A rich bar ``label [####....] done/total unit  time left`` on stderr when ``enabled``; otherwise every
    method does nothing. ``total`` may be given later, with the first :meth:`update`."""

    def __init__(self, enabled: bool, label: str, unit: str, total: int | None = None, done: int = 0):
        self.bar, self.task, self.label = None, None, label
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self.bar.start()
            if total is not None:
                self.task = self.bar.add_task(label, total=total, completed=done)

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            return
        if self.task is None:
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done, total=total)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
