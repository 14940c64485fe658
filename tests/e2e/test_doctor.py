"""`dagster-uc doctor` on the local stack: all green, then one failure of each kind, each
reported with its fix and exit code 1, and nothing changed on the cluster."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dagster_uc.azure import ACR_USERNAME
from stack.chart import serve_chart_repo
from stack.controlplane.fixtures import e2e_backend
from stack.registry import LocalRegistry, free_port
from tests.e2e.conftest import Result, Stack
from tests.e2e.test_rbac import bind_account, documented_role

pytestmark = pytest.mark.e2e


def checks(result: Result) -> dict[str, dict[str, Any]]:
    document = json.loads(result.stdout)
    return {c["name"]: c for c in document["checks"]}


def doctor_json(stack: Stack, **kwargs: Any) -> tuple[Result, dict[str, dict[str, Any]]]:
    result = stack.run("doctor", "-o", "json", **kwargs)
    return result, checks(result)


def line_of(result: Result, name: str) -> str:
    """The text line of check `name` and its fix line(s)."""
    lines = result.stdout.splitlines()
    for i, line in enumerate(lines):
        if line.split()[1:2] == [name]:
            following = [x for x in lines[i + 1 : i + 4] if x.startswith(" ") and x.strip()]
            return "\n".join([line, *following])
    raise AssertionError(f"no line for {name} in:\n{result.stdout}")


def failed_only(found: dict[str, dict[str, Any]], *names: str) -> None:
    bad = {n for n, c in found.items() if c["status"] == "failed"}
    assert bad == set(names), {n: found[n]["message"] for n in bad}


def snapshot(stack: Stack) -> Any:
    """What doctor must never change: the state objects (resourceVersions) and the
    Deployments' specs (generations; their status moves with the pods)."""
    emu = stack.emulator
    state = {
        (kind, o["metadata"]["name"], o["metadata"]["resourceVersion"])
        for kind, group in (
            ("configmaps", "v1"),
            ("leases", "coordination.k8s.io/v1"),
            ("secrets", "v1"),
        )
        for o in emu.list(group, kind, stack.namespace)
    }
    specs = {
        (o["metadata"]["name"], o["metadata"].get("generation"))
        for o in emu.list("apps/v1", "deployments", stack.namespace)
    }
    return state, specs


def workspace_rendered_by_the_dagster_release(stack: Stack) -> None:
    """The workspace ConfigMap as Dagster's chart leaves it by default: owned by its release."""
    annotations = {
        "meta.helm.sh/release-name": "dagster",
        "meta.helm.sh/release-namespace": stack.namespace,
    }
    stack.emulator.patch(
        "v1",
        "configmaps",
        stack.namespace,
        "dagster-workspace-yaml",
        {"metadata": {"annotations": annotations}},
    )


def test_workspace_rendered_by_the_dagster_release_is_a_warning(stack: Stack) -> None:
    """As Dagster's chart leaves it by default: the release's next upgrade would reset it."""
    workspace_rendered_by_the_dagster_release(stack)
    result = stack.run("doctor")
    assert result.returncode == 0, result.output
    line = line_of(result, "workspace-configmap")
    assert line.startswith("warning")
    assert "rendered by Helm release dagster" in line
    assert "fix: 1. Keep the ConfigMap" in line
    assert result.stdout.strip().endswith(
        "Ready to deploy, with 1 warning(s) (workspace-configmap)."
    )


def test_all_green_text_and_json(stack: Stack) -> None:
    before = snapshot(stack)
    result = stack.run("doctor")
    assert result.returncode == 0, result.output
    assert "failed" not in result.stdout
    assert result.stdout.strip().endswith("All checks passed: ready to deploy.")
    assert "\x1b[" not in result.stdout  # not a terminal: no escape codes
    assert line_of(result, "dagster-daemon").startswith("ok")
    assert "runs Dagster 1.8.4" in line_of(result, "dagster-daemon")
    assert "permissions dagster-uc needs" in line_of(result, "permissions")

    result, found = doctor_json(stack)
    assert result.returncode == 0
    document = json.loads(result.stdout)
    assert document["ok"] is True and document["environment"] == "dev"
    from dagster_uc.doctor import CHECKS

    assert [c["name"] for c in document["checks"]] == list(CHECKS)
    assert {c["status"] for c in document["checks"]} == {"ok"}, document
    assert all(c["message"] for c in document["checks"])
    assert "plain HTTP (loopback)" in found["registry"]["message"]
    assert "pull and push" in found["registry-credentials"]["message"]
    assert re.search(r"Kubernetes v1\.\d+", found["api-server"]["message"])
    assert found["lock"]["message"].endswith("is free")
    assert snapshot(stack) == before


def test_after_a_deploy_the_state_is_described(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    _, found = doctor_json(stack)
    assert "1 deployment(s), state of dagster-uc" in found["values-configmap"]["message"]
    assert "written by dagster-uc" in found["values-configmap"]["message"]
    assert "1 location(s)" in found["workspace-configmap"]["message"]


def test_unknown_context(stack: Stack) -> None:
    stack.write_config(kubernetes_context="no-such-context")
    result = stack.run("doctor")
    assert result.returncode == 1, result.output
    line = line_of(result, "kube-context")
    assert line.startswith("failed")
    assert "no-such-context" in line and "fix kubernetes_context in the config" in line.lower()
    _, found = doctor_json(stack)
    failed_only(found, "kube-context")
    assert found["namespace"]["status"] == "skipped"


def test_api_server_down(stack: Stack, tmp_path: Path) -> None:
    dead = tmp_path / "dead-kubeconfig"
    port = free_port()
    dead.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "dead", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "dead", "user": {}}],
                "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "dead"}}],
            }
        )
    )
    stack.write_config(kubernetes_context="dead")
    env = {"KUBECONFIG": f"{stack.env['KUBECONFIG']}{os.pathsep}{dead}"}
    result, found = doctor_json(stack, env=env)
    assert result.returncode == 1
    failed_only(found, "api-server")
    assert "cannot reach the Kubernetes API server" in found["api-server"]["message"]
    assert "kubectl --context dead get --raw /version" in found["api-server"]["fix"]
    assert found["permissions"]["status"] == "skipped"


def test_missing_namespace(stack: Stack) -> None:
    stack.write_config(namespace="no-such-namespace")
    result = stack.run("doctor")
    assert result.returncode == 1
    line = line_of(result, "namespace")
    assert "namespace no-such-namespace does not exist" in line
    assert "Fix `namespace` in the config" in line
    _, found = doctor_json(stack)
    failed_only(found, "namespace")
    assert found["dagster-daemon"]["status"] == "skipped"


def test_wrong_dagster_version(stack: Stack) -> None:
    stack.write_config(dagster_version="1.9.0")
    result = stack.run("doctor")
    assert result.returncode == 1
    line = line_of(result, "dagster-daemon")
    assert "runs Dagster 1.8.4, the config says 1.9.0" in line
    assert "Set dagster_version: '1.8.4' in the config" in line
    _, found = doctor_json(stack)
    failed_only(found, "dagster-webserver", "dagster-daemon")


def test_missing_permission_is_named(stack: Stack, tmp_path: Path) -> None:
    """On the real control plane: a ServiceAccount bound to the documented Role without
    `patch deployments` and `* pods/log`. The emulator has no RBAC: its
    SelfSubjectAccessReview denies what a test lists instead."""
    if e2e_backend() == "real":
        role, _ = documented_role()
        role = copy.deepcopy(role)
        for rule in role["rules"]:
            if rule["resources"] == ["deployments"]:
                rule["verbs"] = [v for v in rule["verbs"] if v != "patch"]
            if "pods/log" in rule["resources"]:
                rule["resources"] = [r for r in rule["resources"] if r != "pods/log"]
        env = bind_account(stack, role, tmp_path)
        result = stack.run("doctor", env=env)
    else:
        stack.emulator.denied_access.update({("patch", "deployments"), ("*", "pods/log")})
        try:
            result = stack.run("doctor")
        finally:
            stack.emulator.denied_access.clear()
    assert result.returncode == 1
    line = line_of(result, "permissions")
    assert "2 of" in line and "patch deployments.apps" in line and "* pods/log" in line
    assert "docs/permissions.md" in line


@pytest.mark.skipif(e2e_backend() != "real", reason="RBAC needs a real API server")
def test_the_documented_role_passes_doctor(stack: Stack, tmp_path: Path) -> None:
    """Bound to exactly the documented Role: every permission is there; the namespace cannot
    be read with a namespaced Role, which is a warning, not a failure."""
    role, _ = documented_role()
    env = bind_account(stack, role, tmp_path)
    result, found = doctor_json(stack, env=env)
    assert result.returncode == 0, {
        n: c["message"] for n, c in found.items() if c["status"] != "ok"
    }
    assert found["permissions"]["status"] == "ok"
    assert found["namespace"]["status"] == "warning"
    assert "not allowed to read Namespace" in found["namespace"]["message"]


def test_registry_down(stack: Stack) -> None:
    stack.write_config(container_registry=f"127.0.0.1:{free_port()}")
    result = stack.run("doctor")
    assert result.returncode == 1
    line = line_of(result, "registry")
    assert "cannot reach registry 127.0.0.1:" in line
    assert "Check container_registry" in line
    _, found = doctor_json(stack)
    failed_only(found, "registry")
    assert found["registry-credentials"]["status"] == "skipped"


@pytest.fixture(scope="module")
def login_registry() -> Any:
    with LocalRegistry("htpasswd") as registry:
        yield registry


def test_registry_credentials(stack: Stack, login_registry: LocalRegistry, tmp_path: Path) -> None:
    stack.write_config(container_registry=login_registry.host)
    auth = tmp_path / "auth.json"
    env = {"REGISTRY_AUTH_FILE": str(auth)}

    auth.write_text(json.dumps({"auths": {login_registry.host: login_registry.auth_entry()}}))
    result, found = doctor_json(stack, env=env)
    assert result.returncode == 0, result.stdout
    assert f"login from {auth}" in found["registry-credentials"]["message"]

    auth.write_text(
        json.dumps({"auths": {login_registry.host: login_registry.auth_entry("wrong")}})
    )
    result = stack.run("doctor", env=env)
    assert result.returncode == 1
    line = line_of(result, "registry-credentials")
    assert "refused access" in line and "HTTP 401" in line
    assert f"podman login {login_registry.host}" in line
    assert "wrong" not in result.output and login_registry.password not in result.output
    _, found = doctor_json(stack, env=env)
    failed_only(found, "registry-credentials")
    assert found["registry"]["status"] == "ok"


def test_helm_missing_from_path(stack: Stack, tmp_path: Path) -> None:
    path = [
        d for d in stack.env["PATH"].split(os.pathsep) if d and shutil.which("helm", path=d) is None
    ]
    assert shutil.which("podman", path=os.pathsep.join(path))
    result = stack.run("doctor", env={"PATH": os.pathsep.join(path)})
    assert result.returncode == 1
    line = line_of(result, "helm")
    assert "helm is not on PATH" in line and "Install Helm 3 or 4" in line
    _, found = doctor_json(stack, env={"PATH": os.pathsep.join(path)})
    failed_only(found, "helm")
    assert found["chart"]["status"] == "skipped"


def test_bad_config_is_one_failed_check(stack: Stack) -> None:
    (stack.project / ".config_user_code_deployments.yaml").write_text("dev:\n  namspace: x\n")
    result = stack.run("doctor")
    assert result.returncode == 1
    assert line_of(result, "config").startswith("failed")
    assert "did you mean 'namespace'" in result.stdout
    _, found = doctor_json(stack)
    failed_only(found, "config")
    assert {c["status"] for n, c in found.items() if n != "config"} == {"skipped"}


def test_chart_resolves_at_the_configured_version(stack: Stack, tmp_path: Path) -> None:
    with serve_chart_repo(tmp_path / "repo", ("1.8.3", "1.8.4"), helm=stack_helm(stack)) as url:
        stack.write_config(helm_chart_path=None, helm_chart_repository=url)
        result, found = doctor_json(stack)
    assert result.returncode == 0, found["chart"]
    assert "(chart version 1.8.4)" in found["chart"]["message"]

    with serve_chart_repo(tmp_path / "old", ("1.8.3",), helm=stack_helm(stack)) as url:
        stack.write_config(helm_chart_path=None, helm_chart_repository=url)
        result = stack.run("doctor")
    assert result.returncode == 1
    line = line_of(result, "chart")
    assert "version 1.8.4 does not resolve" in line
    assert "Check dagster_version" in line


def stack_helm(stack: Stack) -> Path:
    found = shutil.which("helm", path=stack.env["PATH"])
    assert found
    return Path(found)


FAKE_AZ = """#!{python}
import json, os, sys
if os.environ.get("FAKE_AZ_MODE") == "logged-out":
    sys.stderr.write("ERROR: Please run 'az login' to setup account.\\n")
    sys.exit(1)
if sys.argv[1:3] == ["account", "show"]:
    print(json.dumps({{"name": "team-subscription", "user": {{"name": "ann@example.com"}}}}))
elif sys.argv[1:3] == ["acr", "login"]:
    print(json.dumps({{"accessToken": "{token}", "loginServer": sys.argv[4]}}))
else:
    sys.exit(2)
"""


def test_use_az_login(stack: Stack, tmp_path: Path) -> None:
    """With use_az_login the registry is checked with the token `az acr login` hands out."""
    token = "acr-token-" + os.urandom(6).hex()
    bin_dir = tmp_path / "az-bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(FAKE_AZ.format(python=sys.executable, token=token))
    az.chmod(0o755)
    with LocalRegistry("htpasswd", username=ACR_USERNAME, password=token) as acr:
        stack.write_config(container_registry=acr.host, use_az_login=True)
        path = f"{bin_dir}{os.pathsep}{stack.env['PATH']}"
        result, found = doctor_json(stack, env={"PATH": path})
        assert result.returncode == 0, found
        assert found["az"]["message"] == "az is logged in as ann@example.com (team-subscription)"
        assert (
            "login from az acr login may pull and push" in found["registry-credentials"]["message"]
        )

        result = stack.run("doctor", env={"PATH": path, "FAKE_AZ_MODE": "logged-out"})
        assert result.returncode == 1
        assert "Run `az login`" in line_of(result, "az")
        assert line_of(result, "registry-credentials").startswith("failed")
        assert token not in result.output

    no_az = [d for d in stack.env["PATH"].split(os.pathsep) if d and not (Path(d) / "az").exists()]
    result, found = doctor_json(stack, env={"PATH": os.pathsep.join(no_az)})
    assert result.returncode == 1
    assert "Azure CLI (az) is not on PATH" in found["az"]["message"]
    assert "set use_az_login: false" in found["az"]["fix"]


def values_configmap(stack: Stack, text: str) -> None:
    stack.emulator.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "dagster-user-deployments-values-yaml",
                "namespace": stack.namespace,
            },
            "data": {"yaml": text},
        }
    )


def test_state_written_by_the_original_tool(stack: Stack) -> None:
    entry = {"name": "demo-project--legacy", "image": {"repository": "r/x", "tag": "1.8.4-0"}}
    values_configmap(stack, yaml.safe_dump({"deployments": [entry]}))
    _, found = doctor_json(stack)
    assert found["values-configmap"]["status"] == "ok"
    assert (
        "1 deployment(s), state of the original dagster-uc" in found["values-configmap"]["message"]
    )


def test_values_configmap_that_does_not_parse(stack: Stack) -> None:
    values_configmap(stack, "deployments: [unclosed\n")
    result = stack.run("doctor")
    assert result.returncode == 1
    line = line_of(result, "values-configmap")
    assert "does not parse" in line and "not valid YAML" in line
    assert (
        f"kubectl -n {stack.namespace} edit configmap dagster-user-deployments-values-yaml" in line
    )


def test_held_lock_is_a_warning_naming_its_holder(stack: Stack) -> None:
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    stack.emulator.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "dagster-uc-semaphore", "namespace": stack.namespace},
            "spec": {
                "holderIdentity": "anna@laptop pid=4242 id=1f3a9c0e",
                "acquireTime": now,
                "renewTime": now,
                "leaseDurationSeconds": 300,
            },
        }
    )
    result = stack.run("doctor")
    assert result.returncode == 0, result.output
    line = line_of(result, "lock")
    assert line.startswith("warning")
    assert "held by anna@laptop pid=4242 id=1f3a9c0e since" in line
    assert "dagster-uc lock release" in line
    _, found = doctor_json(stack)
    assert found["lock"]["details"]["lock"]["holder"] == "anna@laptop pid=4242 id=1f3a9c0e"
