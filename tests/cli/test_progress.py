"""Progress as a person sees it: the live view driven through a pseudo-terminal and read back
with a terminal emulator (pyte), and the plain lines written when stderr is no terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyte
import pytest

from dagster_uc.progress import PlainView, Steps, format_seconds

DRIVER = r"""
import sys, time
from pathlib import Path
from dagster_uc import output
from dagster_uc.progress import Steps

mode, gate = sys.argv[1], Path(sys.argv[2])
output.set_verbose(mode == "verbose")
steps = Steps()
with steps.step("Checking the deployment"):
    steps.note("deployment demo--feat (Dagster UI: demo:feat)")
try:
    with steps.step("Building image demo:1.8.4-0"):
        for i in range(1, 21):
            steps.output(f"STEP {i}/20: RUN echo {i}\n")
        sys.stderr.flush()
        gate.with_name("waiting").touch()
        while not gate.exists():
            time.sleep(0.05)
        if mode == "fail":
            raise RuntimeError("build failed")
    with steps.step("Rolling out"):
        pass
finally:
    steps.close()
print("RESULT on stdout", flush=True)
"""

COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|38;[0-9;]+)m")


class Terminal:
    """A child process on a pseudo-terminal, its output fed to a 100x40 screen."""

    def __init__(self, tmp_path: Path, mode: str, env: dict[str, str] | None = None) -> None:
        self.gate = tmp_path / "go"
        self.screen = pyte.Screen(100, 40)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = b""
        master, slave = pty.openpty()
        self.master = master
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER, mode, str(self.gate)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={
                **os.environ,
                "TERM": "xterm-256color",
                "COLUMNS": "100",
                "LINES": "40",
                **(env or {}),
            },
            close_fds=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        os.close(slave)

    def pump(self, seconds: float = 0.1) -> None:
        ready, _, _ = select.select([self.master], [], [], seconds)
        if ready:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            self.raw += data
            self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display).rstrip()

    def until(self, predicate, guard_s: float = 60) -> None:
        deadline = time.monotonic() + guard_s  # a guard against hangs, not a timing assertion
        while not predicate():
            assert time.monotonic() < deadline, f"screen never matched:\n{self.text()}"
            self.pump()

    def finish(self) -> int:
        self.gate.touch()
        while self.proc.poll() is None:
            self.pump()
        for _ in range(20):
            self.pump(0.05)
        os.close(self.master)
        return self.proc.returncode


def test_live_view_shows_spinner_elapsed_time_and_folded_output(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "normal")
    term.until(lambda: (tmp_path / "waiting").exists() and "STEP 20/20" in term.text())
    during = term.text()
    assert re.search(r"✓ Checking the deployment\s+\d+\.\d s", during), during
    assert "deployment demo--feat (Dagster UI: demo:feat)" in during
    building = next(line for line in during.splitlines() if "Building image demo:1.8.4-0" in line)
    assert re.search(r"Building image demo:1\.8\.4-0\s+\d+\.\d s$", building), building
    shown = re.findall(r"STEP (\d+)/20", during)
    assert shown == ["16", "17", "18", "19", "20"], during  # folded to its last lines
    assert term.finish() == 0
    after = term.text()
    assert re.search(r"✓ Building image demo:1\.8\.4-0\s+\d+\.\d s", after), after
    assert re.search(r"✓ Rolling out\s+\d+\.\d s", after)
    assert "STEP" not in after  # the folded output goes away with its step
    assert "RESULT on stdout" in after


def test_live_view_shows_the_whole_output_when_the_step_fails(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "fail")
    term.until(lambda: (tmp_path / "waiting").exists())
    assert term.finish() == 1
    after = term.text()
    assert [int(n) for n in re.findall(r"STEP (\d+)/20", after)] == list(range(1, 21)), after
    assert re.search(r"✗ Building image demo:1\.8\.4-0\s+\d+\.\d s", after)
    assert "Rolling out" not in after


def test_live_view_streams_the_whole_output_with_verbose(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "verbose")
    term.until(lambda: (tmp_path / "waiting").exists() and "STEP 20/20" in term.text())
    assert [int(n) for n in re.findall(r"STEP (\d+)/20", term.text())][:20] == list(range(1, 21))
    assert term.finish() == 0


def test_no_color_is_respected_on_a_terminal(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "normal", env={"NO_COLOR": "1"})
    term.until(lambda: (tmp_path / "waiting").exists())
    assert term.finish() == 0
    assert not COLOUR.search(term.raw.decode(errors="replace"))
    assert "✓ Rolling out" in term.text()


def test_colour_is_used_on_a_terminal_without_no_color(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "normal")
    term.until(lambda: (tmp_path / "waiting").exists())
    assert term.finish() == 0
    assert COLOUR.search(term.raw.decode(errors="replace"))


@pytest.mark.parametrize("mode", ["normal", "fail", "verbose"])
def test_not_a_terminal_plain_lines_one_per_step(tmp_path: Path, mode: str) -> None:
    (tmp_path / "go").touch()
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, mode, str(tmp_path / "go")],
        capture_output=True,
        text=True,
        env={**os.environ, "TERM": "xterm-256color"},
        check=False,
    )
    assert "\x1b" not in done.stderr + done.stdout
    assert done.stdout == ("" if mode == "fail" else "RESULT on stdout\n")
    lines = done.stderr.splitlines()
    assert re.fullmatch(
        r"\[1\] Checking the deployment \(\d+\.\d s\)",
        [x for x in lines if x.startswith("[1]")][-1],
    )
    steps_ = [x for x in lines if re.match(r"\[\d\] ", x)]
    if mode == "normal":
        assert [re.sub(r"\(.*\)", "()", x) for x in steps_] == [
            "[1] Checking the deployment ()",
            "[2] Building image demo:1.8.4-0 ()",
            "[3] Rolling out ()",
        ]
        assert "STEP" not in done.stderr
    elif mode == "fail":
        assert re.fullmatch(
            r"\[2\] Building image demo:1\.8\.4-0 \(failed after \d+\.\d s\)", steps_[-1]
        )
        assert [int(n) for n in re.findall(r"\| STEP (\d+)/20", done.stderr)] == list(range(1, 21))
    else:
        assert "[2] Building image demo:1.8.4-0 ..." in lines
        assert done.stderr.count("| STEP ") == 20


def test_plain_view_records_durations() -> None:
    sink = io.StringIO()
    steps = Steps(view=PlainView(sink))
    with steps.step("One"):
        steps.note("a note")
    with pytest.raises(KeyError), steps.step("Two"):
        steps.output("line\n")
        raise KeyError("x")
    assert [r["title"] for r in steps.to_json()] == ["One", "Two"]
    assert [r["status"] for r in steps.to_json()] == ["ok", "failed"]
    assert sink.getvalue().splitlines()[0] == "      a note"
    assert sink.getvalue().splitlines()[2] == "      | line"
    assert format_seconds(5.04) == "5.0 s" and format_seconds(75) == "1 min 15 s"
