"""The four PATCH types, over HTTP and as pure functions."""

from __future__ import annotations

import json

import httpx

from stack.emulator import patches

from .conftest import cm, deployment

CMS = "/api/v1/namespaces/dagster/configmaps"
DEPLOYS = "/apis/apps/v1/namespaces/dagster/deployments"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSONPATCH = {"Content-Type": "application/json-patch+json"}
SMP = {"Content-Type": "application/strategic-merge-patch+json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}


def _containers(d: dict) -> list[dict]:
    return d["spec"]["template"]["spec"]["containers"]


def test_merge_patch_sets_and_removes_keys(http: httpx.Client) -> None:
    http.post(CMS, json=cm("m", {"a": "1", "b": "2"}))
    r = http.patch(f"{CMS}/m", json={"data": {"a": None, "c": "3"}}, headers=MERGE)
    assert r.status_code == 200 and r.json()["data"] == {"b": "2", "c": "3"}


def test_json_patch_operations_and_failed_test(http: httpx.Client) -> None:
    http.post(CMS, json=cm("j", {"a": "1"}))
    ops = [
        {"op": "add", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/a", "value": "9"},
        {"op": "copy", "from": "/data/b", "path": "/data/c"},
        {"op": "remove", "path": "/data/b"},
        {"op": "test", "path": "/data/a", "value": "9"},
    ]
    r = http.patch(f"{CMS}/j", json=ops, headers=JSONPATCH)
    assert r.json()["data"] == {"a": "9", "c": "2"}
    r = http.patch(
        f"{CMS}/j", json=[{"op": "test", "path": "/data/a", "value": "0"}], headers=JSONPATCH
    )
    assert r.status_code == 422


def test_patch_with_stale_resource_version_conflicts(http: httpx.Client) -> None:
    http.post(CMS, json=cm("p"))
    r = http.patch(
        f"{CMS}/p", json={"metadata": {"resourceVersion": "1"}, "data": {"x": "y"}}, headers=MERGE
    )
    assert r.status_code == 409


def test_patch_of_missing_object_is_404_and_unknown_type_415(http: httpx.Client) -> None:
    assert http.patch(f"{CMS}/none", json={}, headers=MERGE).status_code == 404
    http.post(CMS, json=cm("t"))
    r = http.patch(f"{CMS}/t", content=b"{}", headers={"Content-Type": "application/xml"})
    assert r.status_code == 415


def test_strategic_merge_merges_containers_env_ports_by_key(http: httpx.Client) -> None:
    d = deployment("smp")
    _containers(d)[0].update(
        env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        ports=[{"containerPort": 3030, "name": "grpc"}],
    )
    d["spec"]["template"]["spec"]["volumes"] = [{"name": "v1", "emptyDir": {}}]
    http.post(DEPLOYS, json=d)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "reg.local/app:2",
                            "env": [
                                {"name": "B", "value": "3"},
                                {"name": "A", "$patch": "delete"},
                                {"name": "C", "value": "4"},
                            ],
                            "ports": [{"containerPort": 8080}],
                        }
                    ],
                    "volumes": [{"name": "v2", "emptyDir": {}}],
                }
            }
        }
    }
    r = http.patch(f"{DEPLOYS}/smp", json=patch, headers=SMP)
    assert r.status_code == 200, r.text
    (c,) = _containers(r.json())
    assert c["image"] == "reg.local/app:2"
    assert c["env"] == [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    assert [p["containerPort"] for p in c["ports"]] == [3030, 8080]
    assert [v["name"] for v in r.json()["spec"]["template"]["spec"]["volumes"]] == ["v1", "v2"]


def test_strategic_merge_directives() -> None:
    original = {
        "spec": {
            "a": {"x": 1, "y": 2},
            "finalizers": ["f1", "f2"],
            "env": [{"name": "A"}, {"name": "B"}],
        }
    }
    out = patches.strategic_merge(original, {"spec": {"a": {"$patch": "replace", "z": 3}}})
    assert out["spec"]["a"] == {"z": 3}
    out = patches.strategic_merge(original, {"spec": {"a": {"$patch": "delete"}}})
    assert "a" not in out["spec"]
    out = patches.strategic_merge(
        original, {"spec": {"$deleteFromPrimitiveList/finalizers": ["f1"]}}
    )
    assert out["spec"]["finalizers"] == ["f2"]
    out = patches.strategic_merge(
        original,
        {
            "spec": {
                "$setElementOrder/env": [{"name": "B"}, {"name": "A"}],
                "env": [{"name": "A", "value": "1"}],
            }
        },
    )
    assert out["spec"]["env"] == [{"name": "B"}, {"name": "A", "value": "1"}]
    out = patches.strategic_merge(
        original, {"spec": {"env": [{"name": "Z"}, {"$patch": "replace"}]}}
    )
    assert out["spec"]["env"] == [{"name": "Z"}]


def test_server_side_apply_creates_updates_and_prunes(http: httpx.Client) -> None:
    d = deployment("ssa", labels={"app": "ssa"})
    d["metadata"]["labels"]["extra"] = "yes"
    _containers(d)[0]["env"] = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    url = f"{DEPLOYS}/ssa"
    params = {"fieldManager": "helm", "force": "true"}
    r = http.patch(url, params=params, content=json.dumps(d), headers=APPLY)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["metadata"]["managedFields"][0]["manager"] == "helm"
    assert created["metadata"]["managedFields"][0]["operation"] == "Apply"
    # Another client adds a label of its own (through its own apply).
    http.patch(
        url,
        params={"fieldManager": "other"},
        content=json.dumps(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "ssa", "labels": {"theirs": "1"}},
            }
        ),
        headers=APPLY,
    )
    # helm applies again without the label `extra` and without env B: both disappear.
    del d["metadata"]["labels"]["extra"]
    _containers(d)[0]["env"] = [{"name": "A", "value": "1"}]
    _containers(d)[0]["image"] = "reg.local/app:2"
    r = http.patch(url, params=params, content=json.dumps(d), headers=APPLY)
    after = r.json()
    assert after["metadata"]["labels"] == {"app": "ssa", "theirs": "1"}
    (c,) = _containers(after)
    assert c["env"] == [{"name": "A", "value": "1"}]
    assert c["image"] == "reg.local/app:2"
    assert after["metadata"]["generation"] == 2


def test_server_side_apply_yaml_body_and_conflict(http: httpx.Client) -> None:
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  k: one\n"
    r = http.patch(f"{CMS}/y", params={"fieldManager": "a"}, content=body, headers=APPLY)
    assert r.status_code in (200, 201) and r.json()["data"] == {"k": "one"}
    clash = body.replace("one", "two")
    r = http.patch(f"{CMS}/y", params={"fieldManager": "b"}, content=clash, headers=APPLY)
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"
    r = http.patch(
        f"{CMS}/y", params={"fieldManager": "b", "force": "true"}, content=clash, headers=APPLY
    )
    assert r.json()["data"] == {"k": "two"}
    r = http.patch(f"{CMS}/y", content=body, headers=APPLY)
    assert r.status_code == 400  # fieldManager is required


def test_noop_apply_keeps_resource_version(http: httpx.Client) -> None:
    body = json.dumps(cm("same-apply"))
    params = {"fieldManager": "helm", "force": "true"}
    first = http.patch(f"{CMS}/same-apply", params=params, content=body, headers=APPLY).json()
    second = http.patch(f"{CMS}/same-apply", params=params, content=body, headers=APPLY).json()
    assert first["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]


def test_field_paths_roundtrip_through_fields_v1() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "X",
        "metadata": {"name": "n", "labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    paths = patches.field_paths(obj)
    assert ("metadata", "name") not in paths
    assert ("metadata", "labels", "a") in paths
    assert patches.from_fields_v1(patches.to_fields_v1(paths)) == paths
