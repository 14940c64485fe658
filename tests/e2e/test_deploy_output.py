"""What a deploy shows: `-o json` (one object on stdout, also on failure), plain lines when
stderr is no terminal, and the live view with its summary on a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess

import pyte
import pytest

from tests.e2e.conftest import DAGSTER_UC, GUI, Stack

pytestmark = pytest.mark.e2e
NAME = "demo-project--feat-hello"


def test_json_is_the_only_stdout(stack: Stack) -> None:
    result = stack.run("deployment", "deploy", "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # the whole of stdout is one JSON object
    assert report["ok"] is True
    assert report["name"] == NAME and report["ui_name"] == "demo-project:feat-hello"
    assert report["tag"] == "1.8.4-0" and report["image"].endswith(f"/{NAME}:1.8.4-0")
    assert report["ui_url"] == f"{GUI}/locations/demo-project:feat-hello/assets"
    assert report["reloaded"]  # a new location: Dagster's webserver reloaded or restarted
    assert isinstance(report["restarted"], list)
    titles = [s["title"] for s in report["steps"]]
    assert any(t.startswith("Building image") for t in titles)
    assert all(s["status"] == "ok" and s["seconds"] >= 0 for s in report["steps"])
    assert report["total_seconds"] >= sum(s["seconds"] for s in report["steps"]) * 0.99
    assert "STEP" not in result.stdout  # podman's build output went to stderr
    assert "\x1b" not in result.stdout + result.stderr


def test_json_on_failure_has_error_and_diagnosis(stack: Stack) -> None:
    stack.emulator.hold_unready(stack.namespace, f"deployment={NAME}")
    try:
        result = stack.run("deployment", "deploy", "-o", "json", "--timeout", "4")
    finally:
        stack.emulator.release_unready(stack.namespace, f"deployment={NAME}")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["exit_code"] == 1
    assert "did not become ready" in report["error"]
    assert "CrashLoopBackOff" in report["diagnosis"] or "not ready" in report["diagnosis"]
    assert "failed" in [s["status"] for s in report["steps"]]
    assert "Error: " in result.stderr


def test_json_on_a_usage_error(stack: Stack) -> None:
    stack.write_config(dagster_version="1.9.0")
    result = stack.run("deployment", "deploy", "-o", "json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["exit_code"] == 2
    assert "Dagster version mismatch" in report["error"]


def test_plain_lines_without_a_terminal(stack: Stack) -> None:
    result = stack.run("deployment", "deploy")
    assert result.returncode == 0, result.output
    assert "\x1b" not in result.stdout + result.stderr
    steps = [line for line in result.stderr.splitlines() if re.match(r"\[\d+\] ", line)]
    assert steps, result.stderr
    assert all(re.search(r"\(\d+\.\d s\)$", line) for line in steps), steps
    assert "Code location demo-project:feat-hello is up with image" in result.stderr
    assert re.search(r"^  total\s+\d+\.\d s$", result.stderr, flags=re.M)
    assert result.stdout.strip() == f"{GUI}/locations/demo-project:feat-hello/assets"


def test_live_view_and_summary_on_a_terminal(stack: Stack) -> None:
    screen = pyte.Screen(160, 60)
    feed = pyte.ByteStream(screen)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(DAGSTER_UC), "deployment", "deploy"],
        cwd=stack.project,
        env={**stack.env, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "60"},
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(slave)
    raw = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            raw += data
            feed.feed(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=300)
    os.close(master)
    text = "\n".join(line.rstrip() for line in screen.display)
    assert proc.returncode == 0, text
    assert re.search(r"✓ Checking the deployment\s+\d+\.\d s", text), text
    assert re.search(r"✓ Building image \S+:1\.8\.4-0\s+\d+\.\d s", text), text
    assert re.search(r"✓ Rolling out Helm release \S+\s+\d+\.\d s", text), text
    assert "Code location demo-project:feat-hello is up with image" in text
    assert re.search(rf"UI\s+{re.escape(GUI)}/locations/demo-project:feat-hello/assets", text)
    assert re.search(r"tag\s+1\.8\.4-0", text)
    assert re.search(r"reloaded\s+\S+", text)
    assert re.search(r"total\s+\d+\.\d s", text)
    assert "STEP 1/" not in text  # the build's output was folded away


def test_json_with_dry_run_keeps_the_plan_off_stdout(stack: Stack) -> None:
    result = stack.run("deployment", "deploy", "--dry-run", "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["dry_run"] is True
    assert report["steps"] and "name" not in report
    assert NAME in result.stderr  # the plan went to stderr
    assert stack.tags(NAME) == []
