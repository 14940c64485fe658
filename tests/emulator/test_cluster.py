"""Controllers, kubelet, holds, logs, exec, faults, conflicts, counts, and the lightkube client."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from stack.emulator import Emulator, ExecResult

from .conftest import CONTEXT, cm, deployment, wait_until

NS = "dagster"
DEPLOYS = "/apis/apps/v1/namespaces/dagster/deployments"
CODE_ARGS = [
    "dagster",
    "api",
    "grpc",
    "-h",
    "0.0.0.0",
    "-p",
    "3030",
    "-f",
    "/opt/dagster/app/defs.py",
]
STARTED = "dagster.code_server - INFO - Started Dagster code server for file /opt/dagster/app/defs.py on port 3030 in process 1"


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


def _available(emu: Emulator, name: str) -> dict[str, Any] | None:
    d = emu.get("apps/v1", "deployments", NS, name)
    conds = {c["type"]: c for c in (d or {}).get("status", {}).get("conditions", [])}
    ok = (
        d is not None
        and d["status"].get("observedGeneration") == d["metadata"]["generation"]
        and d["status"].get("availableReplicas") == d["spec"]["replicas"]
        and d["status"].get("replicas") == d["spec"]["replicas"]
        and conds.get("Progressing", {}).get("reason") == "NewReplicaSetAvailable"
        and conds.get("Available", {}).get("status") == "True"
    )
    return d if ok else None


def test_seeded_dagster_instance(emu: Emulator) -> None:
    daemon = emu.get("apps/v1", "deployments", NS, "dagster-daemon")
    web = emu.get("apps/v1", "deployments", NS, "dagster-dagster-webserver")
    assert daemon is not None and web is not None
    assert daemon["metadata"]["labels"] == {
        "helm.sh/chart": "dagster-1.8.4",
        "app.kubernetes.io/name": "dagster",
        "app.kubernetes.io/instance": "dagster",
        "app.kubernetes.io/version": "1.8.4",
        "app.kubernetes.io/managed-by": "Helm",
        "component": "dagster-daemon",
        "deployment": "daemon",
    }
    assert web["metadata"]["labels"]["component"] == "dagster-webserver"
    workspace = emu.get("v1", "configmaps", NS, "dagster-workspace-yaml")
    assert workspace is not None and workspace["data"] == {"workspace.yaml": "load_from: []\n"}
    pods = wait_until(
        lambda: [p for p in emu.list("v1", "pods", NS, "deployment=daemon") if _ready(p)],
        "a ready daemon pod",
    )
    assert pods[0]["metadata"]["labels"]["component"] == "dagster-daemon"


def test_deployment_to_replicaset_to_ready_pods(emu: Emulator, http: httpx.Client) -> None:
    http.post(DEPLOYS, json=deployment("chain", replicas=2))
    d = wait_until(lambda: _available(emu, "chain"), "deployment available")
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    (rs,) = emu.list("apps/v1", "replicasets", NS, "app=chain")
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"chain-{h}"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    assert rs["metadata"]["ownerReferences"][0]["controller"] is True
    pods = emu.list("v1", "pods", NS, "app=chain")
    assert len(pods) == 2
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"chain-{h}-")
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["status"]["phase"] == "Running" and _ready(pod)
        assert pod["status"]["podIP"].startswith("10.244.")
        assert pod["status"]["containerStatuses"][0]["ready"] is True
    reasons = {
        e["reason"]
        for e in emu.list("v1", "events", NS)
        if e["involvedObject"]["name"] == pods[0]["metadata"]["name"]
    }
    assert {"Scheduled", "Pulled", "Started"} <= reasons


def test_rollout_restart_creates_new_replicaset_and_replaces_pods(
    emu: Emulator, http: httpx.Client
) -> None:
    http.post(DEPLOYS, json=deployment("restart"))
    wait_until(lambda: _available(emu, "restart"), "first rollout")
    old_pods = {p["metadata"]["name"] for p in emu.list("v1", "pods", NS, "app=restart")}
    patch = {
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}
                }
            }
        }
    }
    http.patch(
        f"{DEPLOYS}/restart",
        json=patch,
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    wait_until(lambda: _available(emu, "restart"), "second rollout")
    rss = emu.list("apps/v1", "replicasets", NS, "app=restart")
    assert len(rss) == 2
    by_rev = {rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs for rs in rss}
    assert by_rev["1"]["spec"]["replicas"] == 0 and by_rev["2"]["spec"]["replicas"] == 1
    new_pods = {p["metadata"]["name"] for p in emu.list("v1", "pods", NS, "app=restart")}
    assert new_pods.isdisjoint(old_pods) and len(new_pods) == 1


def test_hold_unready_keeps_pods_crash_looping_until_released(
    emu: Emulator, http: httpx.Client
) -> None:
    emu.hold_unready(NS, "deployment=broken")
    http.post(DEPLOYS, json=deployment("broken", labels={"deployment": "broken"}, args=CODE_ARGS))

    def crashed() -> dict[str, Any] | None:
        pods = emu.list("v1", "pods", NS, "deployment=broken")
        if pods and pods[0]["status"].get("containerStatuses", [{}])[0].get("restartCount", 0) >= 2:
            return pods[0]
        return None

    pod = wait_until(crashed, "restarts to grow")
    status = pod["status"]["containerStatuses"][0]
    assert pod["status"]["phase"] == "Running" and not _ready(pod)
    assert status["ready"] is False
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    d = emu.get("apps/v1", "deployments", NS, "broken")
    assert d is not None and not d["status"].get("availableReplicas")
    warnings = [
        e
        for e in emu.list("v1", "events", NS)
        if e["type"] == "Warning" and e["involvedObject"]["uid"] == pod["metadata"]["uid"]
    ]
    assert {e["reason"] for e in warnings} >= {"BackOff"}
    assert warnings[0]["involvedObject"]["kind"] == "Pod"
    log = http.get(f"/api/v1/namespaces/dagster/pods/{pod['metadata']['name']}/log").text
    assert "Traceback (most recent call last):" in log and "ModuleNotFoundError" in log
    assert "Started Dagster code server" not in log
    emu.release_unready(NS, "deployment=broken")
    wait_until(lambda: _available(emu, "broken"), "release to make it ready")


def test_pod_logs_plain_tail_and_follow(emu: Emulator, http: httpx.Client) -> None:
    http.post(DEPLOYS, json=deployment("code", labels={"deployment": "code"}, args=CODE_ARGS))
    pod = wait_until(lambda: emu.list("v1", "pods", NS, "deployment=code"), "a pod")[0]
    name = pod["metadata"]["name"]
    url = f"/api/v1/namespaces/dagster/pods/{name}/log"
    chunks: list[str] = []
    with http.stream("GET", url, params={"follow": "true"}) as r:
        if r.status_code == 400:  # still ContainerCreating; follow once it started
            wait_until(lambda: http.get(url).status_code == 200, "container start")
    with http.stream("GET", url, params={"follow": "true"}) as r:
        assert r.status_code == 200
        for text in r.iter_text():
            chunks.append(text)
            if STARTED in "".join(chunks):
                break
    assert STARTED in "".join(chunks)
    wait_until(lambda: _available(emu, "code"), "ready")
    plain = http.get(url).text
    lines = plain.splitlines()
    assert lines[-1].endswith(STARTED)
    assert lines[0].split(" - ")[1:] == [
        "dagster.code_server",
        "INFO",
        "Starting Dagster code server for file /opt/dagster/app/defs.py on port 3030 in process 1",
    ]
    assert http.get(url, params={"tailLines": 1}).text.splitlines() == [lines[-1]]
    stamped = http.get(url, params={"timestamps": "true"}).text.splitlines()[0]
    assert stamped.split(" ", 1)[0].endswith("Z")
    emu.append_pod_log(NS, name, ["custom line"])
    wait_until(lambda: "custom line" in http.get(url).text, "appended line")


def test_follow_ends_when_pod_is_deleted(emu: Emulator, http: httpx.Client) -> None:
    http.post(DEPLOYS, json=deployment("gone"))
    pod = wait_until(
        lambda: [p for p in emu.list("v1", "pods", NS, "app=gone") if _ready(p)], "ready pod"
    )[0]
    url = f"/api/v1/namespaces/dagster/pods/{pod['metadata']['name']}/log"
    with http.stream("GET", url, params={"follow": "true"}) as r:
        threading.Thread(target=lambda: http.delete(f"{DEPLOYS}/gone")).start()
        body = r.read()
    assert b"started" in body


def test_log_errors(emu: Emulator, http: httpx.Client) -> None:
    assert http.get("/api/v1/namespaces/dagster/pods/nope/log").status_code == 404
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "two"},
        "spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]},
    }
    http.post("/api/v1/namespaces/dagster/pods", json=pod)
    wait_until(
        lambda: (emu.get("v1", "pods", NS, "two") or {})["status"]["phase"] == "Running", "running"
    )
    r = http.get("/api/v1/namespaces/dagster/pods/two/log")
    assert r.status_code == 400 and "a container name must be specified" in r.json()["message"]
    assert (
        http.get("/api/v1/namespaces/dagster/pods/two/log", params={"container": "b"}).status_code
        == 200
    )


def _exec(
    emu: Emulator, pod: str, command: list[str], protocol: str
) -> tuple[dict[int, bytes], str]:
    query = "&".join(f"command={c}" for c in command) + "&stdout=true&stderr=true"
    url = (
        emu.url.replace("http://", "ws://") + f"/api/v1/namespaces/dagster/pods/{pod}/exec?{query}"
    )
    channels: dict[int, bytes] = {}
    with connect(url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        chosen = ws.subprotocol or ""
        for message in ws:
            assert isinstance(message, bytes)
            channels[message[0]] = channels.get(message[0], b"") + message[1:]
    return channels, chosen


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v5.channel.k8s.io"])
def test_exec_dagster_version_in_daemon_pod(emu: Emulator, protocol: str) -> None:
    pod = wait_until(
        lambda: [p for p in emu.list("v1", "pods", NS, "deployment=daemon") if _ready(p)],
        "daemon pod",
    )[0]
    name = pod["metadata"]["name"]
    channels, chosen = _exec(emu, name, ["dagster", "--version"], protocol)
    assert chosen == protocol
    assert channels[1] == b"dagster, version 1.8.4\n"
    assert json.loads(channels[3]) == {"metadata": {}, "status": "Success"}
    channels, _ = _exec(emu, name, ["false"], protocol)
    status = json.loads(channels[3])
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "1"}]
    channels, _ = _exec(emu, name, ["no-such-binary"], protocol)
    assert "executable file not found" in json.loads(channels[3])["message"]


def test_exec_handler_and_non_websocket_request(emu: Emulator, http: httpx.Client) -> None:
    pod = wait_until(
        lambda: [p for p in emu.list("v1", "pods", NS, "deployment=daemon") if _ready(p)],
        "daemon pod",
    )[0]
    emu.exec_handler = lambda argv, pod, container: (
        ExecResult(3, stderr="boom\n") if argv == ["custom"] else None
    )
    channels, _ = _exec(emu, pod["metadata"]["name"], ["custom"], "v4.channel.k8s.io")
    assert channels[2] == b"boom\n"
    assert json.loads(channels[3])["details"]["causes"][0]["message"] == "3"
    r = http.post(
        f"/api/v1/namespaces/dagster/pods/{pod['metadata']['name']}/exec", params={"command": "ls"}
    )
    assert r.status_code == 400


def test_faults_answer_with_status_then_stop(emu: Emulator, http: httpx.Client) -> None:
    emu.inject_fault("GET", r"/configmaps/dagster-workspace-yaml$", status=503, times=2)
    url = "/api/v1/namespaces/dagster/configmaps/dagster-workspace-yaml"
    first, second, third = (http.get(url) for _ in range(3))
    assert first.status_code == second.status_code == 503
    assert first.json()["reason"] == "ServiceUnavailable" and first.json()["kind"] == "Status"
    assert third.status_code == 200
    emu.inject_fault("PUT", r"/configmaps/", status=500)
    r = http.put(url, json=cm("dagster-workspace-yaml"))
    assert r.status_code == 500 and r.json()["reason"] == "InternalError"
    emu.inject_fault("GET", r"/configmaps/dagster-workspace-yaml$", status=None, delay=0.3)
    with pytest.raises(httpx.ReadTimeout):
        http.get(url, timeout=0.05)
    assert http.get(url).status_code == 200


def test_inject_conflict_makes_the_following_put_fail(emu: Emulator, http: httpx.Client) -> None:
    http.post("/api/v1/namespaces/dagster/configmaps", json=cm("state", {"v": "1"}))
    url = "/api/v1/namespaces/dagster/configmaps/state"
    emu.inject_conflict(r"/configmaps/state$")
    read = http.get(url).json()
    read["data"] = {"v": "2"}
    r = http.put(url, json=read)
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"
    again = http.get(url).json()
    again["data"] = {"v": "2"}
    assert http.put(url, json=again).status_code == 200


def test_request_counts(emu: Emulator, http: httpx.Client) -> None:
    emu.reset_counts()
    http.get("/api/v1/namespaces/dagster/configmaps/dagster-workspace-yaml")
    http.get("/api/v1/namespaces/dagster/configmaps/dagster-workspace-yaml")
    http.get("/api/v1/namespaces/dagster/configmaps")
    assert (
        emu.request_counts[("GET", "/api/v1/namespaces/dagster/configmaps/dagster-workspace-yaml")]
        == 2
    )
    assert emu.request_counts[("GET", "/api/v1/namespaces/dagster/configmaps")] == 1
    emu.reset_counts()
    assert not emu.request_counts


def test_held_requests_wait_until_the_gate_opens(emu: Emulator, http: httpx.Client) -> None:
    emu.reset_counts()
    url = "/api/v1/namespaces/dagster/configmaps/dagster-workspace-yaml"
    gate = emu.hold_requests("GET", r"/configmaps/dagster-workspace-yaml$", count=2)
    answers: list[int] = []
    clients = [
        threading.Thread(target=lambda: answers.append(http.get(url).status_code)) for _ in range(2)
    ]
    for client in clients:
        client.start()
    gate.wait_caught(2, timeout=20)
    assert answers == [], "a held request is not answered"
    assert http.get(url).status_code == 200, "the gate catches only `count` requests"
    gate.release()
    for client in clients:
        client.join(timeout=20)
    assert answers == [200, 200]
    assert emu.response_counts[("GET", url, 200)] == 3
    emu.inject_fault("GET", r"/configmaps/dagster-workspace-yaml$", status=503)
    http.get(url)
    assert emu.response_counts[("GET", url, 503)] == 1


def test_lightkube_client(emu: Emulator, kubeconfig: Path) -> None:
    from lightkube import ApiError, Client
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.apps_v1 import Deployment
    from lightkube.resources.coordination_v1 import Lease
    from lightkube.resources.core_v1 import ConfigMap, Pod
    from lightkube.types import PatchType

    config = KubeConfig.from_file(str(kubeconfig)).get(context_name=CONTEXT)
    client = Client(config=config)
    assert client.namespace == NS
    created = client.create(
        ConfigMap(metadata=ObjectMeta(name="lk", labels={"a": "b"}), data={"k": "1"})
    )
    assert created.metadata is not None and created.metadata.uid
    got = client.get(ConfigMap, "lk")
    assert got.data == {"k": "1"}
    with pytest.raises(ApiError) as exc:
        client.get(ConfigMap, "missing")
    assert exc.value.status.code == 404
    with pytest.raises(ApiError) as exc:
        client.create(ConfigMap(metadata=ObjectMeta(name="lk")))
    assert exc.value.status.reason == "AlreadyExists"
    client.patch(ConfigMap, "lk", {"data": {"k": "2"}}, patch_type=PatchType.MERGE)
    stale = got
    stale.data = {"k": "3"}
    with pytest.raises(ApiError) as exc:
        client.replace(stale)
    assert exc.value.status.code == 409
    assert [c.metadata.name for c in client.list(ConfigMap, labels={"a": "b"})] == ["lk"]  # type: ignore[union-attr]
    client.apply(
        ConfigMap(metadata=ObjectMeta(name="applied"), data={"x": "y"}),
        field_manager="dagster-uc",
        force=True,
    )
    assert client.get(ConfigMap, "applied").data == {"x": "y"}
    client.create(Lease(metadata=ObjectMeta(name="lock")))
    daemon = next(iter(client.list(Deployment, labels={"component": "dagster-daemon"})))
    assert daemon.metadata is not None and daemon.metadata.name == "dagster-daemon"
    pod = wait_until(
        lambda: [
            p
            for p in client.list(Pod, labels={"deployment": "daemon"})
            if p.status and p.status.phase == "Running"
        ],
        "daemon pod",
    )[0]
    assert any("dagster.daemon" in line for line in client.log(pod.metadata.name))
    client.delete(ConfigMap, "lk")
    assert emu.get("v1", "configmaps", NS, "lk") is None
    for op, obj in client.watch(ConfigMap):
        if (op, obj.metadata.name) == ("ADDED", "applied"):  # type: ignore[union-attr]
            break


def test_progress_deadline_exceeded_for_held_pods(emu: Emulator, http: httpx.Client) -> None:
    emu.hold_unready(NS, "app=stuck")
    d = deployment("stuck")
    d["spec"]["progressDeadlineSeconds"] = 1

    def exceeded() -> bool:
        got = emu.get("apps/v1", "deployments", NS, "stuck") or {}
        conds = {c["type"]: c for c in got.get("status", {}).get("conditions", [])}
        return conds.get("Progressing", {}).get("reason") == "ProgressDeadlineExceeded"

    http.post(DEPLOYS, json=d)
    wait_until(exceeded, "the progress deadline to pass")
    cond = next(
        c
        for c in emu.get("apps/v1", "deployments", NS, "stuck")["status"]["conditions"]
        if c["type"] == "Progressing"
    )  # type: ignore[index]
    assert cond["status"] == "False"
