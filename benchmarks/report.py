"""docs/benchmarks.md: one file, one marked section per benchmark.

Each benchmark script run with `--write` replaces its own section (between
`<!-- bench:NAME -->` and `<!-- /bench:NAME -->`); `benchmarks.run` writes the intro and runs
them all. Sections keep their order; a missing one is added in SECTIONS order.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
SECTIONS = ("intro", "deploy", "original", "registry")
TITLE = "# Benchmarks\n"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def _skeleton() -> str:
    parts = [TITLE]
    for name in SECTIONS:
        begin, end = _markers(name)
        parts.append(f"{begin}\n{end}\n")
    return "\n".join(parts)


def write_section(name: str, markdown: str, doc: Path = DOC) -> Path:
    """Replace section `name` of `doc` with `markdown` (the file is created if missing)."""
    text = doc.read_text() if doc.is_file() else _skeleton()
    begin, end = _markers(name)
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    return doc


def command_line(module: str) -> str:
    """How this benchmark was invoked, as a `.venv/bin/python -m` command from the repo root."""
    return shlex.join([".venv/bin/python", "-m", module, *sys.argv[1:]])


def load_average() -> str:
    """The 1-minute load average, for the caveat lines (others may share this machine)."""
    return f"{os.getloadavg()[0]:.2f}"


def tool_version(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    except OSError:
        return "not installed"
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    return (
        f"{os.cpu_count()} cores ({cpu_model()}), {platform.system()} {platform.release()}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
