"""Steps of a long command as a person follows them, on stderr.

The orchestration code (deploy, lifecycle, rollout) only calls `Steps`: `step(title)` around
each stage, `note(message)` for a detail worth keeping, `output(line)` for a build's output.
How that is shown is the view's business:

- `LiveView` on a terminal (rich): finished steps with their durations, the current one with a
  spinner and its elapsed time, the build's output folded to its last lines (all of it on
  failure, or streamed with --verbose);
- `PlainView` otherwise (CI logs, pipes): one plain line per finished step with its duration,
  no escape codes; a build's output only with --verbose, or when its step fails.

rich is imported only when a live view starts.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from dagster_uc import output

if TYPE_CHECKING:
    from rich.console import RenderableType

#: Lines of a build's output the live view keeps on screen.
FOLDED_LINES = 5
#: Lines of a build's output kept to show when its step fails.
KEPT_LINES = 2000


@dataclass
class StepRecord:
    index: int
    title: str
    seconds: float
    ok: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "seconds": round(self.seconds, 3),
            "status": "ok" if self.ok else "failed",
        }


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


class View(Protocol):
    def start(self, index: int, title: str) -> None: ...
    def finish(self, record: StepRecord) -> None: ...
    def note(self, message: str) -> None: ...
    def output(self, line: str) -> None: ...
    def close(self) -> None: ...


class PlainView:
    """Plain lines for logs: `[2] Building image ... (41.2 s)` when a step ends."""

    def __init__(self, stream: TextIO | None = None, *, verbose: bool = False) -> None:
        self.stream = stream
        self.verbose = verbose
        self._lines: deque[str] = deque(maxlen=KEPT_LINES)

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def start(self, index: int, title: str) -> None:
        self._lines.clear()
        if self.verbose:
            self._write(f"[{index}] {title} ...")

    def finish(self, record: StepRecord) -> None:
        if not record.ok and not self.verbose and self._lines:
            for line in self._lines:
                self._write(f"      | {line}")
        verdict = (
            format_seconds(record.seconds)
            if record.ok
            else (f"failed after {format_seconds(record.seconds)}")
        )
        self._write(f"[{record.index}] {record.title} ({verdict})")

    def note(self, message: str) -> None:
        self._write(f"      {message}")

    def output(self, line: str) -> None:
        line = line.rstrip("\n")
        if self.verbose:
            self._write(f"      | {line}")
        else:
            self._lines.append(line)

    def close(self) -> None:
        pass


class LiveView:
    """A rich live display on the terminal; finished steps stay on screen above it."""

    def __init__(self, *, verbose: bool = False) -> None:
        from rich.console import Console
        from rich.live import Live

        self.verbose = verbose
        self.console = Console(stderr=True, highlight=False, soft_wrap=False)
        self._lock = threading.Lock()
        self._current: tuple[int, str, float] | None = None
        self._tail: deque[str] = deque(maxlen=FOLDED_LINES)
        self._lines: deque[str] = deque(maxlen=KEPT_LINES)
        self._notes: list[str] = []
        # Everything else written to the terminal meanwhile (warnings, a plan) goes through
        # the live display, so it lands above it instead of being drawn over.
        self._live = Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=8,
            transient=True,
            redirect_stdout=output.is_tty(sys.stdout),
            redirect_stderr=True,
        )
        self._started = False

    def _render(self) -> RenderableType:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.text import Text

        with self._lock:
            current, tail, notes = self._current, list(self._tail), list(self._notes)
        if current is None:
            return Text("")
        _index, title, started = current
        elapsed = format_seconds(time.monotonic() - started)
        spinner = Spinner("dots", text=Text.assemble((title, "bold"), f"  {elapsed}"))
        lines: list[Any] = [spinner]
        lines += [Text(f"  {note}", style="dim", no_wrap=True) for note in notes]
        lines += [Text(f"  │ {line}", style="dim", no_wrap=True) for line in tail]
        return Group(*lines)

    def start(self, index: int, title: str) -> None:
        with self._lock:
            self._current = (index, title, time.monotonic())
            self._tail.clear()
            self._lines.clear()
            self._notes.clear()
        if not self._started:
            self._live.start()
            self._started = True
        self._live.refresh()

    def finish(self, record: StepRecord) -> None:
        from rich.text import Text

        with self._lock:
            self._current = None
            lines, notes = list(self._lines), list(self._notes)
            self._tail.clear()
            self._notes.clear()
        self._live.refresh()
        if not record.ok and not self.verbose:
            for line in lines:
                self._print(Text(f"  │ {line}", style="dim"))
        mark, style = ("✓", "green") if record.ok else ("✗", "bold red")
        self._print(
            Text.assemble(
                (f"{mark} ", style),
                f"{record.title}  ",
                (format_seconds(record.seconds), "cyan" if record.ok else "red"),
            )
        )
        for note in notes:
            self._print(Text(f"  {note}", style="dim"))

    def _print(self, renderable: Any) -> None:
        self.console.print(renderable, overflow="fold")

    def note(self, message: str) -> None:
        """Shown under the current step while it runs, and kept under its line after."""
        from rich.text import Text

        with self._lock:
            if self._current is not None:
                self._notes.append(message)
                return
        self._print(Text(f"  {message}", style="dim"))

    def output(self, line: str) -> None:
        from rich.text import Text

        line = line.rstrip("\n")
        with self._lock:
            self._tail.append(line)
            self._lines.append(line)
        if self.verbose:
            self._print(Text(f"  │ {line}", style="dim"))

    def close(self) -> None:
        if self._started:
            self._live.stop()
            self._started = False


def wants_live_view(stream: TextIO) -> bool:
    """A live view only on a terminal that can draw one."""
    return output.is_tty(stream) and os.environ.get("TERM", "") != "dumb"


class Steps:
    """The steps of one command: numbered, timed, shown by a view (chosen for stderr)."""

    def __init__(self, *, enabled: bool = True, view: View | None = None) -> None:
        self.index = 0
        self.enabled = enabled
        self.records: list[StepRecord] = []
        self.started = time.monotonic()
        self._view = view

    @property
    def view(self) -> View:
        if self._view is None:
            verbose = output.is_verbose()
            self._view = (
                LiveView(verbose=verbose)
                if wants_live_view(sys.stderr)
                else PlainView(verbose=verbose)
            )
        return self._view

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.index += 1
        index, started = self.index, time.monotonic()
        if self.enabled:
            self.view.start(index, title)
        ok = False
        try:
            yield
            ok = True
        finally:
            record = StepRecord(index, title, time.monotonic() - started, ok)
            self.records.append(record)
            if self.enabled:
                self.view.finish(record)

    def note(self, message: str) -> None:
        if self.enabled:
            self.view.note(message)

    def output(self, line: str) -> None:
        """A line of a build's (or push's) output."""
        if self.enabled:
            self.view.output(line)

    def close(self) -> None:
        """Stop a live display (idempotent); call before printing the result."""
        if self._view is not None:
            self._view.close()

    @property
    def total_seconds(self) -> float:
        return time.monotonic() - self.started

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.records]


def show_summary(headline: str, rows: list[tuple[str, str]], *, ok: bool = True) -> None:
    """The end of a command for a person, on stderr: a headline and aligned `label  value`
    rows (rich on a terminal, plain lines otherwise)."""
    width = max((len(label) for label, _ in rows), default=0)
    if not wants_live_view(sys.stderr):
        lines = [headline, *(f"  {label:<{width}}  {value}" for label, value in rows)]
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(Text(headline, style="bold green" if ok else "bold red"))
    for label, value in rows:
        console.print(Text.assemble((f"  {label:<{width}}  ", "dim"), value))
