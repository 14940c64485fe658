"""Fixtures for the conformance tests: real kubectl / helm run against the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stack.clients import Runner, make_runner
from stack.pytest_plugin import KubeEnv
from stack.tools import Tools


@pytest.fixture
def kubectl(tools: Tools, kube: KubeEnv, tool_env: dict[str, str]) -> Runner:
    """kubectl 1.32 with the test's context and namespace."""
    return make_runner(tools.kubectl, ["--context", kube.context, "-n", kube.namespace], tool_env)


@pytest.fixture(params=["helm3", "helm4"])
def helm(
    request: pytest.FixtureRequest, tools: Tools, kube: KubeEnv, tool_env: dict[str, str]
) -> Runner:
    """Helm 3.17 and Helm 4.1 (the test runs once with each), on the test's context/namespace."""
    binary = tools.helm3 if request.param == "helm3" else tools.helm4
    return make_runner(binary, ["--kube-context", kube.context, "-n", kube.namespace], tool_env)


@pytest.fixture(scope="session")
def oci_registry() -> Iterator[str]:
    """A plain-HTTP registry (no auth) for OCI charts; yields host:port."""
    from stack.registry import LocalRegistry

    with LocalRegistry(auth="none") as registry:
        yield registry.host
