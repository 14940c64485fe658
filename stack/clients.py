"""Run the real kubectl / helm binaries from tests, with readable failures."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def make_runner(binary: Path, base_args: Sequence[str], env: dict[str, str]) -> Runner:
    """A callable ``run(*args, check=True, timeout=180)`` for ``binary *base_args *args``."""

    def run(
        *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(binary), *base_args, *args]
        result = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    return run


def get_json(kubectl: Runner, *args: str) -> Any:
    """``kubectl get ARGS -o json``, parsed."""
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def exists(kubectl: Runner, kind: str, name: str) -> bool:
    """Whether ``kubectl get KIND NAME`` finds it (any error but NotFound fails)."""
    result = kubectl("get", kind, name, "-o", "name", check=False)
    if result.returncode != 0 and "NotFound" not in result.stderr:
        raise AssertionError(result.stderr)
    return result.returncode == 0
