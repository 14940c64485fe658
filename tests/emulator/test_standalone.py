"""`python -m stack.emulator` as a process: ready file, kubeconfig, seed, clean exit."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from stack.pytest_plugin import default_signals

ROOT = Path(__file__).resolve().parents[2]


def test_standalone_process_starts_serves_and_stops(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stack.emulator",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
            "--context",
            "kind-dagster-local",
            "--namespace",
            "dagster",
            "--seed-dagster-version",
            "1.9.0",
            "--ready-file",
            str(ready),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,  # it gets SIGTERM
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the emulator did not become ready"
            time.sleep(0.05)
        fields = dict(line.split("=", 1) for line in ready.read_text().splitlines())
        url = fields["url"]
        assert url == f"http://127.0.0.1:{fields['port']}"
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["current-context"] == "kind-dagster-local"
        assert config["clusters"][0]["cluster"]["server"] == url
        assert config["contexts"][0]["context"]["namespace"] == "dagster"
        daemon = httpx.get(
            f"{url}/apis/apps/v1/namespaces/dagster/deployments/dagster-daemon", trust_env=False
        ).json()
        assert daemon["metadata"]["labels"]["app.kubernetes.io/version"] == "1.9.0"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip() == url
