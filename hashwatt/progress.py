"""Progress of long work: a rich progress bar on a terminal, a log line every so often
otherwise (a service's journal or a redirected file wants lines, not a bar)."""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any, Self

log = logging.getLogger("hashwatt")


class Progress:
    """Counts done items out of total; `note` is shown beside the count."""

    def __init__(self, label: str, total: int, unit: str = "items", every_s: float = 10.0,
                 terminal: bool | None = None) -> None:
        self.label, self.total, self.unit, self.every_s = label, total, unit, every_s
        self.done, self.note = 0, ""
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self._bar: Any = None
        self._task: Any = None
        self._started = self._last = time.monotonic()

    def __enter__(self) -> Self:
        if self.terminal:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                            TimeElapsedColumn(), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, note="")
        return self

    def advance(self, count: int = 1, note: str | None = None) -> None:
        """Count done items; log a line when the interval has passed (no terminal)."""
        self.done += count
        if note is not None:
            self.note = note
        if self._bar is not None:
            self._bar.update(self._task, advance=count, note=self.note)
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._line()

    def _line(self) -> None:
        share = 100 * self.done / self.total if self.total else 100.0
        note = f", {self.note}" if self.note else ""
        log.info("%s: %d/%d %s (%.0f %%) after %.0f s%s", self.label, self.done, self.total,
                 self.unit, share, time.monotonic() - self._started, note)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif kind is None and time.monotonic() - self._started >= self.every_s:
            self._line()  # a long run ends with its final count
