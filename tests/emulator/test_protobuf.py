"""Protobuf request bodies: the table-driven decoder against Go's JSON shapes."""

from __future__ import annotations

import httpx

from stack.emulator import protobuf, protogen
from stack.tools import ensure_tools

PB = {"Content-Type": "application/vnd.kubernetes.protobuf"}

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a": "b"}},
    "spec": {
        "replicas": 0,
        "selector": {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}],
        },
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"},
        },
        "template": {
            "metadata": {"labels": {"app": "web", "tier": "a"}},
            "spec": {
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 0,
                "containers": [
                    {
                        "name": "main",
                        "image": "nginx:1",
                        "command": ["sh", "-c"],
                        "args": ["sleep 1"],
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "env": [
                            {"name": "A", "value": "1"},
                            {
                                "name": "B",
                                "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                            },
                        ],
                        "envFrom": [{"configMapRef": {"name": "cm"}}],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                            "requests": {"cpu": "100m"},
                        },
                        "readinessProbe": {
                            "httpGet": {"path": "/healthz", "port": "http"},
                            "periodSeconds": 5,
                        },
                        "livenessProbe": {
                            "exec": {"command": ["true"]},
                            "initialDelaySeconds": 3,
                        },
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        "securityContext": {"runAsNonRoot": False, "runAsUser": 1000},
                    }
                ],
                "volumes": [
                    {"name": "data", "emptyDir": {}},
                    {"name": "cfg", "configMap": {"name": "cm", "defaultMode": 420}},
                    {"name": "sec", "secret": {"secretName": "s", "optional": True}},
                ],
            },
        },
    },
}


def test_round_trip_of_a_rich_deployment() -> None:
    got = protobuf.decode(protobuf.encode(DEPLOYMENT))
    spec = got["spec"]
    # client-go always sends value-type fields: a zero Time decodes to null, like Go's JSON
    assert got["metadata"] == {**DEPLOYMENT["metadata"], "creationTimestamp": None}
    assert got["spec"]["template"]["metadata"]["creationTimestamp"] is None
    assert spec["replicas"] == 0  # a pointer field keeps its zero value
    assert spec["selector"] == DEPLOYMENT["spec"]["selector"]
    assert spec["strategy"] == DEPLOYMENT["spec"]["strategy"]  # IntOrString both ways
    pod = spec["template"]["spec"]
    want = DEPLOYMENT["spec"]["template"]["spec"]
    assert pod["containers"] == want["containers"]  # inline probe handlers, Quantity maps, ...
    assert pod["volumes"] == want["volumes"]  # inline VolumeSource, `emptyDir: {}` kept
    assert pod["terminationGracePeriodSeconds"] == 0
    assert got["status"] == {}  # a value-type struct is always there, like Go's JSON


def test_value_type_zeros_are_dropped_and_unknown_fields_skipped() -> None:
    body = protobuf.encode(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "creationTimestamp": None},
            "spec": {
                "containers": [{"name": "c", "image": "i", "stdin": False, "workingDir": ""}],
                "hostNetwork": False,
                "automountServiceAccountToken": False,
            },
        }
    )
    got = protobuf.decode(body)
    assert got["spec"]["containers"] == [{"name": "c", "image": "i", "resources": {}}]
    assert "hostNetwork" not in got["spec"]
    assert got["spec"]["automountServiceAccountToken"] is False  # *bool
    # An unknown field (number 999) inside the Pod message is skipped.
    unknown = protobuf._ld(999, b"future") + protobuf._key(998, 0) + protobuf._enc_varint(7)
    raw = protobuf.encode_message({"metadata": {"name": "p"}}, "core.v1.Pod") + unknown
    type_meta = protobuf._ld(1, b"v1") + protobuf._ld(2, b"Pod")
    envelope = protobuf.MAGIC + protobuf._ld(1, type_meta) + protobuf._ld(2, raw)
    assert protobuf.decode(envelope) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "creationTimestamp": None},
        "spec": {},
        "status": {},
    }


def test_special_types() -> None:
    assert protobuf.format_duration(0) == "0s"
    assert protobuf.format_duration(90 * 10**9) == "1m30s"
    assert protobuf.format_duration(3_600_500_000_000) == "1h0m0.5s"
    assert protobuf.format_duration(1_500_000) == "1.5ms"
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l"},
        "spec": {"holderIdentity": "me", "renewTime": "2025-01-01T00:00:00.123456Z"},
    }
    assert protobuf.decode(protobuf.encode(lease))["spec"] == lease["spec"]


def test_unsupported_kind_is_415(http: httpx.Client) -> None:
    type_meta = protobuf._ld(1, b"example.com/v1") + protobuf._ld(2, b"Widget")
    body = protobuf.MAGIC + protobuf._ld(1, type_meta) + protobuf._ld(2, b"")
    r = http.post("/api/v1/namespaces/dagster/configmaps", content=body, headers=PB)
    assert r.status_code == 415


def test_protobuf_workloads_are_stored_like_json(http: httpx.Client) -> None:
    r = http.post(
        "/apis/apps/v1/namespaces/dagster/deployments",
        content=protobuf.encode(DEPLOYMENT),
        headers=PB,
    )
    assert r.status_code == 201, r.text
    stored = r.json()
    assert stored["spec"]["replicas"] == 0
    container = stored["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert "creationTimestamp" not in stored["spec"]["template"]["metadata"]


def test_schema_matches_the_kubectl_descriptors() -> None:
    """protoschema.json is what `python -m stack.emulator.protogen <kubectl 1.32>` writes."""
    binary = ensure_tools().kubectl.read_bytes()
    # The pinned kubectl (stack.tools) carries them; one that does not is the wrong binary,
    # and the schema would go unchecked: a failure, not a skip.
    assert b"k8s.io/api/apps/v1/generated.proto" in binary, (
        f"{ensure_tools().kubectl} carries no protobuf descriptors; it is not the kubectl "
        "stack.tools pins"
    )
    assert protogen.render(binary) == protobuf.SCHEMA_FILE.read_text()
