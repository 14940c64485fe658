"""The original dagster-uc (0.5.6 from PyPI) on the local stack: its virtualenv, its config
format, and what it needs from the registry (an OCI chart, podman told the registry is plain
HTTP, an existing image repository).

Used by the compatibility e2e test and by benchmarks/bench_original.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from stack.chart import CHART_NAME, package_chart, push_oci_chart

ORIGINAL_VERSION = "0.5.6"
ORIGINAL_VENV = Path(__file__).resolve().parents[1] / ".cache" / "orig-venv"


def ensure_original(venv: Path = ORIGINAL_VENV) -> Path:
    """The original `dagster-uc` executable, in a virtualenv of its own (made once)."""
    binary = venv / "bin" / "dagster-uc"
    stamp = venv / f"dagster-uc-{ORIGINAL_VERSION}.installed"
    if not stamp.is_file():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"dagster-uc=={ORIGINAL_VERSION}"],
            check=True,
        )
        stamp.write_text(ORIGINAL_VERSION)
    if not binary.is_file():
        raise RuntimeError(f"{binary} missing after installing dagster-uc {ORIGINAL_VERSION}")
    return binary


def original_config(
    *,
    registry: str,
    image_prefix: str,
    namespace: str,
    kubernetes_context: str,
    chart_path: str,
    code_path: str = "demo_project/definitions.py",
    dagster_version: str = "1.8.4",
    dagster_gui_url: str = "http://dagster.example",
) -> dict[str, Any]:
    """A config in the original tool's format (every field it requires, a `defaults` block)."""
    return {
        "defaults": {
            "environment": "dev",
            "container_registry": registry,
            "dockerfile": "Dockerfile",
            "image_prefix": image_prefix,
            "namespace": namespace,
            "node": "pool1",
            "code_path": code_path,
            "docker_root": "/app",
            "repository_root": ".",
            "dagster_version": dagster_version,
            "image_pull_secrets": [],
            "user_code_deployment_env_secrets": [{"name": "team-secrets"}],
            "user_code_deployment_env": [{"name": "TEAM", "value": "data"}],
            "cicd": False,
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "kubernetes_context": kubernetes_context,
            "docker_env_vars": [],
            "use_az_login": False,
            "container_registry_chart_path": chart_path,
            "dagster_gui_url": dagster_gui_url,
        },
        "dev": {},
    }


def publish_chart(workdir: Path, registry: str, repository: str, version: str = "1.8.4") -> str:
    """Push the local chart as OCI `oci://<registry>/<repository>/<chart>:<version>`.

    The original fetches its chart from oci://<container_registry>/<container_registry_chart_path>;
    returns that `container_registry_chart_path`.
    """
    push_oci_chart(package_chart(workdir, version), registry, repository)
    return f"{repository}/{CHART_NAME}"


def write_registries_conf(path: Path, registry: str) -> Path:
    """A containers registries.conf marking `registry` plain HTTP (the original talks to the
    registry through podman); point CONTAINERS_REGISTRIES_CONF at it."""
    path.write_text(f'[[registry]]\nlocation = "{registry}"\ninsecure = true\n')
    return path
