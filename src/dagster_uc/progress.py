"""Steps of a long command, shown as they happen: `[2] Building image ...`, then its time.

On a terminal each step is announced and timed; without one (CI) only the step titles are
printed, one line each, so logs stay short but still tell where a failure happened.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from dagster_uc import output


class Steps:
    def __init__(self, *, enabled: bool = True) -> None:
        self.index = 0
        self.enabled = enabled

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.index += 1
        started = time.monotonic()
        if self.enabled:
            sys.stderr.write(f"[{self.index}] {title}\n")
            sys.stderr.flush()
        yield
        if self.enabled and output.is_tty(sys.stderr):
            sys.stderr.write(f"      done in {time.monotonic() - started:.1f} s\n")

    def note(self, message: str) -> None:
        if self.enabled:
            sys.stderr.write(f"      {message}\n")
            sys.stderr.flush()
