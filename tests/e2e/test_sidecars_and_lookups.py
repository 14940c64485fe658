"""Pods as real clusters make them, end to end: a service-mesh proxy injected as the first
container, a location named like one of Dagster's own Deployments, a diagnosis without
permission on events and logs, and a self-built Dagster chart whose version label is `dev`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from stack.controlplane.fixtures import e2e_backend
from stack.emulator.controllers import MESH_IMAGE, MESH_INJECT, MESH_PROXY
from stack.real_cluster import real_context
from tests.e2e.conftest import Stack

NAME = "demo-project--feat-hello"
RELEASE_DEPLOYMENT = "dagster-user-code-dagster-user-deployments"


def _listed(stack: Stack, name: str) -> tuple[int, int]:
    """(ready pods, pods) of `name` in `deployment list -o json`."""
    listed = json.loads(stack.ok("deployment", "list", "-o", "json").stdout)
    rows = listed["deployments"] if isinstance(listed, dict) else listed
    row = next(r for r in rows if r["name"] == name)
    return row["ready"], row["pods"]


@pytest.fixture
def mesh(stack: Stack) -> Iterator[None]:
    """A service-mesh injector for the test's namespace: the emulator's (a namespace
    annotation), or on the real control plane a MutatingAdmissionPolicy that, like Linkerd's
    webhook, puts the proxy first in every new pod of the namespace."""
    if real_context():
        pytest.skip("needs a mesh injector the test can switch on")
    if e2e_backend() != "real":
        annotations = {"metadata": {"annotations": {MESH_INJECT: "enabled"}}}
        stack.emulator.patch("v1", "namespaces", None, stack.namespace, annotations)
        yield
        return
    name = f"mesh-{stack.namespace}"
    group = "admissionregistration.k8s.io/v1"
    proxy = f'Object.spec.containers{{name: "{MESH_PROXY}", image: "{MESH_IMAGE}"}}'
    patch = f'[JSONPatch{{op: "add", path: "/spec/containers/0", value: {proxy}}}]'
    rule = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE"],
        "resources": ["pods"],
    }
    policy = {
        "matchConstraints": {"resourceRules": [rule]},
        "failurePolicy": "Fail",
        "reinvocationPolicy": "Never",
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": patch}}],
    }
    namespace = {"matchLabels": {"kubernetes.io/metadata.name": stack.namespace}}
    binding = {"policyName": name, "matchResources": {"namespaceSelector": namespace}}
    for kind, spec in (
        ("MutatingAdmissionPolicy", policy),
        ("MutatingAdmissionPolicyBinding", binding),
    ):
        stack.emulator.create(
            {"apiVersion": group, "kind": kind, "metadata": {"name": name}, "spec": spec}
        )
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "mesh-probe-"},
        "spec": {"containers": [{"name": "probe", "image": "probe"}]},
    }
    pods = f"/api/v1/namespaces/{stack.namespace}/pods"
    with stack.emulator.plane.admin_client(timeout=30) as client:

        def injected() -> bool:  # a dry-run create runs admission
            created = client.post(pods, params={"dryRun": "All"}, json=probe)
            return created.json()["spec"]["containers"][0]["name"] == MESH_PROXY

        deadline = time.monotonic() + 60
        while not injected():
            assert time.monotonic() < deadline, "the mesh policy never took effect"
            time.sleep(0.2)
    try:
        yield
    finally:
        stack.emulator.delete(group, "mutatingadmissionpolicybindings", None, name)
        stack.emulator.delete(group, "mutatingadmissionpolicies", None, name)


def test_deploy_and_check_with_a_mesh_proxy_listed_first(stack: Stack, mesh: None) -> None:

    stack.ok("deployment", "deploy", "--timeout", "60")

    pods = stack.emulator.list("v1", "pods", stack.namespace, f"deployment={NAME}")
    assert [c["name"] for c in pods[0]["spec"]["containers"]] == [
        MESH_PROXY,
        "dagster-user-deployments",
    ]
    check = stack.ok("deployment", "check", "-n", NAME, "--timeout", "30")
    assert "Started Dagster code server" in check.output
    assert _listed(stack, NAME) == (1, 1)


def test_a_location_named_daemon_waits_for_its_own_pods_not_dagsters(stack: Stack) -> None:
    daemon = stack.emulator.get("apps/v1", "deployments", stack.namespace, "dagster-daemon")
    assert daemon is not None and daemon["metadata"]["labels"]["deployment"] == "daemon"

    result = stack.ok("deployment", "deploy", "-n", "daemon", "--timeout", "60")
    assert "did not become ready" not in result.output

    ours = stack.emulator.get(
        "apps/v1", "deployments", stack.namespace, f"{RELEASE_DEPLOYMENT}-daemon"
    )
    assert ours is not None and ours["status"].get("readyReplicas") == 1
    check = stack.ok("deployment", "check", "-n", "daemon", "--timeout", "30")
    assert f"Deployment {RELEASE_DEPLOYMENT}-daemon" in check.output
    assert "Deployment dagster-daemon" not in check.output
    assert _listed(stack, "daemon") == (1, 1), "Dagster's daemon pod is not counted"


def test_a_failed_rollout_keeps_its_reason_when_events_and_logs_are_forbidden(
    stack: Stack,
) -> None:
    stack.emulator.hold_unready(stack.namespace, f"deployment={NAME}")
    stack.emulator.inject_fault(
        "GET", f"/namespaces/{stack.namespace}/events$", status=403, times=None
    )
    stack.emulator.inject_fault("GET", "/pods/[^/]+/log$", status=403, times=None)

    result = stack.run("deployment", "deploy", "--timeout", "5")

    assert result.returncode == 1, result.output
    assert f"Code location {NAME} did not become ready: timed out after 5s" in result.stderr
    assert "Recent events: could not be read (the Kubernetes API answered 403" in result.output
    assert "Could not read the log of pod " in result.output


def test_a_self_built_dagster_chart_labelled_dev_is_no_version_mismatch(stack: Stack) -> None:
    """Neither the labels nor the image name a version: `dagster --version` in the daemon
    pod does, and the deploy goes on without a mismatch or a warning."""
    if real_context():
        pytest.skip("rewrites Dagster's own daemon Deployment")
    daemon = stack.emulator.get("apps/v1", "deployments", stack.namespace, "dagster-daemon")
    assert daemon is not None
    containers = daemon["spec"]["template"]["spec"]["containers"]
    for container in containers:
        container["image"] = "registry.example/team/dagster:dev"
    labels = {"app.kubernetes.io/version": "dev", "helm.sh/chart": "dagster-0.11.0"}
    patch = {
        "metadata": {"labels": labels},
        "spec": {"template": {"spec": {"containers": containers}}},
    }
    stack.emulator.patch("apps/v1", "deployments", stack.namespace, "dagster-daemon", patch)

    result = stack.ok("deployment", "deploy", "--timeout", "60")

    assert "mismatch" not in result.output
    assert "Could not read the cluster's Dagster version" not in result.output
