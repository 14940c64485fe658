"""Shared helpers for the conformance tests: real kubectl / helm run against the emulator."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stack.pytest_plugin import KubeEnv
from stack.tools import Tools

Runner = Callable[..., subprocess.CompletedProcess[str]]


def _runner(binary: Path, base: list[str], env: dict[str, str]) -> Runner:
    def run(
        *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(binary), *base, *args]
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


@pytest.fixture
def kubectl(tools: Tools, kube: KubeEnv, tool_env: dict[str, str]) -> Runner:
    """kubectl 1.32 with the test's context and namespace."""
    return _runner(tools.kubectl, ["--context", kube.context, "-n", kube.namespace], tool_env)


@pytest.fixture(params=["helm3", "helm4"])
def helm(
    request: pytest.FixtureRequest, tools: Tools, kube: KubeEnv, tool_env: dict[str, str]
) -> Runner:
    """Helm 3.17 and Helm 4.1 (the test runs once with each), on the test's context/namespace."""
    binary = tools.helm3 if request.param == "helm3" else tools.helm4
    return _runner(binary, ["--kube-context", kube.context, "-n", kube.namespace], tool_env)


def get_json(kubectl: Runner, *args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


@pytest.fixture(scope="session")
def oci_registry() -> Iterator[str]:
    """A plain-HTTP registry (no auth) for OCI charts; yields host:port."""
    from stack.registry import LocalRegistry

    with LocalRegistry(auth="none") as registry:
        yield registry.host
