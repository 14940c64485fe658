"""Controllers and a fake kubelet, so `helm --wait` and `kubectl rollout status` really wait.

Deployment -> ReplicaSet (keyed by pod-template hash) -> Pods; the kubelet moves pods from
Pending to Running (started, not ready) after half of `ready_delay` and to Ready after
`ready_delay`, unless a hold (`Emulator.hold_unready`) keeps them crash-looping. Jobs
complete, StatefulSets and DaemonSets report ready. The loop reconciles everything whenever
the store changes and otherwise wakes up for timed transitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from . import dagster
from .api import NS, Api, _suffix
from .resources import BY_PATH
from .selectors import Requirement, labels_match
from .store import ApiError, Event, Store, now, now_micro

DEPLOY = BY_PATH[("apps", "v1", "deployments")]
RS = BY_PATH[("apps", "v1", "replicasets")]
STS = BY_PATH[("apps", "v1", "statefulsets")]
DS = BY_PATH[("apps", "v1", "daemonsets")]
POD = BY_PATH[("", "v1", "pods")]
JOB = BY_PATH[("batch", "v1", "jobs")]
EVENT = BY_PATH[("", "v1", "events")]
NODE = BY_PATH[("", "v1", "nodes")]
NODE_NAME = "emulator-control-plane"
REVISION = "deployment.kubernetes.io/revision"
RESTART_EVERY = 2.0


def template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    n = int.from_bytes(digest[:8], "big")
    out = ""
    for _ in range(10):
        n, r = divmod(n, len(alphabet))
        out += alphabet[r]
    return out


def canonical(value: Any) -> Any:
    """`value` without nulls and empty maps/lists: the Go structs they decode to are equal.

    Clients send the same template in different shapes (`creationTimestamp: null` and
    `resources: {}` from Go clients, nothing from YAML); the real controller compares and hashes
    decoded structs, so a rollback to an old template reuses the old ReplicaSet.
    """
    if isinstance(value, dict):
        out = {k: canonical(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = canonical(template)
    labels = (t.get("metadata") or {}).get("labels") or {}
    labels.pop("pod-template-hash", None)
    return canonical(t)


def _controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def _by_owner(objs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for o in objs:
        uid = _controller_uid(o)
        if uid:
            out.setdefault(uid, []).append(o)
    return out


def _pod_from_template(owner: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    """A new pod of `owner` (ReplicaSet or Job) from its pod template."""
    meta, tmeta = owner["metadata"], template.get("metadata") or {}
    body: dict[str, Any] = {
        "metadata": {
            "name": f"{meta['name']}-{_suffix()}",
            "namespace": meta["namespace"],
            "labels": dict(tmeta.get("labels") or {}),
            "ownerReferences": [_owner_ref(owner)],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }
    if tmeta.get("annotations"):
        body["metadata"]["annotations"] = dict(tmeta["annotations"])
    return body


#: Namespace annotation Linkerd's proxy injector (a mutating admission webhook) acts on.
MESH_INJECT = "linkerd.io/inject"
MESH_PROXY = "linkerd-proxy"
MESH_INIT = "linkerd-init"
MESH_IMAGE = "cr.l5d.io/linkerd/proxy:edge-24.11.8"


def inject_mesh_sidecar(namespace: dict[str, Any] | None, pod: dict[str, Any]) -> dict[str, Any]:
    """What a service-mesh injector makes of a new pod in a namespace annotated
    `linkerd.io/inject: enabled`: its proxy becomes the FIRST container (so the proxy is up
    before the application starts) and an init container sets up the network."""
    annotations = ((namespace or {}).get("metadata") or {}).get("annotations") or {}
    spec = pod.setdefault("spec", {})
    names = [c.get("name") for c in spec.get("containers") or []]
    if annotations.get(MESH_INJECT) != "enabled" or MESH_PROXY in names:
        return pod
    spec["initContainers"] = [
        {"name": MESH_INIT, "image": MESH_IMAGE.replace("proxy:", "proxy-init:"), "args": []},
        *(spec.get("initContainers") or []),
    ]
    spec["containers"] = [
        {
            "name": MESH_PROXY,
            "image": MESH_IMAGE,
            "ports": [{"name": MESH_PROXY, "containerPort": 4143, "protocol": "TCP"}],
        },
        *(spec.get("containers") or []),
    ]
    return pod


def _owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return int(-(-exact // 1)) if round_up else int(exact)
    return int(value or 0)


@dataclass
class Hold:
    namespace: str
    selector: str
    reqs: list[Requirement]


@dataclass
class PodLogs:
    """Container log lines by (namespace, pod, container); followers wait on `changed`."""

    lines: dict[tuple[str, str, str], list[tuple[str, str]]] = field(default_factory=dict)
    changed: asyncio.Event | None = None

    def append(self, ns: str, pod: str, container: str, texts: list[str]) -> None:
        buf = self.lines.setdefault((ns, pod, container), [])
        buf.extend((now_micro(), t) for t in texts)
        self.notify()

    def notify(self) -> None:
        if self.changed is not None:
            self.changed.set()
            self.changed = asyncio.Event()

    async def wait(self) -> None:
        if self.changed is None:
            self.changed = asyncio.Event()
        await self.changed.wait()


class Controllers:
    def __init__(self, api: Api, store: Store, ready_delay: float, logs: PodLogs) -> None:
        self.api = api
        self.store = store
        self.ready_delay = ready_delay
        self.logs = logs
        self.holds: list[Hold] = []
        self.dirty: asyncio.Event | None = None
        self._seen: dict[str, float] = {}
        self._owned: dict[str, list[dict[str, Any]]] = {}
        self._restarted: dict[str, float] = {}
        self._event_names: dict[tuple[str, str], str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        store.listeners.append(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.res is EVENT:
            return
        if self._loop is not None and self.dirty is not None:
            self._loop.call_soon_threadsafe(self.dirty.set)

    def wake(self) -> None:
        if self._loop is not None and self.dirty is not None:
            self._loop.call_soon_threadsafe(self.dirty.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.dirty = asyncio.Event()
        self._ensure_node()
        while True:
            self.dirty.clear()
            timeout = 1.0
            started = time.monotonic()
            try:
                timeout = self.reconcile()
            except Exception:  # a controller bug must not kill the server
                import traceback

                traceback.print_exc()
            # A pass looks at every object; while events stream in (a `delete --all` of
            # hundreds of releases) back-to-back passes would starve the API handlers on the
            # same loop, so the controllers take at most a quarter of it.
            await asyncio.sleep(min(3 * (time.monotonic() - started), 0.25))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.dirty.wait(), timeout)

    def reconcile(self) -> float:
        """One pass over everything; returns how long the loop may sleep."""
        self._owned = _by_owner(self.store.list(RS))
        for d in self.store.list(DEPLOY):
            self._sync_deployment(d)
        self._owned = _by_owner(self.store.list(POD))
        for rs in self.store.list(RS):
            self._sync_replicaset(rs)
        wait = 1.0
        for pod in self.store.list(POD):
            wait = min(wait, self._kubelet(pod))
        for job in self.store.list(JOB):
            wait = min(wait, self._sync_job(job))
        for res in (STS, DS):
            for obj in self.store.list(res):
                self._sync_simple(res, obj)
        live = self.store.uids(POD)
        for uid in list(self._seen):
            if uid not in live:
                self._seen.pop(uid, None)
                self._restarted.pop(uid, None)
        return max(wait, 0.01)

    # --- helpers ---------------------------------------------------------------------------

    def _write_status(self, res: Any, obj: dict[str, Any], status: dict[str, Any]) -> None:
        if obj.get("status") == status:
            return
        fresh = self.store.get(res, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if fresh is None or fresh["metadata"]["uid"] != obj["metadata"]["uid"]:
            return
        fresh["status"] = status
        self.store.write(res, fresh)

    def _ensure_node(self) -> None:
        if self.store.get(NODE, "", NODE_NAME) is None:
            self.api.create(
                NODE,
                None,
                {
                    "metadata": {
                        "name": NODE_NAME,
                        "labels": {
                            "kubernetes.io/hostname": NODE_NAME,
                            "node-role.kubernetes.io/control-plane": "",
                            # The node pool, as AKS labels its nodes (`node: pool1` in tests).
                            "agentpool": "pool1",
                        },
                    },
                    "spec": {},
                },
            )
            node = self.store.get(NODE, "", NODE_NAME)
            assert node is not None
            node["status"] = {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": now(),
                        "lastTransitionTime": now(),
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "172.18.0.2"},
                    {"type": "Hostname", "address": NODE_NAME},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.32.3",
                    "containerRuntimeVersion": "emulated://1.0",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
                "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
                "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            }
            self.store.write(NODE, node)

    def record_event(
        self,
        obj: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        component: str,
        field_path: str | None = None,
    ) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        key = (meta["uid"], f"{reason}|{field_path}|{message}")
        name = self._event_names.get(key)
        existing = self.store.get(EVENT, ns, name) if name else None
        ts = now()
        if existing is not None:
            existing["count"] = existing.get("count", 1) + 1
            existing["lastTimestamp"] = ts
            existing["message"] = message
            self.store.write(EVENT, existing)
            return
        name = f"{meta['name']}.{int(time.time() * 1e9):x}"[:253]
        self._event_names[key] = name
        involved = {
            "kind": obj["kind"],
            "namespace": ns,
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": obj["apiVersion"],
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        with contextlib.suppress(ApiError):
            self.api.create(
                EVENT,
                ns,
                {
                    "metadata": {"name": name, "namespace": ns},
                    "involvedObject": involved,
                    "reason": reason,
                    "message": message,
                    "type": type_,
                    "source": {
                        "component": component,
                        **({"host": NODE_NAME} if component == "kubelet" else {}),
                    },
                    "firstTimestamp": ts,
                    "lastTimestamp": ts,
                    "count": 1,
                    "reportingComponent": component,
                    "reportingInstance": NODE_NAME if component == "kubelet" else "",
                },
            )

    # --- deployments ------------------------------------------------------------------------

    def _sync_deployment(self, d: dict[str, Any]) -> None:
        meta, spec = d["metadata"], d.get("spec") or {}
        ns = meta["namespace"]
        rss = list(self._owned.get(meta["uid"], []))
        template = spec.get("template") or {}
        desired = int(spec.get("replicas", 1))
        new_rs = next(
            (rs for rs in rss if _without_hash(rs["spec"]["template"]) == _without_hash(template)),
            None,
        )
        revisions = [
            int((rs["metadata"].get("annotations") or {}).get(REVISION, "0")) for rs in rss
        ]
        max_rev = max(revisions, default=0)
        if spec.get("paused"):
            return
        if new_rs is None:
            h = template_hash(_without_hash(template))
            tpl = copy.deepcopy(template)
            tpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})["pod-template-hash"] = h
            body = {
                "metadata": {
                    "name": f"{meta['name']}-{h}",
                    "namespace": ns,
                    "labels": dict(tpl["metadata"]["labels"]),
                    "annotations": {
                        REVISION: str(max_rev + 1),
                        "deployment.kubernetes.io/desired-replicas": str(desired),
                        "deployment.kubernetes.io/max-replicas": str(desired + 1),
                    },
                    "ownerReferences": [_owner_ref(d)],
                },
                "spec": {"replicas": desired, "selector": selector, "template": tpl},
            }
            try:
                new_rs = self.api.create(RS, ns, body)
            except ApiError:
                return
            self.record_event(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {new_rs['metadata']['name']} from 0 to {desired}",
                "deployment-controller",
            )
            rss.append(new_rs)
        else:
            ann = new_rs["metadata"].setdefault("annotations", {})
            rev = int(ann.get(REVISION, "0"))
            if new_rs["spec"].get("replicas") != desired or rev < max_rev or rev == 0:
                if rev < max_rev or rev == 0:
                    ann[REVISION] = str(max_rev + 1)
                ann["deployment.kubernetes.io/desired-replicas"] = str(desired)
                new_rs["spec"]["replicas"] = desired
                new_rs = self.store.write(RS, new_rs)
        self._set_revision(d, (new_rs["metadata"].get("annotations") or {}).get(REVISION))
        olds = [rs for rs in rss if rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        new_status = new_rs.get("status") or {}
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        new_done = new_status.get("availableReplicas", 0) >= desired
        for old in olds:
            if old["spec"].get("replicas", 0) and (recreate or new_done):
                old["spec"]["replicas"] = 0
                self.store.write(RS, old)
                self.record_event(
                    d,
                    "Normal",
                    "ScalingReplicaSet",
                    f"Scaled down replica set {old['metadata']['name']} from {(old.get('status') or {}).get('replicas', 0)} to 0",
                    "deployment-controller",
                )
        self._deployment_status(d, new_rs, olds, desired)

    def _set_revision(self, d: dict[str, Any], revision: str | None) -> None:
        """Copy the new ReplicaSet's revision onto the Deployment, as the real controller does
        (`kubectl rollout undo` replaces the Deployment's annotations and needs them there)."""
        meta = d["metadata"]
        if not revision or (meta.get("annotations") or {}).get(REVISION) == revision:
            return
        fresh = self.store.get(DEPLOY, meta["namespace"], meta["name"])
        if fresh is None or fresh["metadata"]["uid"] != meta["uid"]:
            return
        fresh["metadata"].setdefault("annotations", {})[REVISION] = revision
        written = self.store.write(DEPLOY, fresh)
        meta["annotations"] = written["metadata"]["annotations"]
        meta["resourceVersion"] = written["metadata"]["resourceVersion"]

    def _deployment_status(
        self, d: dict[str, Any], new_rs: dict[str, Any], olds: list[dict[str, Any]], desired: int
    ) -> None:
        spec = d.get("spec") or {}
        all_rs = [new_rs, *olds]
        st = [rs.get("status") or {} for rs in all_rs]
        replicas = sum(s.get("replicas", 0) for s in st)
        ready = sum(s.get("readyReplicas", 0) for s in st)
        available = sum(s.get("availableReplicas", 0) for s in st)
        updated = (new_rs.get("status") or {}).get("replicas", 0)
        new_available = (new_rs.get("status") or {}).get("availableReplicas", 0)
        ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = _percent(ru.get("maxUnavailable", "25%"), desired, round_up=False)
        old = d.get("status") or {}
        old_conds = {c["type"]: c for c in old.get("conditions") or []}
        ts = now()
        rs_name = new_rs["metadata"]["name"]

        def cond(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
            prev = old_conds.get(type_)
            same = prev and prev.get("status") == status and prev.get("reason") == reason
            return {
                "type": type_,
                "status": status,
                "lastUpdateTime": prev["lastUpdateTime"] if same and prev else ts,
                "lastTransitionTime": prev["lastTransitionTime"]
                if prev and prev.get("status") == status
                else ts,
                "reason": reason,
                "message": message,
            }

        if available >= desired - max_unavailable:
            avail = cond(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            avail = cond(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        complete = new_available >= desired and updated == desired and replicas == updated
        prev = old_conds.get("Progressing") or {}
        same_rs = f'"{rs_name}"' in prev.get("message", "")
        timed_out = (
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{rs_name}" has timed out progressing.',
        )
        if complete:
            prog = cond(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif same_rs and prev.get("reason") == "ProgressDeadlineExceeded":
            prog = cond(*timed_out)
        else:
            prog = cond(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
            )
            deadline = int(spec.get("progressDeadlineSeconds", 600))
            if (
                same_rs
                and prev.get("reason") == "ReplicaSetUpdated"
                and _age(prev["lastUpdateTime"]) > deadline
            ):
                prog = cond(*timed_out)
        status: dict[str, Any] = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": [avail, prog],
        }
        if replicas - available > 0:
            status["unavailableReplicas"] = replicas - available
        for k in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
            if not status[k]:
                del status[k]
        self._write_status(DEPLOY, d, status)

    # --- replicasets --------------------------------------------------------------------------

    def _sync_replicaset(self, rs: dict[str, Any]) -> None:
        meta, spec = rs["metadata"], rs.get("spec") or {}
        ns = meta["namespace"]
        pods = list(self._owned.get(meta["uid"], []))
        desired = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        for _ in range(desired - len(pods)):
            try:
                namespace = self.store.get(NS, "", ns)
                body = inject_mesh_sidecar(namespace, _pod_from_template(rs, template))
                pod = self.api.create(POD, ns, body)
            except ApiError as refused:
                self.record_event(
                    rs,
                    "Warning",
                    "FailedCreate",
                    f"Error creating: {refused.message}",
                    "replicaset-controller",
                )
                break
            pods.append(pod)
            self.record_event(
                rs,
                "Normal",
                "SuccessfulCreate",
                f"Created pod: {pod['metadata']['name']}",
                "replicaset-controller",
            )
        if len(pods) > desired:
            pods.sort(
                key=lambda p: (_is_ready(p), p["metadata"]["creationTimestamp"]), reverse=False
            )
            for pod in pods[: len(pods) - desired]:
                self.store.remove(POD, ns, pod["metadata"]["name"])
                self.record_event(
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    f"Deleted pod: {pod['metadata']['name']}",
                    "replicaset-controller",
                )
            pods = pods[len(pods) - desired :]
        ready = sum(1 for p in pods if _is_ready(p))
        status: dict[str, Any] = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": meta.get("generation", 1),
        }
        for k in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
            if not status[k]:
                del status[k]
        self._write_status(RS, rs, status)

    # --- kubelet ----------------------------------------------------------------------------

    def is_held(self, pod: dict[str, Any]) -> bool:
        meta = pod["metadata"]
        return any(
            h.namespace == meta.get("namespace") and labels_match(h.reqs, meta.get("labels"))
            for h in self.holds
        )

    def _kubelet(self, pod: dict[str, Any]) -> float:
        """Advance one pod; returns seconds until it next needs attention."""
        meta = pod["metadata"]
        uid = meta["uid"]
        clock = time.monotonic()
        seen = self._seen.setdefault(uid, clock)
        age = clock - seen
        status = pod.get("status") or {}
        phase = status.get("phase", "Pending")
        containers = (pod.get("spec") or {}).get("containers") or []
        held = self.is_held(pod)
        start_at, ready_at = self.ready_delay / 2, self.ready_delay
        if phase in ("Succeeded", "Failed"):
            return 1.0
        if phase == "Pending":
            if age < start_at:
                return start_at - age
            if not self._fits_node(pod):
                return 1.0
            self._start_pod(pod, containers)
            return 0.01
        run_once = (pod.get("spec") or {}).get("restartPolicy") in ("Never", "OnFailure")
        if held and (pod.get("spec") or {}).get("restartPolicy") == "Never":
            self._finish(pod, containers, exit_code=1)
            return 1.0
        if held:
            last = self._restarted.get(uid, 0.0)
            if _is_ready(pod) or clock - last >= RESTART_EVERY:
                self._restarted[uid] = clock
                self._crash(pod, containers)
            return RESTART_EVERY - (clock - self._restarted[uid]) + 0.01
        if not _is_ready(pod):
            if age < ready_at:
                return ready_at - age
            self._make_ready(pod, containers)
            return ready_at if run_once else 1.0
        if run_once:
            if age < 2 * ready_at:
                return 2 * ready_at - age
            self._finish(pod, containers, exit_code=0)
        return 1.0

    def _finish(
        self, pod: dict[str, Any], containers: list[dict[str, Any]], exit_code: int
    ) -> None:
        """A run-to-completion pod (restartPolicy Never/OnFailure) whose containers exited."""
        ts = now()
        status = pod["status"]
        reason = "PodCompleted" if exit_code == 0 else "PodFailed"
        status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        conditions = []
        for c in self._conditions(ts, ready=False, previous=status.get("conditions")):
            if c["type"] in ("Initialized", "Ready", "ContainersReady"):
                c = {**c, "reason": reason}
            elif c["type"] == "PodReadyToStartContainers":
                c = {**c, "status": "False", "lastTransitionTime": ts}
            conditions.append(c)
        status["conditions"] = conditions
        statuses = []
        for cs in status.get("containerStatuses") or []:
            started = ((cs.get("state") or {}).get("running") or {}).get("startedAt", ts)
            terminated = {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": started,
                "finishedAt": ts,
                "containerID": cs.get("containerID", ""),
            }
            statuses.append(
                {**cs, "ready": False, "started": False, "state": {"terminated": terminated}}
            )
        status["containerStatuses"] = statuses
        self.store.write(POD, pod)

    def _fits_node(self, pod: dict[str, Any]) -> bool:
        """The scheduler's node selector check: a pod whose nodeSelector the node's labels do
        not satisfy stays Pending, with the scheduler's condition and event."""
        wanted = (pod.get("spec") or {}).get("nodeSelector") or {}
        node = self.store.get(NODE, "", NODE_NAME)
        labels = (node or {}).get("metadata", {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in wanted.items()):
            return True
        message = (
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
            "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        )
        status = pod.setdefault("status", {})
        if not any(c.get("type") == "PodScheduled" for c in status.get("conditions") or []):
            status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastTransitionTime": now(),
                    "lastProbeTime": None,
                }
            ]
            self.store.write(POD, pod)
        self.record_event(pod, "Warning", "FailedScheduling", message, "default-scheduler")
        return False

    def _start_pod(self, pod: dict[str, Any], containers: list[dict[str, Any]]) -> None:
        meta = pod["metadata"]
        ts = now()
        pod.setdefault("spec", {})["nodeName"] = NODE_NAME
        pod["status"] = {
            **(pod.get("status") or {}),
            "phase": "Running",
            "hostIP": "172.18.0.2",
            "hostIPs": [{"ip": "172.18.0.2"}],
            "podIP": self.api.next_pod_ip(),
            "startTime": ts,
            "conditions": self._conditions(ts, ready=False),
            "containerStatuses": [self._container_status(c, ts, ready=False) for c in containers],
        }
        pod["status"]["podIPs"] = [{"ip": pod["status"]["podIP"]}]
        self.store.write(POD, pod)
        self.record_event(
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {NODE_NAME}",
            "default-scheduler",
        )
        for c in containers:
            path = f"spec.containers{{{c['name']}}}"
            self.record_event(
                pod,
                "Normal",
                "Pulled",
                f'Container image "{c.get("image", "")}" already present on machine',
                "kubelet",
                path,
            )
            self.record_event(
                pod, "Normal", "Created", f"Created container {c['name']}", "kubelet", path
            )
            self.record_event(
                pod, "Normal", "Started", f"Started container {c['name']}", "kubelet", path
            )
            self.logs.append(meta["namespace"], meta["name"], c["name"], dagster.startup_lines(c))

    def _make_ready(self, pod: dict[str, Any], containers: list[dict[str, Any]]) -> None:
        meta = pod["metadata"]
        ts = now()
        status = pod["status"]
        status["conditions"] = self._conditions(ts, ready=True, previous=status.get("conditions"))
        status["containerStatuses"] = [
            {
                **cs,
                "ready": True,
                "started": True,
                "state": {
                    "running": {
                        "startedAt": ((cs.get("state") or {}).get("running") or {}).get(
                            "startedAt", ts
                        )
                    }
                },
            }
            for cs in status.get("containerStatuses") or []
        ]
        self.store.write(POD, pod)
        for c in containers:
            self.logs.append(meta["namespace"], meta["name"], c["name"], dagster.ready_lines(c))

    def _crash(self, pod: dict[str, Any], containers: list[dict[str, Any]]) -> None:
        meta = pod["metadata"]
        ts = now()
        status = pod["status"]
        statuses = []
        for i, c in enumerate(containers):
            existing = status.get("containerStatuses") or []
            cs = existing[i] if i < len(existing) else self._container_status(c, ts, ready=False)
            restarts = cs.get("restartCount", 0) + 1
            statuses.append(
                {
                    **cs,
                    "ready": False,
                    "started": False,
                    "restartCount": restarts,
                    "state": {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {min(10 * 2 ** (restarts - 1), 300)}s restarting failed container={c['name']} pod={meta['name']}_{meta['namespace']}({meta['uid']})",
                        }
                    },
                    "lastState": {
                        "terminated": {
                            "exitCode": 1,
                            "reason": "Error",
                            "startedAt": ts,
                            "finishedAt": ts,
                            "containerID": cs.get("containerID", ""),
                        }
                    },
                }
            )
            path = f"spec.containers{{{c['name']}}}"
            self.record_event(
                pod,
                "Warning",
                "BackOff",
                "Back-off restarting failed container "
                + f"{c['name']} in pod {meta['name']}_{meta['namespace']}({meta['uid']})",
                "kubelet",
                path,
            )
            if c.get("readinessProbe"):
                self.record_event(
                    pod,
                    "Warning",
                    "Unhealthy",
                    "Readiness probe failed: container is not serving",
                    "kubelet",
                    path,
                )
            self.logs.append(meta["namespace"], meta["name"], c["name"], dagster.crash_lines(c))
        status["containerStatuses"] = statuses
        status["conditions"] = self._conditions(ts, ready=False, previous=status.get("conditions"))
        self.store.write(POD, pod)

    @staticmethod
    def _conditions(
        ts: str, ready: bool, previous: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        prev = {c["type"]: c for c in previous or []}
        out = []
        for type_ in (
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ):
            value = "True" if ready or type_ not in ("Ready", "ContainersReady") else "False"
            p = prev.get(type_)
            c: dict[str, Any] = {
                "type": type_,
                "status": value,
                "lastProbeTime": None,
                "lastTransitionTime": p["lastTransitionTime"] if p and p["status"] == value else ts,
            }
            if value == "False":
                c["reason"] = "ContainersNotReady"
            out.append(c)
        return out

    @staticmethod
    def _container_status(c: dict[str, Any], ts: str, ready: bool) -> dict[str, Any]:
        digest = hashlib.sha256(str(c.get("image", "")).encode()).hexdigest()
        return {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": f"{str(c.get('image', '')).split(':')[0]}@sha256:{digest}",
            "containerID": f"containerd://{hashlib.sha256((c['name'] + ts + str(time.monotonic())).encode()).hexdigest()}",
            "ready": ready,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": ts}},
        }

    # --- jobs, statefulsets, daemonsets ----------------------------------------------------

    def _sync_job(self, job: dict[str, Any]) -> float:
        """Run the Job's pods (the fake kubelet completes them) and mirror them in its status."""
        meta, spec = job["metadata"], job.get("spec") or {}
        status = job.get("status") or {}
        if status.get("completionTime") or _job_failed(status):
            return 1.0
        ns, uid = meta["namespace"], meta["uid"]
        pods = self.store.list(POD, ns, lambda p: _controller_uid(p) == uid)
        phases = [(p.get("status") or {}).get("phase", "Pending") for p in pods]
        succeeded, failed = phases.count("Succeeded"), phases.count("Failed")
        active = len(pods) - succeeded - failed
        completions = int(spec.get("completions", 1))
        parallelism = int(spec.get("parallelism", 1))
        backoff_limit = int(spec.get("backoffLimit", 6))
        if spec.get("suspend"):
            return 1.0
        ts = now()
        if succeeded >= completions:
            self._write_status(JOB, job, _job_done(status, ts, completions, failed))
            self.record_event(job, "Normal", "Completed", "Job completed", "job-controller")
            return 1.0
        if failed > backoff_limit:
            self._write_status(JOB, job, _job_failed_status(status, ts, failed))
            self.record_event(
                job,
                "Warning",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                "job-controller",
            )
            return 1.0
        template = spec.get("template") or {}
        for _ in range(max(0, min(parallelism, completions - succeeded) - active)):
            try:
                pod = self.api.create(POD, ns, _pod_from_template(job, template))
            except ApiError:
                continue
            active += 1
            self.record_event(
                job,
                "Normal",
                "SuccessfulCreate",
                f"Created pod: {pod['metadata']['name']}",
                "job-controller",
            )
        ready = sum(1 for p in pods if _is_ready(p))
        new_status = {
            **{k: v for k, v in status.items() if k not in ("active", "succeeded", "failed")},
            "startTime": status.get("startTime") or ts,
            "ready": ready,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        }
        for key, value in (("active", active), ("succeeded", succeeded), ("failed", failed)):
            if value:
                new_status[key] = value
        self._write_status(JOB, job, new_status)
        return 1.0

    def _sync_simple(self, res: Any, obj: dict[str, Any]) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        revision = f"{meta['name']}-{template_hash(spec.get('template') or {})[:10]}"
        gen = meta.get("generation", 1)
        if res is STS:
            n = int(spec.get("replicas", 1))
            status = {
                "observedGeneration": gen,
                "replicas": n,
                "readyReplicas": n,
                "currentReplicas": n,
                "updatedReplicas": n,
                "availableReplicas": n,
                "currentRevision": revision,
                "updateRevision": revision,
                "collisionCount": 0,
            }
        else:
            status = {
                "observedGeneration": gen,
                "desiredNumberScheduled": 1,
                "currentNumberScheduled": 1,
                "numberReady": 1,
                "updatedNumberScheduled": 1,
                "numberAvailable": 1,
                "numberMisscheduled": 0,
            }
        self._write_status(res, obj, status)


def _job_failed(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Failed" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _job_condition(type_: str, ts: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True",
        "lastProbeTime": ts,
        "lastTransitionTime": ts,
        "reason": reason,
        "message": message,
    }


def _job_done(status: dict[str, Any], ts: str, completions: int, failed: int) -> dict[str, Any]:
    message = "Reached expected number of succeeded pods"
    out: dict[str, Any] = {
        "startTime": status.get("startTime") or ts,
        "completionTime": ts,
        "succeeded": completions,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
        "conditions": [
            _job_condition("SuccessCriteriaMet", ts, "CompletionsReached", message),
            _job_condition("Complete", ts, "CompletionsReached", message),
        ],
    }
    if failed:
        out["failed"] = failed
    return out


def _job_failed_status(status: dict[str, Any], ts: str, failed: int) -> dict[str, Any]:
    message = "Job has reached the specified backoff limit"
    return {
        "startTime": status.get("startTime") or ts,
        "failed": failed,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
        "conditions": [
            _job_condition("FailureTarget", ts, "BackoffLimitExceeded", message),
            _job_condition("Failed", ts, "BackoffLimitExceeded", message),
        ],
    }


def _age(ts: str) -> float:
    from datetime import datetime, timezone

    then = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - then).total_seconds()
