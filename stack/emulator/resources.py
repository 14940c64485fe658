"""The resource types the emulator serves: discovery data and the lookup tables built from it."""

from __future__ import annotations

from dataclasses import dataclass

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def qualified(self) -> str:
        """How the real server names the resource in messages: `deployments.apps`, `configmaps`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


def _r(
    gv: str, plural: str, kind: str, *, ns: bool = True, short: str = "", sub: str = ""
) -> Resource:
    group, _, version = gv.rpartition("/")
    return Resource(group, version, plural, kind, ns, tuple(short.split()), tuple(sub.split()))


RESOURCES: list[Resource] = [
    _r("v1", "namespaces", "Namespace", ns=False, short="ns", sub="status finalize"),
    _r("v1", "nodes", "Node", ns=False, short="no", sub="status"),
    _r("v1", "configmaps", "ConfigMap", short="cm"),
    _r("v1", "secrets", "Secret"),
    _r("v1", "services", "Service", short="svc", sub="status"),
    _r("v1", "pods", "Pod", short="po", sub="status log exec"),
    _r("v1", "events", "Event", short="ev"),
    _r("v1", "serviceaccounts", "ServiceAccount", short="sa"),
    _r("v1", "endpoints", "Endpoints", short="ep"),
    _r("v1", "persistentvolumeclaims", "PersistentVolumeClaim", short="pvc", sub="status"),
    _r("v1", "resourcequotas", "ResourceQuota", short="quota", sub="status"),
    _r("v1", "limitranges", "LimitRange", short="limits"),
    _r("apps/v1", "deployments", "Deployment", short="deploy", sub="status scale"),
    _r("apps/v1", "replicasets", "ReplicaSet", short="rs", sub="status scale"),
    _r("apps/v1", "statefulsets", "StatefulSet", short="sts", sub="status scale"),
    _r("apps/v1", "daemonsets", "DaemonSet", short="ds", sub="status"),
    _r("apps/v1", "controllerrevisions", "ControllerRevision"),
    _r("batch/v1", "jobs", "Job", sub="status"),
    _r("batch/v1", "cronjobs", "CronJob", short="cj", sub="status"),
    _r("coordination.k8s.io/v1", "leases", "Lease"),
    _r("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _r("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _r("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", ns=False),
    _r("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", ns=False),
    _r("networking.k8s.io/v1", "ingresses", "Ingress", short="ing", sub="status"),
    _r("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", short="netpol"),
    _r("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", short="pdb", sub="status"),
    _r(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short="hpa",
        sub="status",
    ),
    # Served too (after v2, the preferred version) and stored as v2; see versions.py.
    _r(
        "autoscaling/v1",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short="hpa",
        sub="status",
    ),
    _r("storage.k8s.io/v1", "storageclasses", "StorageClass", ns=False, short="sc"),
    _r("scheduling.k8s.io/v1", "priorityclasses", "PriorityClass", ns=False, short="pc"),
]

BY_PATH: dict[tuple[str, str, str], Resource] = {
    (r.group, r.version, r.plural): r for r in RESOURCES
}
BY_KIND: dict[tuple[str, str], Resource] = {(r.group_version, r.kind): r for r in RESOURCES}


def group_versions() -> dict[str, list[Resource]]:
    """Resources by group/version, in declaration order (core `v1` first)."""
    out: dict[str, list[Resource]] = {}
    for r in RESOURCES:
        out.setdefault(r.group_version, []).append(r)
    return out


def lookup(api_version: str, plural_or_kind: str) -> Resource | None:
    """Find a resource by apiVersion plus plural name or kind."""
    group, _, version = api_version.rpartition("/")
    return BY_PATH.get((group, version, plural_or_kind)) or BY_KIND.get(
        (api_version, plural_or_kind)
    )
