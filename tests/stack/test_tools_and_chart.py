"""Provisioned tools and the user-code chart's rendering (no cluster needed)."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.chart import CHART_DIR, package_chart
from stack.tools import Tools, ensure_tools

pytestmark = pytest.mark.stack


def _out(*cmd: str | Path) -> str:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=True).stdout


def test_tool_versions(tools: Tools) -> None:
    assert _out(tools.helm3, "version", "--short").startswith("v3.17.2")
    assert _out(tools.helm4, "version", "--short").startswith("v4.1.4")
    assert "v1.32.3" in _out(tools.kubectl, "version", "--client")
    assert "v1.35.2" in _out(tools.kubectl135, "version", "--client")
    for name in ("helm", "helm3", "helm4", "kubectl"):
        assert os.access(tools.bin_dir / name, os.X_OK)
    assert (tools.bin_dir / "helm").resolve() == tools.helm4.resolve()


def test_ensure_tools_reuses_the_cache(tools: Tools) -> None:
    before = {p: p.stat().st_mtime_ns for p in (tools.helm3, tools.helm4, tools.kubectl)}
    again = ensure_tools()
    assert again == tools
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_tools_env_puts_bin_dir_first(tools: Tools) -> None:
    env = tools.env({"PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep)[0] == str(tools.bin_dir)
    found = subprocess.run(
        ["sh", "-c", "command -v helm"],
        env=env | {"PATH": env["PATH"]},
        capture_output=True,
        text=True,
    )
    assert found.stdout.strip() == str(tools.bin_dir / "helm")


VALUES: dict[str, Any] = {
    "deployments": [
        {
            "name": "loc-a",
            "image": {"repository": "127.0.0.1:5000/uc", "tag": "7", "pullPolicy": "IfNotPresent"},
            "dagsterApiGrpcArgs": ["-f", "/app/definitions.py"],
            "port": 3030,
            "env": [{"name": "FOO", "value": "bar"}],
            "envSecrets": [{"name": "team-secret"}],
            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}},
            "nodeSelector": {"pool": "gpu"},
            "tolerations": [
                {"key": "pool", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
            ],
            "affinity": {"nodeAffinity": {}},
            "annotations": {"dagster-uc/deployed-by": "alice"},
            "labels": {"team": "data"},
            "readinessProbe": {"enabled": True, "periodSeconds": 5},
        },
        {
            "name": "loc-b",
            "image": {"repository": "r/uc", "tag": 12, "pullPolicy": "Always"},
            "dagsterApiGrpcArgs": ["-m", "pkg"],
            "port": 3030,
            "env": {"A": "1"},
            "readinessProbe": {"enabled": False},
        },
    ],
    "imagePullSecrets": [{"name": "regcred"}],
}


def render(
    tmp_path: Path, helm: Path, values: dict[str, Any], release: str = "dagster-user-code"
) -> list[dict[str, Any]]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    out = _out(helm, "template", release, CHART_DIR, "-n", "dagster", "--values", values_file)
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.mark.parametrize("which", ["helm3", "helm4"])
def test_chart_renders_dagster_objects(tools: Tools, tmp_path: Path, which: str) -> None:
    docs = by_kind_name(render(tmp_path, getattr(tools, which), VALUES))
    full = "dagster-user-code-dagster-user-deployments"
    dep = docs[("Deployment", f"{full}-loc-a")]
    svc = docs[("Service", "loc-a")]
    assert ("Deployment", f"{full}-loc-b") in docs and ("Service", "loc-b") in docs
    assert dep["metadata"]["labels"]["deployment"] == "loc-a"
    assert dep["metadata"]["labels"]["team"] == "data"
    assert dep["metadata"]["annotations"]["dagster-uc/deployed-by"] == "alice"
    assert dep["spec"]["selector"]["matchLabels"]["deployment"] == "loc-a"
    pod = dep["spec"]["template"]
    assert pod["metadata"]["annotations"]["dagster-uc/deployed-by"] == "alice"
    spec = pod["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"pool": "gpu"}
    assert spec["tolerations"][0]["value"] == "gpu"
    container = spec["containers"][0]
    assert container["image"] == "127.0.0.1:5000/uc:7"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"] == [
        "dagster",
        "api",
        "grpc",
        "-h",
        "0.0.0.0",
        "-p",
        "3030",
        "-f",
        "/app/definitions.py",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["DAGSTER_CURRENT_IMAGE"]["value"] == "127.0.0.1:5000/uc:7"
    assert env["FOO"]["value"] == "bar"
    assert {"secretRef": {"name": "team-secret"}} in container["envFrom"]
    assert container["resources"] == {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}}
    assert container["readinessProbe"]["exec"]["command"] == [
        "dagster",
        "api",
        "grpc-health-check",
        "-p",
        "3030",
    ]
    assert container["readinessProbe"]["periodSeconds"] == 5
    assert svc["spec"]["ports"][0]["port"] == 3030
    assert svc["spec"]["selector"]["deployment"] == "loc-a"
    assert svc["metadata"]["labels"]["deployment"] == "loc-a"

    other = docs[("Deployment", f"{full}-loc-b")]["spec"]["template"]["spec"]["containers"][0]
    assert other["image"] == "r/uc:12"
    assert "readinessProbe" not in other
    assert docs[("ConfigMap", f"{full}-loc-b-user-env")]["data"] == {"A": "1"}


def test_chart_fullname_and_map_form(tools: Tools, tmp_path: Path) -> None:
    values = {"deployments": {"loc-z": {"image": {"repository": "r/z", "tag": "1"}, "port": 3030}}}
    docs = by_kind_name(
        render(tmp_path, tools.helm4, values, release="my-dagster-user-deployments")
    )
    dep = docs[("Deployment", "my-dagster-user-deployments-loc-z")]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    probe = container["readinessProbe"]
    assert probe["exec"]["command"][-1] == "3030" and probe["failureThreshold"] == 15
    assert "args" not in container


def test_chart_changes_pod_template_when_values_change(tools: Tools, tmp_path: Path) -> None:
    def checksum(tag: str) -> str:
        values = {
            "deployments": [{"name": "a", "image": {"repository": "r", "tag": tag}, "port": 3030}]
        }
        dep = next(d for d in render(tmp_path, tools.helm4, values) if d["kind"] == "Deployment")
        return str(
            dep["spec"]["template"]["metadata"]["annotations"]["checksum/dagster-user-deployment"]
        )

    assert checksum("1") != checksum("2")


def test_package_chart_any_version(tools: Tools, tmp_path: Path) -> None:
    tgz = package_chart(tmp_path, "1.9.3")
    assert tgz.name == "dagster-user-deployments-1.9.3.tgz"
    with tarfile.open(tgz) as tar:
        member = tar.extractfile("dagster-user-deployments/Chart.yaml")
        assert member is not None
        chart = yaml.safe_load(member.read())
    assert chart["version"] == "1.9.3" and chart["appVersion"] == "1.9.3"
    lint = subprocess.run([str(tools.helm3), "lint", str(tgz)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize("which", ["helm3", "helm4"])
def test_chart_renders_role_rolebinding_and_service_account_by_default(
    tools: Tools, tmp_path: Path, which: str
) -> None:
    """Like Dagster's chart (`rbacEnabled: true`): whoever runs `helm upgrade` needs the rights
    to create these, so the stack must render them too."""
    docs = by_kind_name(render(tmp_path, getattr(tools, which), VALUES))
    full = "dagster-user-code-dagster-user-deployments"
    account = f"{full}-user-deployments"
    assert ("ServiceAccount", account) in docs
    role = docs[("Role", f"{full}-role")]
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): r["verbs"] for r in role["rules"]}
    assert rules[(("batch",), ("jobs", "jobs/status", "cronjobs"))] == ["*"]
    assert rules[(("",), ("pods", "pods/log", "pods/status"))] == ["*"]
    binding = docs[("RoleBinding", f"{full}-rolebinding")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": f"{full}-role",
    }

    off = by_kind_name(render(tmp_path, getattr(tools, which), {**VALUES, "rbacEnabled": False}))
    assert not {kind for kind, _ in off} & {"Role", "RoleBinding"}


def test_the_documented_role_holds_every_right_the_charts_role_grants(
    tools: Tools, tmp_path: Path
) -> None:
    """Kubernetes refuses to let `helm upgrade` create a Role granting rights its user lacks."""
    role_file = Path(__file__).resolve().parents[2] / "docs" / "rbac" / "dagster-uc-role.yaml"
    ours = next(d for d in yaml.safe_load_all(role_file.read_text()) if d["kind"] == "Role")
    chart_role = next(d for d in render(tmp_path, tools.helm4, VALUES) if d["kind"] == "Role")

    def holds(group: str, resource: str, verb: str) -> bool:
        return any(
            group in rule["apiGroups"]
            and resource in rule["resources"]
            and ("*" in rule["verbs"] or verb in rule["verbs"])
            for rule in ours["rules"]
        )

    lacking = [
        (group, resource, verb)
        for rule in chart_role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if not holds(group, resource, verb)
    ]
    assert lacking == []
