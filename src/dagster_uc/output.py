"""Console helpers: results on stdout, messages on stderr, JSON for machines.

Results (what a command answers) go to stdout; progress, warnings and errors go to stderr so
that ``-o json`` output stays parseable. Colour and progress lines appear only on a terminal.
rich is imported only when a rich console is asked for.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

_verbose = False
_last_error: str | None = None


def set_verbose(value: bool) -> None:
    global _verbose
    _verbose = value


def is_verbose() -> bool:
    return _verbose


def is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def console(stderr: bool = False) -> Console:
    """A rich console on stdout or stderr (no colour or markup surprises when piped)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def colour_enabled(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return is_tty(stream) and not os.environ.get("NO_COLOR")


def styled(text: str, code: str, stream: TextIO) -> str:
    """`text` in the ANSI style `code` when `stream` takes colour, else unchanged."""
    return f"\033[{code}m{text}\033[0m" if colour_enabled(stream) else text


def result(text: str = "") -> None:
    """A line of a command's result, on stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def print_json(data: Any) -> None:
    """Machine-readable result on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    """Progress for humans: on stderr, only on a terminal or with --verbose."""
    if _verbose or is_tty(sys.stderr):
        sys.stderr.write(message + "\n")


def debug(message: str) -> None:
    """Shown with --verbose only."""
    if _verbose:
        sys.stderr.write(styled(message, "2", sys.stderr) + "\n")


def success(message: str) -> None:
    sys.stderr.write(styled(message, "32", sys.stderr) + "\n")


def warning(message: str) -> None:
    sys.stderr.write(styled("Warning: ", "33", sys.stderr) + message + "\n")


def last_error() -> str | None:
    """The last error message printed (for a command's JSON report)."""
    return _last_error


def error(message: str) -> None:
    global _last_error
    _last_error = message
    sys.stderr.write(styled("Error: ", "1;31", sys.stderr) + message + "\n")
    sys.stderr.flush()
