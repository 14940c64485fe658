"""Where the e2e suite found the emulator answering differently from the real control plane
(docs/local-stack.md), the emulator now does what Kubernetes does: every namespace gets a
`default` ServiceAccount, a pod of an account that does not exist is refused and its
ReplicaSet retries once the account exists, and a pod whose nodeSelector the node does not
satisfy stays Pending."""

from __future__ import annotations

import httpx

from stack.emulator import Emulator

from .conftest import deployment, wait_until


def pod(name: str, account: str | None = None) -> dict[str, object]:
    spec: dict[str, object] = {"containers": [{"name": "c", "image": "busybox"}]}
    if account:
        spec["serviceAccountName"] = account
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_a_new_namespace_has_a_default_account(http: httpx.Client) -> None:
    http.post(
        "/api/v1/namespaces",
        json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh"}},
    )
    assert http.get("/api/v1/namespaces/fresh/serviceaccounts/default").status_code == 200
    assert http.post("/api/v1/namespaces/fresh/pods", json=pod("p")).status_code == 201


def test_a_pod_of_a_missing_account_is_refused(http: httpx.Client) -> None:
    refused = http.post("/api/v1/namespaces/dagster/pods", json=pod("p", "nobody"))
    assert refused.status_code == 403
    status = refused.json()
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'pods "p" is forbidden: error looking up service account dagster/nobody: '
        'serviceaccount "nobody" not found'
    )


def test_a_replicaset_retries_once_the_account_exists(emu: Emulator, http: httpx.Client) -> None:
    body = deployment("late")
    body["spec"]["template"]["spec"]["serviceAccountName"] = "late-account"
    assert http.post("/apis/apps/v1/namespaces/dagster/deployments", json=body).status_code == 201

    def failed_create() -> bool:
        events = http.get("/api/v1/namespaces/dagster/events").json()["items"]
        return any(e["reason"] == "FailedCreate" and "late-account" in e["message"] for e in events)

    wait_until(failed_create, "a FailedCreate event")
    assert not emu.list("v1", "pods", "dagster", label_selector="app=late")
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "late-account"}}
    assert http.post("/api/v1/namespaces/dagster/serviceaccounts", json=account).status_code == 201
    wait_until(lambda: emu.list("v1", "pods", "dagster", label_selector="app=late"), "the pod")


def test_a_pod_whose_node_selector_no_node_satisfies_stays_pending(
    emu: Emulator, http: httpx.Client
) -> None:
    """Found on the real control plane: the scheduler leaves such a pod Pending."""
    unplaceable = pod("nowhere")
    unplaceable["spec"]["nodeSelector"] = {"agentpool": "gpu"}  # type: ignore[index]
    placeable = pod("pooled")
    placeable["spec"]["nodeSelector"] = {"agentpool": "pool1"}  # type: ignore[index]
    for body in (unplaceable, placeable):
        assert http.post("/api/v1/namespaces/dagster/pods", json=body).status_code == 201

    wait_until(
        lambda: (
            (emu.get("v1", "pods", "dagster", "pooled") or {}).get("status", {}).get("phase")
            == "Running"
        ),
        "the pod the node fits",
    )

    def refused() -> bool:
        events = http.get("/api/v1/namespaces/dagster/events").json()["items"]
        return any(
            e["reason"] == "FailedScheduling" and e["involvedObject"]["name"] == "nowhere"
            for e in events
        )

    wait_until(refused, "a FailedScheduling event")
    nowhere = emu.get("v1", "pods", "dagster", "nowhere")
    assert nowhere is not None and nowhere["status"]["phase"] == "Pending"
    assert "nodeName" not in nowhere["spec"]
