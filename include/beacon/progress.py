"""Progress of long-running work (benchmarks, the pipeline) on a terminal.

Stage names and their durations go to stderr, and only when stderr is a terminal: stdout stays the
command's result (a table, or JSON a script parses), and logs or pipes get nothing. Callers that print
JSON pass `enabled=False` so a `--json` run stays quiet even on a terminal.
"""

from __future__ import annotations

import time
from typing import IO

from rich.console import Console


class Progress:
    """Announce stages as they start; each start (and `close`) reports how long the previous one took.

    On a terminal a spinner with the elapsed time shows while a stage runs, so a stage of several minutes
    (dbt on a million people) is visibly alive. Disabled, every method does nothing."""

    def __init__(self, enabled: bool | None = None, file: IO[str] | None = None, title: str = "") -> None:
        self._console = Console(file=file, stderr=file is None, highlight=False)
        # None: on exactly when stderr is a terminal (not when redirected to a file, a pipe or a CI log).
        self.enabled = self._console.is_terminal if enabled is None else enabled
        self._title = f"{title}: " if title else ""
        self._stage: str | None = None
        self._started = 0.0
        self._status = None
        self.seconds: dict[str, float] = {}

    def stage(self, name: str) -> None:
        """End the current stage (if any) and start `name`."""
        self._finish()
        self._stage, self._started = name, time.perf_counter()
        if not self.enabled:
            return
        if self._console.is_terminal:
            if self._status is None:
                self._status = self._console.status("")
                self._status.start()
            self._status.update(f"{self._title}{name} …")
        else:  # forced on without a terminal (tests, `enabled=True` into a file): plain lines
            self._console.print(f"{self._title}{name} …")

    def close(self) -> None:
        """End the current stage and stop the spinner."""
        self._finish()
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _finish(self) -> None:
        if self._stage is None:
            return
        took = time.perf_counter() - self._started
        self.seconds[self._stage] = took
        if self.enabled:
            self._console.print(f"{self._title}{self._stage} done in {took:.1f} s")
        self._stage = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(enabled: bool | None = None, title: str = "") -> Progress:
    """A `Progress` on stderr (None: only if stderr is a terminal)."""
    return Progress(enabled=enabled, title=title)
