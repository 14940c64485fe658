"""The real kubectl 1.32 against the emulator."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from stack.clients import Runner, get_json
from stack.pytest_plugin import KubeEnv

pytestmark = pytest.mark.stack


def deployment(name: str, image: str = "busybox:1", labels: dict[str, str] | None = None) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, **(labels or {})}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def write(tmp_path: Path, name: str, obj: dict) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(obj))
    return str(path)


def configmap(name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": data,
    }


def test_create_get_delete(kubectl: Runner, tmp_path: Path) -> None:
    manifest = write(tmp_path, "cm.yaml", configmap("cm1", {"a": "1"}, {"tier": "x"}))
    kubectl("create", "-f", manifest)
    got = get_json(kubectl, "configmap", "cm1")
    meta = got["metadata"]
    assert got["data"] == {"a": "1"}
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"]
    again = kubectl("create", "-f", manifest, check=False)
    assert again.returncode != 0 and "AlreadyExists" in again.stderr + again.stdout
    assert "cm1" in kubectl("get", "configmaps", "-l", "tier in (x,y)", "-o", "name").stdout
    assert "cm1" not in kubectl("get", "configmaps", "-l", "tier!=x", "-o", "name").stdout
    names = kubectl("get", "configmaps", "--field-selector", "metadata.name=cm1", "-o", "name")
    assert names.stdout.strip() == "configmap/cm1"
    kubectl("delete", "configmap", "cm1")
    missing = kubectl("get", "configmap", "cm1", check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_create_configmap_secret_namespace_protobuf(kubectl: Runner, kube: KubeEnv) -> None:
    """`kubectl create configmap/secret/namespace` send protobuf bodies."""
    kubectl("create", "configmap", "literal", "--from-literal=key=value", "--from-literal=k2=v2")
    assert get_json(kubectl, "configmap", "literal")["data"] == {"key": "value", "k2": "v2"}
    kubectl("create", "secret", "generic", "sec", "--from-literal=password=s3cret")
    secret = get_json(kubectl, "secret", "sec")
    assert secret["data"]["password"] == "czNjcmV0"
    ns = f"{kube.namespace}-extra"
    kubectl("create", "namespace", ns)
    assert get_json(kubectl, "namespace", ns)["metadata"]["name"] == ns
    kubectl("delete", "namespace", ns, "--wait=false")


def test_apply_client_and_server_side(kubectl: Runner, tmp_path: Path) -> None:
    kubectl("apply", "-f", write(tmp_path, "d1.yaml", deployment("web", labels={"v": "1"})))
    kubectl("apply", "-f", write(tmp_path, "d2.yaml", deployment("web", "busybox:2", {"v": "2"})))
    got = get_json(kubectl, "deployment", "web")
    assert got["metadata"]["labels"]["v"] == "2"
    assert got["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:2"
    assert got["metadata"]["generation"] == 2

    cm = configmap("ssa", {"a": "1", "b": "2"})
    kubectl("apply", "--server-side", "--field-manager", "me", "-f", write(tmp_path, "s1.yaml", cm))
    cm["data"] = {"a": "1"}
    kubectl("apply", "--server-side", "--field-manager", "me", "-f", write(tmp_path, "s2.yaml", cm))
    assert get_json(kubectl, "configmap", "ssa")["data"] == {"a": "1"}


def test_patch_merge_json_strategic(kubectl: Runner, tmp_path: Path) -> None:
    kubectl("apply", "-f", write(tmp_path, "d.yaml", deployment("patched")))
    kubectl(
        "patch",
        "deployment",
        "patched",
        "--type",
        "merge",
        "-p",
        '{"metadata":{"labels":{"m":"1"}}}',
    )
    kubectl(
        "patch",
        "deployment",
        "patched",
        "--type",
        "json",
        "-p",
        '[{"op":"add","path":"/metadata/annotations","value":{"j":"2"}}]',
    )
    strategic = {
        "spec": {"template": {"spec": {"containers": [{"name": "side", "image": "side:1"}]}}}
    }
    kubectl("patch", "deployment", "patched", "--type", "strategic", "-p", json.dumps(strategic))
    got = get_json(kubectl, "deployment", "patched")
    assert got["metadata"]["labels"]["m"] == "1"
    assert got["metadata"]["annotations"]["j"] == "2"
    names = sorted(c["name"] for c in got["spec"]["template"]["spec"]["containers"])
    assert names == ["main", "side"], "strategic merge must merge containers by name"


def test_replace_and_stale_resource_version_conflict(kubectl: Runner, tmp_path: Path) -> None:
    kubectl("create", "-f", write(tmp_path, "cm.yaml", configmap("rep", {"a": "1"})))
    current = get_json(kubectl, "configmap", "rep")
    stale = json.loads(json.dumps(current))
    current["data"] = {"a": "2"}
    kubectl("replace", "-f", write(tmp_path, "cur.json", current))
    assert get_json(kubectl, "configmap", "rep")["data"] == {"a": "2"}
    stale["data"] = {"a": "stale"}
    result = kubectl("replace", "-f", write(tmp_path, "stale.json", stale), check=False)
    assert result.returncode != 0
    assert "the object has been modified" in result.stderr
    assert get_json(kubectl, "configmap", "rep")["data"] == {"a": "2"}


def test_stale_put_is_409_conflict_status(kube: KubeEnv, kubectl: Runner, tmp_path: Path) -> None:
    kubectl("create", "-f", write(tmp_path, "cm.yaml", configmap("raw", {"a": "1"})))
    obj = get_json(kubectl, "configmap", "raw")
    stale_rv = obj["metadata"]["resourceVersion"]
    kubectl("patch", "configmap", "raw", "--type", "merge", "-p", '{"data":{"a":"2"}}')
    obj["data"] = {"a": "3"}
    obj["metadata"]["resourceVersion"] = stale_rv
    url = f"{kube.emulator.url}/api/v1/namespaces/{kube.namespace}/configmaps/raw"
    request = urllib.request.Request(
        url,
        data=json.dumps(obj).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 409
    status = json.loads(caught.value.read())
    assert status["kind"] == "Status" and status["reason"] == "Conflict" and status["code"] == 409


def test_rollout_restart_status_and_logs(kubectl: Runner, kube: KubeEnv, tmp_path: Path) -> None:
    kubectl("apply", "-f", write(tmp_path, "d.yaml", deployment("roll")))
    kubectl("rollout", "status", "deployment/roll", "--timeout=120s")
    kubectl("rollout", "restart", "deployment/roll")
    got = get_json(kubectl, "deployment", "roll")
    assert "kubectl.kubernetes.io/restartedAt" in got["spec"]["template"]["metadata"]["annotations"]
    kubectl("rollout", "status", "deployment/roll", "--timeout=120s")
    replicasets = get_json(kubectl, "replicasets", "-l", "app=roll")["items"]
    assert len(replicasets) == 2
    owners = {rs["metadata"]["ownerReferences"][0]["name"] for rs in replicasets}
    assert owners == {"roll"}
    pods = get_json(kubectl, "pods", "-l", "app=roll")["items"]
    ready = [p for p in pods if p["status"].get("phase") == "Running"]
    assert ready
    kubectl("logs", f"pod/{ready[0]['metadata']['name']}")
    kubectl("logs", "deployment/roll")


def test_rollout_status_times_out_on_unready_pod(
    kubectl: Runner, kube: KubeEnv, tmp_path: Path
) -> None:
    kube.emulator.hold_unready(kube.namespace, "app=stuck")
    try:
        kubectl("apply", "-f", write(tmp_path, "d.yaml", deployment("stuck")))
        result = kubectl("rollout", "status", "deployment/stuck", "--timeout=3s", check=False)
        assert result.returncode != 0
    finally:
        kube.emulator.release_unready(kube.namespace, "app=stuck")
    kubectl("rollout", "status", "deployment/stuck", "--timeout=120s")


def test_seeded_dagster_instance_is_visible(kubectl: Runner) -> None:
    deployments = get_json(kubectl, "deployments")["items"]
    assert any("daemon" in d["metadata"]["name"] for d in deployments)
    assert any("webserver" in d["metadata"]["name"] for d in deployments)
