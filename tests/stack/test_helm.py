"""The real Helm 3.17 and Helm 4.1 rolling the user-code chart out on the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stack.chart import RELEASE, deployment_entry, write_values
from stack.clients import Runner, exists, get_json
from stack.pytest_plugin import KubeEnv

pytestmark = pytest.mark.stack

FULL = "dagster-user-code-dagster-user-deployments"
entry = deployment_entry


def values_file(tmp_path: Path, name: str, *entries: dict[str, Any]) -> str:
    return str(write_values(tmp_path / name, *entries))


def upgrade(helm: Runner, chart: Path | str, values: str, *extra: str, check: bool = True) -> Any:
    return helm(
        "upgrade", "--install", RELEASE, str(chart), "--values", values, "--wait",
        "--timeout", "120s", *extra, check=check,
    )  # fmt: skip


def history(helm: Runner) -> list[dict[str, Any]]:
    return list(json.loads(helm("history", RELEASE, "-o", "json").stdout))


def image_of(kubectl: Runner, name: str) -> str:
    dep = get_json(kubectl, "deployment", f"{FULL}-{name}")
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def test_install_upgrade_history_rollback_uninstall(
    helm: Runner, kubectl: Runner, user_code_chart: Path, tmp_path: Path
) -> None:
    v1 = values_file(
        tmp_path,
        "v1.yaml",
        entry(
            "loc-a", "1", nodeSelector={"agentpool": "pool1"}, env=[{"name": "FOO", "value": "x"}]
        ),
        entry("loc-b", "1"),
    )
    upgrade(helm, user_code_chart, v1)
    managed = get_json(kubectl, "deployment", f"{FULL}-loc-a", "--show-managed-fields")
    operations = {
        (m["manager"], m["operation"]) for m in managed["metadata"].get("managedFields", [])
    }
    if "v4." in helm("version", "--short").stdout:
        assert ("helm", "Apply") in operations, "Helm 4 must install with server-side apply"
    for name in ("loc-a", "loc-b"):
        dep = get_json(kubectl, "deployment", f"{FULL}-{name}")
        assert dep["metadata"]["labels"]["deployment"] == name
        conditions = {c["type"]: c["status"] for c in dep["status"]["conditions"]}
        assert conditions.get("Available") == "True"
        assert dep["status"].get("readyReplicas") == 1
        svc = get_json(kubectl, "service", name)
        assert svc["spec"]["clusterIP"] and svc["spec"]["ports"][0]["port"] == 3030
    assert get_json(kubectl, "pods", "-l", "deployment=loc-a")["items"]

    # Upgrade: new image for loc-a, its nodeSelector and env dropped, loc-b removed.
    v2 = values_file(tmp_path, "v2.yaml", entry("loc-a", "2"))
    upgrade(helm, user_code_chart, v2)
    assert image_of(kubectl, "loc-a") == "127.0.0.1:5000/uc:2"
    pod_spec = get_json(kubectl, "deployment", f"{FULL}-loc-a")["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod_spec or not pod_spec["nodeSelector"]
    env_names = {e["name"] for e in pod_spec["containers"][0].get("env", [])}
    assert "FOO" not in env_names
    assert not exists(kubectl, "deployment", f"{FULL}-loc-b")
    assert not exists(kubectl, "service", "loc-b")
    assert exists(kubectl, "service", "loc-a")

    revisions = history(helm)
    assert [r["revision"] for r in revisions] == [1, 2]
    assert revisions[-1]["status"] == "deployed"

    helm("rollback", RELEASE, "1", "--wait", "--timeout", "120s")
    assert image_of(kubectl, "loc-a") == "127.0.0.1:5000/uc:1"
    assert exists(kubectl, "deployment", f"{FULL}-loc-b")
    assert exists(kubectl, "service", "loc-b")
    assert [r["revision"] for r in history(helm)] == [1, 2, 3]

    listed = json.loads(helm("list", "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in listed] == [(RELEASE, "deployed")]
    values = json.loads(helm("get", "values", RELEASE, "-o", "json").stdout)
    assert [d["name"] for d in values["deployments"]] == ["loc-a", "loc-b"]

    helm("uninstall", RELEASE, "--wait")
    assert json.loads(helm("list", "-o", "json").stdout) == []
    for name in ("loc-a", "loc-b"):
        assert not exists(kubectl, "deployment", f"{FULL}-{name}")
        assert not exists(kubectl, "service", name)


def test_wait_times_out_on_unready_pod(
    helm: Runner, kubectl: Runner, kube: KubeEnv, user_code_chart: Path, tmp_path: Path
) -> None:
    upgrade(helm, user_code_chart, values_file(tmp_path, "ok.yaml", entry("good", "1")))
    kube.emulator.hold_unready(kube.namespace, "deployment=broken")
    try:
        bad = values_file(tmp_path, "bad.yaml", entry("good", "1"), entry("broken", "1"))
        result = helm(
            "upgrade", RELEASE, str(user_code_chart), "--values", bad, "--wait", "--timeout", "4s",
            check=False,
        )  # fmt: skip
        assert result.returncode != 0
        message = result.stderr.lower()
        assert "timed out" in message or "deadline" in message or "context" in message, message
        assert history(helm)[-1]["status"] == "failed"

        helm("rollback", RELEASE, "1", "--wait", "--timeout", "120s")
        assert not exists(kubectl, "deployment", f"{FULL}-broken")
        assert history(helm)[-1]["status"] == "deployed"
    finally:
        kube.emulator.release_unready(kube.namespace, "deployment=broken")
    upgrade(
        helm,
        user_code_chart,
        values_file(tmp_path, "again.yaml", entry("good", "1"), entry("broken", "1")),
    )
    assert get_json(kubectl, "deployment", f"{FULL}-broken")["status"]["readyReplicas"] == 1
