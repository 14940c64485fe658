"""Pytest fixtures for the local stack, shared by every test suite.

Register with ``pytest_plugins = ["stack.pytest_plugin"]`` in tests/conftest.py.

- ``tools`` (session): helm 3, helm 4 and kubectl from the PyPI wheels (see stack.tools).
- ``emulator`` (session): one in-process Kubernetes API emulator, namespace "dagster" seeded.
- ``kube`` (function): a fresh seeded namespace in that emulator and a kubeconfig whose current
  context is "kind-dagster-test" pointing at it.
- ``tool_env`` (function): environment for subprocesses: tools first on PATH, KUBECONFIG set,
  Helm's config/cache/data and kubectl's cache in the test's temp dir, podman builds with
  chroot isolation.
- ``base_image`` (session): the busybox podman base image.
- ``user_code_chart`` (session): path of the user-code chart directory.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from stack.chart import CHART_DIR
from stack.tools import Tools, ensure_tools

if TYPE_CHECKING:
    from stack.emulator import Emulator

KUBE_VERSION = "v1.32.3"
DAGSTER_VERSION = "1.8.4"
TEST_CONTEXT = "kind-dagster-test"


@dataclass(frozen=True)
class KubeEnv:
    """One test's slice of the shared emulator."""

    emulator: Emulator
    kubeconfig: Path
    context: str
    namespace: str


@pytest.fixture(scope="session")
def tools() -> Tools:
    return ensure_tools()


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    from stack.emulator import Emulator, seed_dagster

    emu = Emulator(host="127.0.0.1", port=0, kube_version=KUBE_VERSION, ready_delay=0.2).start()
    try:
        seed_dagster(emu, namespace="dagster", dagster_version=DAGSTER_VERSION)
        yield emu
    finally:
        emu.stop()


@contextmanager
def seeded_namespace(
    cluster: Any, tmp_path: Path, *, kubeconfig: Path | None = None, context: str = TEST_CONTEXT
) -> Iterator[KubeEnv]:
    """A fresh namespace seeded like Dagster's chart leaves it, deleted afterwards.

    `cluster` is the emulator, or a `stack.real_cluster.KubectlCluster` (then `kubeconfig`
    and `context` name the real cluster)."""
    from stack.emulator import seed_dagster

    namespace = f"t-{uuid.uuid4().hex[:10]}"
    seed_dagster(cluster, namespace=namespace, dagster_version=DAGSTER_VERSION)
    if kubeconfig is None:
        kubeconfig = Path(
            cluster.write_kubeconfig(tmp_path / "kubeconfig", context=context, namespace=namespace)
        )
    yield KubeEnv(emulator=cluster, kubeconfig=kubeconfig, context=context, namespace=namespace)
    cluster.delete("v1", "namespaces", None, namespace)


@pytest.fixture
def kube(emulator: Emulator, tmp_path: Path) -> Iterator[KubeEnv]:
    """A fresh seeded namespace, deleted (with everything in it) after the test."""
    with seeded_namespace(emulator, tmp_path) as env:
        yield env


@pytest.fixture
def tool_env(tools: Tools, kube: KubeEnv, tmp_path: Path) -> dict[str, str]:
    env = tools.env(dict(os.environ))
    env["KUBECONFIG"] = str(kube.kubeconfig)
    helm_home = tmp_path / "helm-home"
    for var, sub in (
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_DATA_HOME", "data"),
    ):
        (helm_home / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(helm_home / sub)
    env["KUBECACHEDIR"] = str(tmp_path / "kube-cache")
    env["BUILDAH_ISOLATION"] = "chroot"
    return env


@pytest.fixture(scope="session")
def base_image() -> str:
    from stack.podman import ensure_base_image

    return ensure_base_image()


@pytest.fixture(scope="session")
def user_code_chart() -> Path:
    return CHART_DIR
