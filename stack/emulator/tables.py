"""Server-side printing (`meta.k8s.io/v1` Table) so `kubectl get` shows the usual columns."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .resources import Resource


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    then = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    s = max(0, int((datetime.now(timezone.utc) - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    if s < 3600 * 2:
        return f"{s // 60}m"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _pod(o: dict[str, Any]) -> list[Any]:
    st = o.get("status") or {}
    cs = st.get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in cs if c.get("ready"))
    reason = st.get("phase", "Pending")
    for c in cs:
        state = c.get("state") or {}
        if state.get("waiting"):
            reason = state["waiting"].get("reason", reason)
        elif state.get("terminated"):
            reason = state["terminated"].get("reason", reason)
    if reason == "Pending" and not cs:
        reason = "Pending"
    return [f"{ready}/{total}", reason, sum(c.get("restartCount", 0) for c in cs)]


def _deploy(o: dict[str, Any]) -> list[Any]:
    st, spec = o.get("status") or {}, o.get("spec") or {}
    return [
        f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
    ]


def _rs(o: dict[str, Any]) -> list[Any]:
    st, spec = o.get("status") or {}, o.get("spec") or {}
    return [spec.get("replicas", 0), st.get("replicas", 0), st.get("readyReplicas", 0)]


def _svc(o: dict[str, Any]) -> list[Any]:
    spec = o.get("spec") or {}
    ports = (
        ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
        or "<none>"
    )
    return [spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"), "<none>", ports]


def _cm(o: dict[str, Any]) -> list[Any]:
    return [len(o.get("data") or {}) + len(o.get("binaryData") or {})]


def _secret(o: dict[str, Any]) -> list[Any]:
    return [o.get("type", "Opaque"), len(o.get("data") or {})]


def _ns(o: dict[str, Any]) -> list[Any]:
    return [(o.get("status") or {}).get("phase", "Active")]


def _event(o: dict[str, Any]) -> list[Any]:
    inv = o.get("involvedObject") or {}
    return [
        _age(o.get("lastTimestamp")),
        o.get("type", ""),
        o.get("reason", ""),
        f"{inv.get('kind', '').lower()}/{inv.get('name', '')}",
        o.get("message", ""),
    ]


def _job(o: dict[str, Any]) -> list[Any]:
    st, spec = o.get("status") or {}, o.get("spec") or {}
    done = any(
        c.get("type") == "Complete" and c.get("status") == "True"
        for c in st.get("conditions") or []
    )
    status = "Complete" if done else ("Failed" if st.get("failed") else "Running")
    return [status, f"{st.get('succeeded', 0)}/{spec.get('completions', 1)}"]


def _cronjob(o: dict[str, Any]) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [
        spec.get("schedule", ""),
        spec.get("timeZone", "<none>"),
        str(bool(spec.get("suspend"))),
        len(st.get("active") or []),
    ]


def _hpa(o: dict[str, Any]) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    targets = []
    for m in spec.get("metrics") or []:
        target = (m.get("resource") or {}).get("target") or {}
        if "averageUtilization" in target:
            targets.append(
                f"{m['resource'].get('name')}: <unknown>/{target['averageUtilization']}%"
            )
    if "targetCPUUtilizationPercentage" in spec:
        targets.append(f"cpu: <unknown>/{spec['targetCPUUtilizationPercentage']}%")
    return [
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        ", ".join(targets) or "<none>",
        spec.get("minReplicas", 1),
        spec.get("maxReplicas", 0),
        st.get("currentReplicas", 0),
    ]


COLUMNS: dict[str, tuple[list[str], Any]] = {
    "jobs": (["Status", "Completions"], _job),
    "cronjobs": (["Schedule", "Timezone", "Suspend", "Active"], _cronjob),
    "horizontalpodautoscalers": (["Reference", "Targets", "MinPods", "MaxPods", "Replicas"], _hpa),
    "pods": (["Ready", "Status", "Restarts"], _pod),
    "deployments": (["Ready", "Up-to-date", "Available"], _deploy),
    "replicasets": (["Desired", "Current", "Ready"], _rs),
    "services": (["Type", "Cluster-IP", "External-IP", "Port(s)"], _svc),
    "configmaps": (["Data"], _cm),
    "secrets": (["Type", "Data"], _secret),
    "namespaces": (["Status"], _ns),
    "events": (["Last Seen", "Type", "Reason", "Object", "Message"], _event),
}


def _column(name: str) -> dict[str, Any]:
    fmt = "name" if name == "Name" else ""
    return {"name": name, "type": "string", "format": fmt, "description": name, "priority": 0}


def table(
    res: Resource, items: list[dict[str, Any]], meta: dict[str, Any], include: str
) -> dict[str, Any]:
    names, cells = COLUMNS.get(res.plural, ([], lambda o: []))
    framed = res.plural != "events"  # events print without Name and Age, like the real server
    columns = [_column(n) for n in (["Name", *names, "Age"] if framed else names)]
    rows = []
    for o in items:
        if include == "None":
            obj = None
        elif include == "Object":
            obj = {"kind": res.kind, "apiVersion": res.group_version, **o}
        else:
            obj = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            }
        row_cells = cells(o)
        if framed:
            age = _age(o["metadata"].get("creationTimestamp"))
            row_cells = [o["metadata"]["name"], *row_cells, age]
        row: dict[str, Any] = {"cells": row_cells}
        if obj is not None:
            row["object"] = obj
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    }
