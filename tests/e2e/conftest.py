"""End-to-end fixtures: the installed `dagster-uc` against real podman, a real registry, real
Helm and kubectl, and the Kubernetes API emulator, on a real git checkout of a project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.chart import CHART_DIR
from stack.controlplane.fixtures import e2e_backend
from stack.pytest_plugin import KubeEnv, seeded_namespace
from stack.real_cluster import KubectlCluster, RemoteRegistry, real_context
from stack.registry import LocalRegistry
from stack.tools import Tools

ROOT = Path(__file__).resolve().parents[2]
DAGSTER_UC = Path(sys.executable).parent / "dagster-uc"
DEMO_PROJECT = ROOT / "examples" / "demo-project"
VALUES_CM = "dagster-user-deployments-values-yaml"
WORKSPACE_CM = "dagster-workspace-yaml"
GUI = "http://dagster.example"

pytestmark = pytest.mark.e2e


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Stack:
    kube: KubeEnv
    registry: LocalRegistry
    env: dict[str, str]
    project: Path
    prefix: str
    config_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def emulator(self) -> Any:
        return self.kube.emulator

    @property
    def namespace(self) -> str:
        return self.kube.namespace

    def config(self, **overrides: Any) -> dict[str, Any]:
        dev: dict[str, Any] = {
            "kubernetes_context": self.kube.context,
            "namespace": self.namespace,
            "container_registry": self.registry.host,
            "container_registry_insecure": True,
            "dagster_version": "1.8.4",
            "helm_chart_path": str(CHART_DIR),
            "image_prefix": self.prefix,
            "dagster_gui_url": GUI,
            "code_path": "demo_project/definitions.py",
            "docker_root": "/app",
            "dockerfile": "Dockerfile",
            "use_project_name": True,
            # The suite was written for the shared release; tests of the other modes
            # (test_release_modes.py, test_migrate.py) override it.
            "helm_release_mode": "shared",
        }
        base_image = os.environ.get("DAGSTER_UC_E2E_BASE_IMAGE")
        if real_context() and base_image:
            # The demo Dockerfile's `ARG BASE_IMAGE`: an image with Dagster, so the code
            # server really starts on a real cluster.
            dev["docker_env_vars"] = [f"BASE_IMAGE={base_image}"]
        dev.update(self.config_overrides)
        dev.update(overrides)
        return dev

    def write_config(self, **overrides: Any) -> Path:
        self.config_overrides.update(overrides)
        path = self.project / ".config_user_code_deployments.yaml"
        path.write_text(yaml.safe_dump({"dev": self.config()}))
        return path

    def run(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = 300,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        done = subprocess.run(
            [str(DAGSTER_UC), *args],
            cwd=cwd or self.project,
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str, **kwargs: Any) -> Result:
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, f"dagster-uc {' '.join(args)} failed:\n{result.output}"
        return result

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.email=dev@example.com", "-c", "user.name=Dev", *args],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    def checkout(self, branch: str) -> None:
        self.git("checkout", "-q", "-B", branch)

    def configmap(self, name: str) -> dict[str, Any] | None:
        obj = self.emulator.get("v1", "configmaps", self.namespace, name)
        return None if obj is None else obj

    def values(self) -> dict[str, Any]:
        cm = self.configmap(VALUES_CM)
        assert cm is not None, "values ConfigMap missing"
        return yaml.safe_load(cm["data"]["yaml"])

    def history(self) -> dict[str, Any]:
        cm = self.configmap(VALUES_CM)
        assert cm is not None
        return yaml.safe_load(cm["data"].get("dagster-uc-history.yaml") or "{}") or {}

    def entry(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.values()["deployments"] if e["name"] == name), None)

    def workspace(self) -> dict[str, Any]:
        cm = self.configmap(WORKSPACE_CM)
        assert cm is not None
        return yaml.safe_load(cm["data"]["workspace.yaml"])

    def locations(self) -> list[str]:
        return [s["grpc_server"]["location_name"] for s in self.workspace()["load_from"] or []]

    def tags(self, name: str) -> list[str]:
        import httpx

        response = httpx.get(
            f"http://{self.registry.host}/v2/{self.prefix}/{name}/tags/list", trust_env=False
        )
        if response.status_code == 404:
            return []
        return sorted(response.json().get("tags") or [])

    def deployment(self, name: str) -> dict[str, Any] | None:
        """The Kubernetes Deployment the chart rendered for location `name`."""
        items = self.emulator.list(
            "apps/v1", "deployments", self.namespace, label_selector=f"deployment={name}"
        )
        return items[0] if items else None

    def restarted_at(self, deployment: str) -> str | None:
        obj = self.emulator.get("apps/v1", "deployments", self.namespace, deployment)
        assert obj is not None
        annotations = obj["spec"]["template"]["metadata"].get("annotations") or {}
        return annotations.get("kubectl.kubernetes.io/restartedAt")

    def helm(self, *args: str) -> str:
        done = subprocess.run(
            ["helm", *args, "-n", self.namespace, "--kube-context", self.kube.context],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    """Poll `condition` until it is truthy (a guard against hangs, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def wait_helm_rolled_out(stack: Stack, name: str, tag: str) -> None:
    """Wait until Helm has put `tag` of location `name` out and stored its release: a deploy
    is then waiting for the pods (step lines are printed when a step ends, too late for that)."""

    def done() -> bool:
        deployment = stack.deployment(name) or {}
        pod_spec = (deployment.get("spec") or {}).get("template", {}).get("spec", {})
        images = [c.get("image", "") for c in pod_spec.get("containers") or []]
        pending = stack.emulator.list(
            "v1",
            "secrets",
            stack.namespace,
            label_selector="owner=helm,status in (pending-install,pending-upgrade)",
        )
        return any(image.endswith(f":{tag}") for image in images) and not pending

    wait_until(done, f"Helm to roll out {name}:{tag}")


@pytest.fixture(scope="session")
def registry() -> Iterator[Any]:
    remote = os.environ.get("DAGSTER_UC_E2E_REGISTRY")
    if real_context() and remote:
        yield RemoteRegistry(remote)
        return
    with LocalRegistry() as reg:
        yield reg


@pytest.fixture
def kube(request: pytest.FixtureRequest, tools: Tools, tmp_path: Path) -> Iterator[KubeEnv]:
    """The emulator's fresh namespace, or with DAGSTER_UC_E2E_CONTEXT one on a real cluster
    (see stack/real_cluster.py)."""
    context = real_context()
    if context is None:
        backend = "control_plane" if e2e_backend() == "real" else "emulator"
        with seeded_namespace(request.getfixturevalue(backend), tmp_path) as env:
            yield env
        return
    kubeconfig = Path(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0])
    cluster = KubectlCluster(context, kubectl=str(tools.kubectl), kubeconfig=str(kubeconfig))
    with seeded_namespace(
        cluster, tmp_path, kubeconfig=kubeconfig.expanduser(), context=context
    ) as env:
        yield env


@pytest.fixture(params=[4], ids=["helm4"])
def helm_major(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def stack(
    kube: KubeEnv,
    registry: LocalRegistry,
    tools: Tools,
    tool_env: dict[str, str],
    base_image: str,
    helm_major: int,
    tmp_path: Path,
) -> Stack:
    """A checkout of the demo project on branch feat/hello, configured for this test's namespace."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "helm").symlink_to(tools.helm3 if helm_major == 3 else tools.helm4)
    # tool_env is the clean environment (stack.pytest_plugin.clean_environ): private HOME, no
    # config-key variables, no GIT_*, no proxies. Every subprocess below (dagster-uc, git,
    # helm) runs with it.
    env = dict(tool_env)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    (tmp_path / "run").mkdir()
    project = tmp_path / "project"
    shutil.copytree(DEMO_PROJECT, project)
    stack = Stack(kube, registry, env, project, prefix=f"e2e-{uuid.uuid4().hex[:8]}")
    stack.write_config()
    stack.git("init", "-q", "-b", "feat/hello")
    stack.git("add", "-A")
    stack.git("commit", "-qm", "initial")
    return stack
