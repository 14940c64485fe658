"""`stackctl up` / `down`: a background stack usable by the real clients, nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from stack.tools import REPO_ROOT, Tools

pytestmark = pytest.mark.stack


def stackctl(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack.stackctl", *args, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
    )


def read_env(path: Path, home: Path) -> dict[str, str]:
    """The environment after sourcing ``path`` (HOME private, so kubectl caches stay in tmp)."""
    script = f'set -e; . "{path}"; env -0'
    base = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True, env=base).stdout
    pairs = (item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    return dict(pairs)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_up_down(tools: Tools, tmp_path: Path) -> None:
    state_dir = tmp_path / "stack"
    up = stackctl(state_dir, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    pids = list(json.loads((state_dir / "state.json").read_text())["pids"].values())
    try:
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
        env = read_env(state_dir / "env", tmp_path)
        for key in (
            "KUBECONFIG", "DAGSTER_UC_CONTEXT", "DAGSTER_UC_NAMESPACE", "DAGSTER_UC_REGISTRY",
            "DAGSTER_UC_DAGSTER_VERSION", "DAGSTER_UC_CHART", "DAGSTER_UC_BASE_IMAGE",
        ):  # fmt: skip
            assert env.get(key), key
        assert env["DAGSTER_UC_CONTEXT"] == "kind-dagster-local"
        assert env["DAGSTER_UC_NAMESPACE"] == "dagster"
        assert env["DAGSTER_UC_DAGSTER_VERSION"] == "1.8.4"
        assert Path(env["DAGSTER_UC_CHART"], "Chart.yaml").is_file()
        assert env["PATH"].split(os.pathsep)[0] == str(tools.bin_dir)

        kubectl = subprocess.run(
            ["kubectl", "--context", env["DAGSTER_UC_CONTEXT"], "-n", "dagster", "get",
             "deployments", "-o", "name"],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        assert "daemon" in kubectl.stdout
        for helm in ("helm3", "helm"):
            listed = subprocess.run(
                [helm, "--kube-context", env["DAGSTER_UC_CONTEXT"], "-n", "dagster", "list"],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            assert listed.returncode == 0, listed.stderr
        with urllib.request.urlopen(f"http://{env['DAGSTER_UC_REGISTRY']}/v2/", timeout=5) as r:
            assert r.status == 200

        again = stackctl(state_dir, "up")
        assert again.returncode == 0 and "already up" in again.stdout
        assert list(json.loads((state_dir / "state.json").read_text())["pids"].values()) == pids
        assert stackctl(state_dir, "status").returncode == 0
    finally:
        down = stackctl(state_dir, "down")
    assert down.returncode == 0, down.stderr
    assert not any(alive(pid) for pid in pids)
    assert not state_dir.exists()
    assert stackctl(state_dir, "down").returncode == 0
    assert stackctl(state_dir, "status").returncode == 3
