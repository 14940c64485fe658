"""Pytest fixtures for the local stack, shared by every test suite.

Register with ``pytest_plugins = ["stack.pytest_plugin"]`` in tests/conftest.py.

- ``tools`` (session): helm 3, helm 4 and kubectl from the PyPI wheels (see stack.tools).
- ``emulator`` (session): one in-process Kubernetes API emulator, namespace "dagster" seeded.
- ``kube`` (function): a fresh seeded namespace in that emulator and a kubeconfig whose current
  context is "kind-dagster-test" pointing at it.
- ``clean_env`` (function): the caller's environment without anything that changes what a
  test sees (see ``clean_environ``), with a private HOME in the test's temp dir.
- ``tool_env`` (function): ``clean_env`` plus tools first on PATH, KUBECONFIG set,
  Helm's config/cache/data and kubectl's cache in the test's temp dir, podman builds with
  chroot isolation. Every subprocess a test starts gets one of these two.
- ``base_image`` (session): the busybox podman base image.
- ``user_code_chart`` (session): path of the user-code chart directory.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from dagster_uc.config import config_keys
from stack.chart import CHART_DIR
from stack.tools import Tools, ensure_tools

if TYPE_CHECKING:
    from stack.emulator import Emulator

KUBE_VERSION = "v1.32.3"
DAGSTER_VERSION = "1.8.4"
TEST_CONTEXT = "kind-dagster-test"
# Variables of the caller that change what a subprocess does, beyond dagster-uc's own config
# keys (which `clean_environ` takes from the config model): CI detection, git's repository and
# config, proxies (the stack is all loopback), the test modes' own knobs.
_CALLER_PREFIXES = ("GIT_", "GITHUB_", "CI_", "BUILD_", "SYSTEM_", "DAGSTER_UC_E2E_")
_CALLER_KEYS = {
    "BRANCH_NAME",
    "XDG_CONFIG_HOME",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REGISTRY_AUTH_FILE",
}


@dataclass(frozen=True)
class KubeEnv:
    """One test's slice of the shared emulator."""

    emulator: Emulator
    kubeconfig: Path
    context: str
    namespace: str


def clean_environ(home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: os.environ) without what would change a subprocess's behaviour, with
    `home` as HOME (no ~/.gitconfig, ~/.kube or ~/.config of the caller) and git told to read
    no system config either."""
    config = {key.upper() for key in config_keys()}  # the product's config model, not a copy
    env = {
        key: value
        for key, value in (os.environ if base is None else base).items()
        if key.upper() not in config
        and key.upper() not in _CALLER_KEYS
        and not key.upper().startswith(_CALLER_PREFIXES)
    }
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
    return env


def default_signals() -> None:
    """`preexec_fn` for a child a test will signal: SIGINT and SIGTERM back to their default.

    A shell starts a background job (`make test &`) with SIGINT ignored, an ignored signal stays
    ignored across exec, and Python then installs no KeyboardInterrupt handler: without this the
    child would never see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return clean_environ(home)


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
    try:
        yield KubeEnv(emulator=cluster, kubeconfig=kubeconfig, context=context, namespace=namespace)
    finally:
        _reset_knobs(cluster)
        cluster.delete("v1", "namespaces", None, namespace)


def _reset_knobs(cluster: Any) -> None:
    """Faults, gates and denied permissions a test set (some match every namespace) end with
    it, so that they cannot reach the next test on the same session-wide cluster. Looked up
    on the class: a real cluster's facade skips a test that asks it for an unknown knob."""
    clear_faults = getattr(type(cluster), "clear_faults", None)
    if clear_faults is not None:
        clear_faults(cluster)
    denied = getattr(cluster, "denied_access", None) if clear_faults is not None else None
    if isinstance(denied, set):
        denied.clear()


@pytest.fixture
def kube(emulator: Emulator, tmp_path: Path) -> Iterator[KubeEnv]:
    """A fresh seeded namespace, deleted (with everything in it) after the test."""
    with seeded_namespace(emulator, tmp_path) as env:
        yield env


@pytest.fixture
def tool_env(
    tools: Tools, kube: KubeEnv, clean_env: dict[str, str], tmp_path: Path
) -> dict[str, str]:
    env = tools.env(clean_env)
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


def wait_rolled_out(cluster: Any, namespace: str, deployment: str, timeout: float = 60) -> None:
    """Poll (with backoff) until a Deployment's latest spec is rolled out and ready, as
    `kubectl rollout status` judges it; tests that change a pod template wait on this before
    they look at its pods."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        obj = cluster.get("apps/v1", "deployments", namespace, deployment) or {}
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        want = spec.get("replicas", 1)
        if (
            status.get("observedGeneration", 0) >= obj.get("metadata", {}).get("generation", 1)
            and status.get("updatedReplicas", 0) == want
            and status.get("readyReplicas", 0) == want
            and status.get("replicas", 0) == want
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Deployment {namespace}/{deployment} not rolled out: {status}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
