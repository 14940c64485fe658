"""The real kubectl (1.32 and 1.35) and Helm (3 and 4) typed commands against the emulator:
protobuf bodies for workload kinds, rollout undo, run-to-completion pods, Job pods,
autoscaling/v1, managedFields."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from stack.clients import Runner, make_runner
from stack.emulator import Emulator
from stack.tools import Tools

from .conftest import CONTEXT, wait_until

pytestmark = pytest.mark.stack
NS = "dagster"


def _env(tools: Tools, kubeconfig: Path, tmp_path: Path) -> dict[str, str]:
    env = tools.env(dict(os.environ))
    env["KUBECONFIG"] = str(kubeconfig)
    env["KUBECACHEDIR"] = str(tmp_path / "kube-cache")
    for var in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
        (tmp_path / var).mkdir(exist_ok=True)
        env[var] = str(tmp_path / var)
    return env


@pytest.fixture(params=["kubectl", "kubectl135"])
def kubectl(
    request: pytest.FixtureRequest, tools: Tools, kubeconfig: Path, tmp_path: Path
) -> Runner:
    """kubectl 1.32 and 1.35 (the test runs once with each)."""
    binary = tools.kubectl if request.param == "kubectl" else tools.kubectl135
    return make_runner(binary, ["--context", CONTEXT, "-n", NS], _env(tools, kubeconfig, tmp_path))


@pytest.fixture
def kubectl132(tools: Tools, kubeconfig: Path, tmp_path: Path) -> Runner:
    return make_runner(
        tools.kubectl, ["--context", CONTEXT, "-n", NS], _env(tools, kubeconfig, tmp_path)
    )


def get(kubectl: Runner, *args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def test_create_workloads_with_protobuf_bodies(kubectl: Runner) -> None:
    kubectl("create", "deployment", "web", "--image=nginx:1", "--replicas=0", "--port=80")
    d = get(kubectl, "deployment", "web")
    assert d["spec"]["replicas"] == 0
    assert d["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    tpl = d["spec"]["template"]
    assert tpl["metadata"] == {"labels": {"app": "web"}}  # no `creationTimestamp: null`
    (c,) = tpl["spec"]["containers"]
    assert c["image"] == "nginx:1" and c["name"] == "nginx"
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert c["resources"] == {} and c["imagePullPolicy"] == "IfNotPresent"
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}

    kubectl("run", "p", "--image=busybox:1", "--labels=a=b", "--env=X=1", "--port=8080",
            "--restart=Never", "--", "sleep", "10")  # fmt: skip
    pod = get(kubectl, "pod", "p")
    (c,) = pod["spec"]["containers"]
    assert pod["metadata"]["labels"] == {"a": "b"}
    assert c["args"] == ["sleep", "10"] and c["env"] == [{"name": "X", "value": "1"}]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["enableServiceLinks"] is True

    kubectl("create", "service", "clusterip", "s", "--tcp=80:8080")
    svc = get(kubectl, "service", "s")
    assert svc["spec"]["ports"] == [
        {"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}
    ]
    assert svc["spec"]["selector"] == {"app": "s"} and svc["spec"]["clusterIP"]
    kubectl("expose", "deployment", "web", "--port=80", "--target-port=http", "--name=web-svc")
    svc = get(kubectl, "service", "web-svc")
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert svc["spec"]["selector"] == {"app": "web"}

    kubectl("create", "job", "j", "--image=busybox", "--", "echo", "hi")
    job = get(kubectl, "job", "j")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["echo", "hi"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    kubectl("create", "cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *", "--", "date")
    cj = get(kubectl, "cronjob", "cj")
    assert cj["spec"]["schedule"] == "*/5 * * * *"
    assert cj["spec"]["concurrencyPolicy"] == "Allow"
    job_pod = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job_pod["restartPolicy"] == "OnFailure" and job_pod["containers"][0]["command"] == [
        "date"
    ]


def test_create_rbac_policy_and_networking(kubectl: Runner) -> None:
    kubectl("create", "serviceaccount", "sa1")
    kubectl("create", "role", "r", "--verb=get,list", "--resource=pods,deployments.apps")
    rules = get(kubectl, "role", "r")["rules"]
    assert {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]} in rules
    kubectl("create", "rolebinding", "rb", "--role=r", "--user=alice", f"--serviceaccount={NS}:sa1")
    rb = get(kubectl, "rolebinding", "rb")
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}
    assert {"kind": "ServiceAccount", "name": "sa1", "namespace": NS} in rb["subjects"]
    kubectl("create", "clusterrole", "cr", "--verb=get", "--non-resource-url=/logs")
    assert get(kubectl, "clusterrole", "cr")["rules"] == [
        {"nonResourceURLs": ["/logs"], "verbs": ["get"]}
    ]
    kubectl("create", "quota", "q", "--hard=cpu=1,memory=1G,pods=2")
    assert get(kubectl, "quota", "q")["spec"]["hard"] == {"cpu": "1", "memory": "1G", "pods": "2"}
    kubectl("create", "priorityclass", "pc", "--value=1000", "--description=hi")
    pc = get(kubectl, "priorityclass", "pc")
    assert pc["value"] == 1000 and pc["description"] == "hi"
    kubectl("create", "pdb", "pdb", "--selector=app=web", "--max-unavailable=50%")
    pdb = get(kubectl, "pdb", "pdb")["spec"]
    assert pdb == {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "web"}}}
    kubectl("create", "ingress", "ing", "--class=nginx", "--rule=foo.com/bar*=svc1:8080,tls=cert")
    ing = get(kubectl, "ingress", "ing")["spec"]
    assert ing["ingressClassName"] == "nginx"
    assert ing["rules"][0]["http"]["paths"][0] == {  # the inline IngressRuleValue
        "backend": {"service": {"name": "svc1", "port": {"number": 8080}}},
        "path": "/bar",
        "pathType": "Prefix",
    }
    assert ing["tls"] == [{"hosts": ["foo.com"], "secretName": "cert"}]


def test_scale_set_image_autoscale(kubectl: Runner) -> None:
    kubectl("create", "deployment", "web", "--image=nginx:1")
    kubectl("scale", "deployment", "web", "--replicas=3")
    assert get(kubectl, "deployment", "web")["spec"]["replicas"] == 3
    kubectl("set", "image", "deployment/web", "nginx=nginx:2")
    d = get(kubectl, "deployment", "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    # kubectl 1.32 creates an autoscaling/v1 HPA, 1.35 an autoscaling/v2 one: both read as v2
    kubectl("autoscale", "deployment", "web", "--min=2", "--max=5", "--cpu-percent=70")
    hpa = get(kubectl, "hpa", "web")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 5
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]
    v1 = get(kubectl, "horizontalpodautoscalers.v1.autoscaling", "web")
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 70
    kubectl("patch", "horizontalpodautoscalers.v1.autoscaling", "web", "-p",
            '{"spec":{"targetCPUUtilizationPercentage":50}}')  # fmt: skip
    metric = get(kubectl, "hpa", "web")["spec"]["metrics"][0]
    assert metric["resource"]["target"]["averageUtilization"] == 50
    assert "REFERENCE" in kubectl("get", "hpa").stdout


def _replicasets(kubectl: Runner) -> dict[str, tuple[int, str]]:
    return {
        rs["metadata"]["name"]: (
            rs["spec"]["replicas"],
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        )
        for rs in get(kubectl, "replicasets", "-l", "app=web")["items"]
    }


def test_rollout_undo_reuses_the_old_replicaset(kubectl: Runner) -> None:
    kubectl("create", "deployment", "web", "--image=nginx:1", "--replicas=2")
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    (first,) = _replicasets(kubectl)
    kubectl("set", "image", "deployment/web", "nginx=nginx:2")
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert get(kubectl, "deployment", "web")["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "2"
    }
    kubectl("rollout", "undo", "deployment/web")
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    rss = _replicasets(kubectl)
    assert len(rss) == 2  # no third ReplicaSet: the revision-1 one came back as revision 3
    assert rss[first] == (2, "3")
    history = kubectl("rollout", "history", "deployment/web").stdout.split()
    assert "2" in history and "3" in history and "1" not in history
    d = get(kubectl, "deployment", "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"


def test_bare_pods_run_to_completion(emu: Emulator, kubectl132: Runner) -> None:
    kubectl132("run", "once", "--image=busybox", "--restart=Never", "--", "true")
    kubectl132("run", "retry", "--image=busybox", "--restart=OnFailure", "--", "true")
    kubectl132("run", "server", "--image=busybox", "--", "sleep", "1d")
    for name in ("once", "retry"):
        kubectl132("wait", "--for=jsonpath={.status.phase}=Succeeded", f"pod/{name}",
                   "--timeout=60s")  # fmt: skip
        pod = get(kubectl132, "pod", name)
        (cs,) = pod["status"]["containerStatuses"]
        assert cs["state"]["terminated"]["exitCode"] == 0
        assert cs["state"]["terminated"]["reason"] == "Completed" and cs["ready"] is False
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False" and ready["reason"] == "PodCompleted"
    assert "Completed" in kubectl132("get", "pod", "once").stdout
    assert get(kubectl132, "pod", "server")["status"]["phase"] == "Running"
    # a held run-once pod fails instead
    emu.hold_unready(NS, "run=broken")
    kubectl132("run", "broken", "--image=busybox", "--restart=Never", "--", "false")
    kubectl132("wait", "--for=jsonpath={.status.phase}=Failed", "pod/broken", "--timeout=60s")
    cs = get(kubectl132, "pod", "broken")["status"]["containerStatuses"][0]
    assert cs["state"]["terminated"]["exitCode"] == 1


def test_jobs_run_pods(emu: Emulator, kubectl132: Runner) -> None:
    kubectl132("create", "job", "ok", "--image=busybox", "--", "echo", "hi")
    kubectl132("wait", "--for=condition=complete", "job/ok", "--timeout=60s")
    (pod,) = get(kubectl132, "pods", "-l", "job-name=ok")["items"]
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
    kubectl132("logs", "job/ok")
    assert get(kubectl132, "job", "ok")["status"]["succeeded"] == 1

    emu.hold_unready(NS, "job-name=bad")
    emu.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "bad", "namespace": NS},
            "spec": {
                "backoffLimit": 1,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox"}],
                    }
                },
            },
        }
    )
    kubectl132("wait", "--for=condition=failed", "job/bad", "--timeout=60s")
    assert get(kubectl132, "job", "bad")["status"]["failed"] == 2
    kubectl132("delete", "job", "bad")
    wait_until(
        lambda: not emu.list("v1", "pods", NS, label_selector="job-name=bad"), "job pods gone"
    )


@pytest.mark.parametrize("helm_binary", ["helm3", "helm4"])
def test_helm_test_of_a_helm_create_scaffold(
    helm_binary: str, tools: Tools, kubeconfig: Path, tmp_path: Path
) -> None:
    env = _env(tools, kubeconfig, tmp_path)
    helm = make_runner(getattr(tools, helm_binary), ["--kube-context", CONTEXT, "-n", NS], env)
    helm("create", str(tmp_path / "scaffold"))
    helm("upgrade", "--install", "demo", str(tmp_path / "scaffold"), "--wait", "--timeout=60s")
    out = helm("test", "demo", "--timeout=60s").stdout
    assert "Phase:          Succeeded" in out


def test_managed_fields_record_updates(kubectl132: Runner) -> None:
    kubectl132("create", "configmap", "cfg", "--from-literal=a=1")
    kubectl132("label", "configmap", "cfg", "team=x")
    kubectl132("patch", "configmap", "cfg", "--type=merge", "-p", '{"data":{"a":"2"}}')
    cm = get(kubectl132, "configmap", "cfg", "--show-managed-fields")
    entries = {e["manager"]: e for e in cm["metadata"]["managedFields"]}
    assert set(entries) == {"kubectl-create", "kubectl-label", "kubectl-patch"}
    assert all(e["operation"] == "Update" and e["apiVersion"] == "v1" for e in entries.values())
    assert entries["kubectl-label"]["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:team": {}}}
    }
    assert entries["kubectl-patch"]["fieldsV1"]["f:data"]["f:a"] == {}
    assert "f:a" not in json.dumps(entries["kubectl-create"]["fieldsV1"])  # moved to kubectl-patch
