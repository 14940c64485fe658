"""REST semantics over HTTP: metadata, Status bodies, concurrency, delete, selectors, paging,
discovery, OpenAPI, protobuf bodies."""

from __future__ import annotations

import httpx
import pytest

from stack.emulator import Emulator, protobuf

from .conftest import cm, deployment, wait_until

CMS = "/api/v1/namespaces/dagster/configmaps"
DEPLOYS = "/apis/apps/v1/namespaces/dagster/deployments"


def test_create_fills_metadata_and_resource_versions_increase(http: httpx.Client) -> None:
    a = http.post(CMS, json=cm("a"))
    b = http.post(CMS, json=cm("b"))
    assert a.status_code == b.status_code == 201
    meta_a, meta_b = a.json()["metadata"], b.json()["metadata"]
    assert meta_a["uid"] != meta_b["uid"]
    assert meta_a["namespace"] == "dagster"
    assert meta_a["creationTimestamp"].endswith("Z")
    assert int(meta_b["resourceVersion"]) > int(meta_a["resourceVersion"])
    got = http.get(f"{CMS}/a").json()
    assert got["metadata"] == meta_a
    assert got["kind"] == "ConfigMap" and got["apiVersion"] == "v1"


def test_status_bodies_for_not_found_and_already_exists(http: httpx.Client) -> None:
    r = http.get(f"{CMS}/missing")
    assert r.status_code == 404
    assert r.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "missing" not found',
        "reason": "NotFound",
        "details": {"name": "missing", "kind": "configmaps"},
        "code": 404,
    }
    r = http.get(f"{DEPLOYS}/missing")
    assert r.json()["message"] == 'deployments.apps "missing" not found'
    assert r.json()["details"]["group"] == "apps"
    http.post(CMS, json=cm("dup"))
    r = http.post(CMS, json=cm("dup"))
    assert r.status_code == 409
    assert r.json()["reason"] == "AlreadyExists"
    assert r.json()["message"] == 'configmaps "dup" already exists'


def test_invalid_name_and_missing_namespace(http: httpx.Client) -> None:
    r = http.post(CMS, json=cm("Bad_Name"))
    assert r.status_code == 422
    body = r.json()
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert body["message"].startswith(
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value'
    )
    r = http.post("/api/v1/namespaces/nope/configmaps", json=cm("x"))
    assert r.status_code == 404
    assert r.json()["message"] == 'namespaces "nope" not found'
    r = http.post(CMS, json=cm("bad-label", labels={"branch": "feature/x"}))
    assert r.status_code == 422


def test_bad_bodies_are_400_and_415(http: httpx.Client) -> None:
    r = http.post(CMS, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
    r = http.post(CMS, content=b"x", headers={"Content-Type": "application/xml"})
    assert r.status_code == 415 and r.json()["reason"] == "UnsupportedMediaType"
    r = http.post(CMS, json={**cm("x"), "kind": "Secret"})
    assert r.status_code == 400
    r = http.get("/apis/apps/v1/namespaces/dagster/widgets")
    assert r.status_code == 404 and r.json()["kind"] == "Status"


def test_stale_put_conflicts_and_unconditional_put_wins(http: httpx.Client) -> None:
    created = http.post(CMS, json=cm("c", {"v": "1"})).json()
    fresh = {**created, "data": {"v": "2"}}
    assert http.put(f"{CMS}/c", json=fresh).status_code == 200
    stale = {**created, "data": {"v": "3"}}
    r = http.put(f"{CMS}/c", json=stale)
    assert r.status_code == 409
    assert r.json()["reason"] == "Conflict"
    assert r.json()["message"] == (
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    unconditional = cm("c", {"v": "4"})
    r = http.put(f"{CMS}/c", json=unconditional)
    assert r.status_code == 200 and r.json()["data"] == {"v": "4"}
    assert r.json()["metadata"]["uid"] == created["metadata"]["uid"]
    assert http.put(f"{CMS}/nothere", json=cm("nothere")).status_code == 404


def test_noop_update_keeps_resource_version(http: httpx.Client) -> None:
    created = http.post(CMS, json=cm("same")).json()
    again = http.put(f"{CMS}/same", json=created).json()
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_generation_bumps_only_on_spec_change(http: httpx.Client) -> None:
    d = http.post(DEPLOYS, json=deployment("gen")).json()
    assert d["metadata"]["generation"] == 1
    labelled = http.patch(
        f"{DEPLOYS}/gen",
        json={"metadata": {"labels": {"x": "y"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    ).json()
    assert labelled["metadata"]["generation"] == 1
    scaled = http.patch(
        f"{DEPLOYS}/gen",
        json={"spec": {"replicas": 2}},
        headers={"Content-Type": "application/merge-patch+json"},
    ).json()
    assert scaled["metadata"]["generation"] == 2


def test_dry_run_does_not_store(http: httpx.Client, emu: Emulator) -> None:
    r = http.post(CMS, params={"dryRun": "All"}, json=cm("dry"))
    assert r.status_code == 201 and r.json()["metadata"]["uid"]
    assert emu.get("v1", "configmaps", "dagster", "dry") is None
    http.post(CMS, json=cm("dry"))
    r = http.delete(f"{CMS}/dry", params={"dryRun": "All"})
    assert r.status_code == 200
    assert emu.get("v1", "configmaps", "dagster", "dry") is not None


def test_delete_cascades_through_owner_references(http: httpx.Client, emu: Emulator) -> None:
    http.post(DEPLOYS, json=deployment("cascade"))
    wait_until(lambda: emu.list("v1", "pods", "dagster", "app=cascade"), "a pod")
    r = http.delete(f"{DEPLOYS}/cascade")
    assert r.status_code == 200 and r.json()["status"] == "Success"
    assert emu.list("apps/v1", "replicasets", "dagster", "app=cascade") == []
    assert emu.list("v1", "pods", "dagster", "app=cascade") == []


def test_orphan_policy_keeps_dependents(http: httpx.Client, emu: Emulator) -> None:
    http.post(DEPLOYS, json=deployment("orphan"))
    wait_until(lambda: emu.list("apps/v1", "replicasets", "dagster", "app=orphan"), "a replicaset")
    http.delete(f"{DEPLOYS}/orphan", params={"propagationPolicy": "Orphan"})
    (rs,) = emu.list("apps/v1", "replicasets", "dagster", "app=orphan")
    assert "ownerReferences" not in rs["metadata"]


def test_delete_preconditions_and_protobuf_delete_options(
    http: httpx.Client, emu: Emulator
) -> None:
    http.post(CMS, json=cm("pre"))
    r = http.request(
        "DELETE",
        f"{CMS}/pre",
        json={"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "other"}},
    )
    assert r.status_code == 409
    body = protobuf.encode({"propagationPolicy": "Foreground"}, kind="DeleteOptions")
    r = http.request(
        "DELETE",
        f"{CMS}/pre",
        content=body,
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
    )
    assert r.status_code == 200
    assert emu.get("v1", "configmaps", "dagster", "pre") is None


def test_namespace_delete_cascades(http: httpx.Client, emu: Emulator) -> None:
    http.post(
        "/api/v1/namespaces",
        json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}},
    )
    http.post("/api/v1/namespaces/tmp/configmaps", json=cm("inside"))
    ns = http.get("/api/v1/namespaces/tmp").json()
    assert ns["status"]["phase"] == "Active"
    assert http.delete("/api/v1/namespaces/tmp").status_code == 200
    assert emu.get("v1", "configmaps", "tmp", "inside") is None
    assert http.get("/api/v1/namespaces/tmp").status_code == 404


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", {"w1", "w2"}),
        ("tier==web", {"w1", "w2"}),
        ("tier!=web", {"d1", "plain"}),
        ("tier in (web,db)", {"w1", "w2", "d1"}),
        ("tier notin (web)", {"d1", "plain"}),
        ("tier", {"w1", "w2", "d1"}),
        ("!tier", {"plain"}),
        ("tier=web,env=prod", {"w1"}),
    ],
)
def test_label_selectors(http: httpx.Client, selector: str, expected: set[str]) -> None:
    http.post(CMS, json=cm("w1", labels={"tier": "web", "env": "prod"}))
    http.post(CMS, json=cm("w2", labels={"tier": "web"}))
    http.post(CMS, json=cm("d1", labels={"tier": "db"}))
    http.post(CMS, json=cm("plain"))
    names = {
        i["metadata"]["name"]
        for i in http.get(CMS, params={"labelSelector": selector}).json()["items"]
    }
    assert names - {"dagster-workspace-yaml"} == expected


def test_field_selectors_and_bad_selector(http: httpx.Client) -> None:
    http.post(CMS, json=cm("f1"))
    http.post(CMS, json=cm("f2"))
    r = http.get(
        "/api/v1/configmaps",
        params={"fieldSelector": "metadata.name=f1,metadata.namespace=dagster"},
    )
    assert [i["metadata"]["name"] for i in r.json()["items"]] == ["f1"]
    r = http.get(CMS, params={"fieldSelector": "metadata.name!=f1"})
    assert "f1" not in {i["metadata"]["name"] for i in r.json()["items"]}
    assert http.get(CMS, params={"labelSelector": "a in b"}).status_code == 400


def test_list_metadata_and_paging(http: httpx.Client) -> None:
    for i in range(5):
        http.post(CMS, json=cm(f"page-{i}", labels={"paged": "yes"}))
    first = http.get(CMS, params={"labelSelector": "paged", "limit": 2}).json()
    assert first["kind"] == "ConfigMapList"
    assert int(first["metadata"]["resourceVersion"]) > 0
    assert "kind" not in first["items"][0]
    names = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = http.get(
            CMS, params={"labelSelector": "paged", "limit": 2, "continue": token}
        ).json()
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
    assert names == [f"page-{i}" for i in range(5)]


def test_discovery(http: httpx.Client) -> None:
    assert http.get("/version").json()["gitVersion"] == "v1.32.3"
    assert http.get("/api").json()["versions"] == ["v1"]
    core = http.get("/api/v1").json()
    names = {r["name"] for r in core["resources"]}
    assert {"pods", "pods/log", "pods/exec", "configmaps", "secrets", "namespaces"} <= names
    groups = http.get(
        "/apis",
        headers={
            "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        },
    )
    assert groups.headers["Content-Type"] == "application/json"
    for group in groups.json()["groups"]:
        gv = group["preferredVersion"]["groupVersion"]
        listed = http.get(f"/apis/{gv}").json()
        assert listed["groupVersion"] == gv and listed["resources"]
    apps = {r["name"] for r in http.get("/apis/apps/v1").json()["resources"]}
    assert {"deployments", "deployments/scale", "deployments/status", "replicasets"} <= apps
    assert http.get("/apis/coordination.k8s.io").json()["preferredVersion"]["version"] == "v1"


def test_openapi_v3(http: httpx.Client) -> None:
    assert http.get("/openapi/v2").status_code == 404
    index = http.get("/openapi/v3").json()["paths"]
    doc = http.get(index["apis/apps/v1"]["serverRelativeURL"]).json()
    ops = [p["patch"] for p in doc["paths"].values()]
    kinds = {op["x-kubernetes-group-version-kind"]["kind"] for op in ops}
    assert "Deployment" in kinds
    assert all(any(p["name"] == "fieldValidation" for p in op["parameters"]) for op in ops)
    assert http.get(index["api/v1"]["serverRelativeURL"]).status_code == 200


@pytest.mark.parametrize(
    "obj",
    [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "pb-cm", "labels": {"a": "b"}},
            "data": {"x": "1", "empty": ""},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pb-secret", "labels": {"owner": "helm"}},
            "type": "helm.sh/release.v1",
            "data": {"release": "aGVsbG8="},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "pb-sa"},
            "imagePullSecrets": [{"name": "pull"}],
        },
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "pb-lease"},
            "spec": {
                "holderIdentity": "me",
                "leaseDurationSeconds": 30,
                "renewTime": "2025-01-01T00:00:00.123456Z",
            },
        },
    ],
)
def test_protobuf_create(http: httpx.Client, obj: dict) -> None:
    plural = {
        "ConfigMap": "configmaps",
        "Secret": "secrets",
        "ServiceAccount": "serviceaccounts",
        "Lease": "leases",
    }[obj["kind"]]
    prefix = "/apis/coordination.k8s.io/v1" if obj["kind"] == "Lease" else "/api/v1"
    r = http.post(
        f"{prefix}/namespaces/dagster/{plural}",
        content=protobuf.encode(obj),
        headers={
            "Content-Type": "application/vnd.kubernetes.protobuf",
            "Accept": "application/vnd.kubernetes.protobuf, */*",
        },
    )
    assert r.status_code == 201, r.text
    got = r.json()
    for key, value in obj.items():
        if key == "metadata":
            assert got["metadata"]["name"] == value["name"]
            assert got["metadata"].get("labels") == value.get("labels")
        else:
            assert got[key] == value


def test_protobuf_namespace_and_update(http: httpx.Client) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pb-ns"}}
    r = http.post(
        "/api/v1/namespaces",
        content=protobuf.encode(ns),
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
    )
    assert r.status_code == 201 and r.json()["metadata"]["name"] == "pb-ns"
    created = http.post(CMS, json=cm("pb-upd", {"v": "1"})).json()
    stale = {**cm("pb-upd", {"v": "2"}), "metadata": {"name": "pb-upd", "resourceVersion": "1"}}
    r = http.put(
        f"{CMS}/pb-upd",
        content=protobuf.encode(stale),
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
    )
    assert r.status_code == 409
    fresh = {
        **stale,
        "metadata": {"name": "pb-upd", "resourceVersion": created["metadata"]["resourceVersion"]},
    }
    r = http.put(
        f"{CMS}/pb-upd",
        content=protobuf.encode(fresh),
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
    )
    assert r.status_code == 200 and r.json()["data"] == {"v": "2"}


def test_lease_compare_and_swap(http: httpx.Client) -> None:
    url = "/apis/coordination.k8s.io/v1/namespaces/dagster/leases"
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "lock"},
        "spec": {"holderIdentity": "a"},
    }
    created = http.post(url, json=lease).json()
    assert http.post(url, json=lease).status_code == 409
    mine = {**created, "spec": {"holderIdentity": "b"}}
    theirs = {**created, "spec": {"holderIdentity": "c"}}
    assert http.put(f"{url}/lock", json=mine).status_code == 200
    assert http.put(f"{url}/lock", json=theirs).status_code == 409
    assert http.get(f"{url}/lock").json()["spec"]["holderIdentity"] == "b"


def test_services_get_a_cluster_ip(http: httpx.Client) -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc"},
        "spec": {"selector": {"a": "b"}, "ports": [{"port": 3030}]},
    }
    got = http.post("/api/v1/namespaces/dagster/services", json=svc).json()
    assert got["spec"]["clusterIP"].startswith("10.96.")
    assert got["spec"]["ports"][0]["targetPort"] == 3030
    again = http.put("/api/v1/namespaces/dagster/services/svc", json=svc).json()
    assert again["spec"]["clusterIP"] == got["spec"]["clusterIP"]


def test_scale_subresource(http: httpx.Client) -> None:
    http.post(DEPLOYS, json=deployment("scaled"))
    scale = http.get(f"{DEPLOYS}/scaled/scale").json()
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
    r = http.patch(
        f"{DEPLOYS}/scaled/scale",
        json={"spec": {"replicas": 3}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.json()["spec"]["replicas"] == 3
    assert http.get(f"{DEPLOYS}/scaled").json()["spec"]["replicas"] == 3


def test_status_subresource_is_separate(http: httpx.Client) -> None:
    d = http.post(DEPLOYS, json=deployment("statusy", replicas=0)).json()
    d["status"] = {"replicas": 99}
    del d["metadata"]["resourceVersion"]
    updated = http.put(f"{DEPLOYS}/statusy", json=d).json()
    assert updated["status"].get("replicas") != 99


def test_validation_limits_like_the_real_server(http: httpx.Client) -> None:
    r = http.post(CMS, json=cm("big", {"blob": "x" * (1024 * 1024 + 1)}))
    assert r.status_code == 422 and "Too long" in r.json()["message"]
    r = http.post(CMS, json=cm("badkey", {"no/slash": "1"}))
    assert r.status_code == 422
    bad = deployment("mismatch")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    assert http.post(DEPLOYS, json=bad).status_code == 422
    http.post(DEPLOYS, json=deployment("fixed"))
    moved = deployment("fixed", labels={"app": "fixed", "extra": "1"})
    r = http.put(f"{DEPLOYS}/fixed", json=moved)
    assert r.status_code == 422 and "field is immutable" in r.json()["message"]
    frozen = {**cm("frozen", {"a": "1"}), "immutable": True}
    http.post(CMS, json=frozen)
    r = http.put(f"{CMS}/frozen", json={**frozen, "data": {"a": "2"}})
    assert r.status_code == 422
