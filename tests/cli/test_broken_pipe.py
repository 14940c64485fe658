"""A reader that stops early (`dagster-uc show-config | head -1`) ends the command quietly."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.cli.conftest import CONFIG, CONFIG_NAME, Runner, command_path


def test_output_into_a_closed_pipe_is_not_an_error(tmp_path: Path, dagster_uc: Runner) -> None:
    (tmp_path / CONFIG_NAME).write_text(CONFIG)
    proc = subprocess.Popen(
        [str(command_path()), "show-config"],
        cwd=tmp_path,
        env=dagster_uc.base_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command has written anything
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=30) in (0, 141)
    assert "Error" not in stderr and "Traceback" not in stderr
