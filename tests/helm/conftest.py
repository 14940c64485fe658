"""Fixtures for the Helm adapter tests: real Helm 3 and 4 against the emulator."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dagster_uc.helm import Helm, HelmOptions


@pytest.fixture(params=["helm3", "helm4"])
def helm_binary(request: pytest.FixtureRequest, tools) -> Path:  # type: ignore[no-untyped-def]
    return Path(getattr(tools, request.param))


@pytest.fixture
def helm_env(tool_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The adapter runs in this process and Helm inherits its environment: make it the test's
    clean one (KUBECONFIG, HELM_*, private HOME; nothing of the caller's), restored afterwards."""
    for key in set(os.environ) - set(tool_env):
        monkeypatch.delenv(key)
    for key, value in tool_env.items():
        monkeypatch.setenv(key, value)
    return tool_env


@pytest.fixture
def make_helm(kube, helm_env) -> Iterator[Callable[..., Helm]]:  # type: ignore[no-untyped-def]
    def make(binary: Path | str, kubeconfig: bool = True, **kwargs: object) -> Helm:
        options = HelmOptions(
            kube_context=kube.context,
            namespace=kube.namespace,
            kubeconfig=str(kube.kubeconfig) if kubeconfig else None,
            binary=str(binary),
            **kwargs,  # type: ignore[arg-type]
        )
        return Helm(options)

    yield make


@pytest.fixture
def lightkube_client(kube):  # type: ignore[no-untyped-def]
    from lightkube import Client
    from lightkube.config.kubeconfig import KubeConfig

    config = KubeConfig.from_file(os.fspath(kube.kubeconfig)).get(context_name=kube.context)
    client = Client(config=config, namespace=kube.namespace)
    yield client
    client.close()
