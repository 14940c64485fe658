"""`make demo` itself (`python -m stack.demo`): on a fresh private stack it runs every step,
ends with no deployment left on the cluster, stops the stack and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stack import demo

pytestmark = pytest.mark.e2e


def test_make_demo_ends_with_the_locations_deleted_and_the_stack_down(
    tool_env: dict[str, str],
) -> None:
    env = {
        k: v for k, v in tool_env.items() if k != "KUBECONFIG"
    }  # the demo's stack brings its own

    done = subprocess.run(
        [sys.executable, "-m", "stack.demo"],
        cwd=demo.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    steps = done.stdout.split("==> ")
    last_delete = next(i for i, s in enumerate(steps) if s.startswith("Delete everything"))
    assert "$ dagster-uc deployment delete --all" in steps[last_delete]
    assert "$ dagster-uc deployment list" in steps[last_delete]
    assert "No deployments are registered on the cluster." in steps[last_delete]
    assert steps[-1].startswith("Demo finished")
    assert not Path(demo.STATE_DIR).exists(), "the demo's stack was not stopped"
