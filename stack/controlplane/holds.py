"""Pods that never become ready, on the real control plane.

The emulator's `hold_unready(namespace, label_selector)` keeps matching pods (present and
future) crash-looping. Here the same is done with Kubernetes' own machinery: a
MutatingAdmissionPolicy (GA since 1.36) bound to the namespace and the label selector marks
every such pod with the annotation `HOLD_ANNOTATION` when the API server admits it, and kwok's
`pod-crash-loop` stage (pod-stages.yaml) moves marked pods to CrashLoopBackOff instead of
Ready. Pods that already exist are marked by a patch.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

import httpx

HOLD_ANNOTATION = "stack.dagster-uc/unready"
_POLICIES = "/apis/admissionregistration.k8s.io/v1/mutatingadmissionpolicies"
_BINDINGS = "/apis/admissionregistration.k8s.io/v1/mutatingadmissionpolicybindings"
_TERM = re.compile(r"^\s*([\w./-]+)\s*(!=|==|=)\s*([\w.-]*)\s*$")


def object_selector(label_selector: str) -> dict[str, Any]:
    """`a=b,c!=d` as a LabelSelector object (equality terms, which is what the tests use)."""
    match_labels: dict[str, str] = {}
    expressions: list[dict[str, Any]] = []
    for term in filter(None, (t.strip() for t in label_selector.split(","))):
        parsed = _TERM.match(term)
        if parsed is None:
            if term.startswith("!"):
                expressions.append({"key": term[1:], "operator": "DoesNotExist"})
            else:
                expressions.append({"key": term, "operator": "Exists"})
            continue
        key, op, value = parsed.groups()
        if op == "!=":
            expressions.append({"key": key, "operator": "NotIn", "values": [value]})
        else:
            match_labels[key] = value
    selector: dict[str, Any] = {}
    if match_labels:
        selector["matchLabels"] = match_labels
    if expressions:
        selector["matchExpressions"] = expressions
    return selector


def hold_name(namespace: str, label_selector: str) -> str:
    digest = hashlib.sha256(f"{namespace}\0{label_selector}".encode()).hexdigest()[:12]
    return f"hold-unready-{digest}"


def policy(name: str) -> dict[str, Any]:
    expression = (
        f'Object{{metadata: Object.metadata{{annotations: {{"{HOLD_ANNOTATION}": "true"}}}}}}'
    )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ]
            },
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "mutations": [
                {
                    "patchType": "ApplyConfiguration",
                    "applyConfiguration": {"expression": expression},
                }
            ],
        },
    }


def binding(name: str, namespace: str, label_selector: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "objectSelector": object_selector(label_selector),
            },
        },
    }


def _probe_pod(namespace: str, label_selector: str) -> dict[str, Any]:
    labels = object_selector(label_selector).get("matchLabels", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "hold-probe-", "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "probe", "image": "probe"}]},
    }


def _marked_on_admission(client: httpx.Client, namespace: str, label_selector: str) -> bool:
    """Whether the API server now marks such a pod (a dry-run create runs admission)."""
    response = client.post(
        f"/api/v1/namespaces/{namespace}/pods",
        params={"dryRun": "All"},
        json=_probe_pod(namespace, label_selector),
    )
    if response.status_code not in (200, 201):
        return False
    annotations = response.json()["metadata"].get("annotations") or {}
    return annotations.get(HOLD_ANNOTATION) == "true"


def _wait(check: Any, want: bool, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while check() != want:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not take effect in {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _mark_existing(
    client: httpx.Client, namespace: str, label_selector: str, value: str | None
) -> None:
    pods = client.get(
        f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": label_selector}
    ).json()
    for pod in pods.get("items") or []:
        client.patch(
            f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}",
            json={"metadata": {"annotations": {HOLD_ANNOTATION: value}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )


def hold_unready(client: httpx.Client, namespace: str, label_selector: str) -> None:
    name = hold_name(namespace, label_selector)
    for path, obj in (
        (_POLICIES, policy(name)),
        (_BINDINGS, binding(name, namespace, label_selector)),
    ):
        response = client.post(path, json=obj)
        if response.status_code not in (200, 201, 409):
            raise RuntimeError(f"creating {obj['kind']} failed: {response.text}")
    _wait(lambda: _marked_on_admission(client, namespace, label_selector), True, "the hold")
    _mark_existing(client, namespace, label_selector, "true")


def release_unready(client: httpx.Client, namespace: str, label_selector: str) -> None:
    name = hold_name(namespace, label_selector)
    client.delete(f"{_BINDINGS}/{name}")
    client.delete(f"{_POLICIES}/{name}")
    _wait(lambda: _marked_on_admission(client, namespace, label_selector), False, "the release")
    _mark_existing(client, namespace, label_selector, None)
