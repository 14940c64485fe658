"""The real control plane (stack/controlplane): how it is built, and that it behaves as the
tests need it to with the real kubectl: version, node, pods Ready, logs, exec, held pods,
injected faults and conflicts, and no process left behind."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.controlplane.build import (
    KUBERNETES,
    ensure_control_plane,
    kube_go_mod,
    staging_modules,
    staging_version,
    version_ldflags,
)
from stack.controlplane.client import RealCluster
from stack.controlplane.cluster import ControlPlane
from stack.emulator.dagster import seed_dagster
from stack.tools import Tools

pytestmark = pytest.mark.stack

UPSTREAM_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tgithub.com/spf13/cobra v1.10.2
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
\tk8s.io/streaming v0.0.0
\tk8s.io/utils v0.0.0-20260626114624-be93311217bd
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
)
"""


def test_every_staging_module_is_replaced_by_its_published_version() -> None:
    assert staging_modules(UPSTREAM_GO_MOD) == [
        "k8s.io/api",
        "k8s.io/client-go",
        "k8s.io/streaming",
    ]
    assert staging_version("v1.37.2") == "v0.37.2"
    go_mod = kube_go_mod("v1.37.2", UPSTREAM_GO_MOD)
    assert "require k8s.io/kubernetes v1.37.2" in go_mod
    assert "\tk8s.io/streaming => k8s.io/streaming v0.37.2" in go_mod
    assert "k8s.io/utils =>" not in go_mod  # a real pseudo-version, not a staging module
    assert "gitVersion=v1.37.2" in version_ldflags("v1.37.2")
    assert "gitMinor=37" in version_ldflags("v1.37.2")


def test_an_unknown_release_version_is_refused() -> None:
    with pytest.raises(RuntimeError, match="not a Kubernetes release"):
        staging_version("1.37")


def kubectl(tools: Tools, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools.kubectl), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


@pytest.fixture
def seeded(control_plane: RealCluster, tmp_path: Path) -> tuple[RealCluster, Path, str]:
    namespace = f"cp-{os.urandom(4).hex()}"
    seed_dagster(control_plane, namespace=namespace, dagster_version="1.8.4")
    kubeconfig = control_plane.write_kubeconfig(
        tmp_path / "kubeconfig", context="kind-dagster-test", namespace=namespace
    )
    yield control_plane, kubeconfig, namespace
    control_plane.delete("v1", "namespaces", None, namespace)


def ready_pod(cluster: RealCluster, namespace: str, selector: str) -> str | None:
    for pod in cluster.list("v1", "pods", namespace, label_selector=selector):
        conditions = pod.get("status", {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return str(pod["metadata"]["name"])
    return None


def test_a_seeded_dagster_instance_runs_and_answers_kubectl(
    seeded: tuple[RealCluster, Path, str], tools: Tools
) -> None:
    cluster, kubeconfig, namespace = seeded
    version = json.loads(kubectl(tools, kubeconfig, "version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == KUBERNETES
    nodes = kubectl(tools, kubeconfig, "get", "nodes", "-o", "json")
    assert [n["metadata"]["name"] for n in json.loads(nodes.stdout)["items"]] == ["kwok-node-0"]

    daemon = wait_until(
        lambda: ready_pod(cluster, namespace, "component=dagster-daemon"), "a ready daemon pod"
    )
    execd = kubectl(tools, kubeconfig, "exec", daemon, "--", "dagster", "--version")
    assert execd.returncode == 0 and execd.stdout == "dagster, version 1.8.4\n", execd.stderr
    logs = wait_until(
        lambda: kubectl(tools, kubeconfig, "logs", daemon).stdout, "the daemon's log", 30
    )
    assert "dagster.daemon" in logs


def test_held_pods_crash_loop_until_released(
    seeded: tuple[RealCluster, Path, str], tools: Tools
) -> None:
    cluster, kubeconfig, namespace = seeded
    cluster.hold_unready(namespace, "component=dagster-daemon")
    restarted = kubectl(tools, kubeconfig, "rollout", "restart", "deployment/dagster-daemon")
    assert restarted.returncode == 0, restarted.stderr

    def crash_looping() -> str | None:
        for pod in cluster.list("v1", "pods", namespace, label_selector="component=dagster-daemon"):
            for status in pod.get("status", {}).get("containerStatuses") or []:
                if (status.get("state", {}).get("waiting") or {}).get(
                    "reason"
                ) == "CrashLoopBackOff":
                    return str(pod["metadata"]["name"])
        return None

    pod = wait_until(crash_looping, "a crash-looping daemon pod")
    log = wait_until(lambda: kubectl(tools, kubeconfig, "logs", pod).stdout, "its log", 30)
    assert "Traceback (most recent call last)" in log

    cluster.release_unready(namespace, "component=dagster-daemon")
    status = kubectl(
        tools, kubeconfig, "rollout", "status", "deployment/dagster-daemon", "--timeout=60s"
    )
    assert status.returncode == 0, status.stdout + status.stderr


def test_faults_and_conflicts_come_from_the_proxy(seeded: tuple[RealCluster, Path, str]) -> None:
    cluster, _, namespace = seeded
    path = f"/api/v1/namespaces/{namespace}/configmaps/dagster-workspace-yaml"
    token = cluster.plane.pki.admin_token
    with httpx.Client(
        base_url=cluster.url,
        verify=cluster.plane.ssl_context(),
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
    ) as client:
        cluster.inject_fault("GET", f"{path}$", status=503, times=1)
        assert client.get(path).status_code == 503
        read = client.get(path)
        assert read.status_code == 200
        assert cluster.request_counts[("GET", path)] == 2

        cluster.inject_conflict(f"{path}$")
        stale = client.get(path).json()
        stale["data"]["workspace.yaml"] = "load_from: []\n# mine\n"
        refused = client.put(path, json=stale)
        assert refused.status_code == 409, refused.text
        assert refused.json()["reason"] == "Conflict"


def test_a_stopped_control_plane_leaves_no_process(tmp_path: Path) -> None:
    plane = ControlPlane(ensure_control_plane(), tmp_path / "plane").start()
    pids = [p.pid for p in plane.processes.values()]
    assert len(pids) == 5
    plane.stop()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
