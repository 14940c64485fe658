"""The Kubernetes permissions dagster-uc needs in the Dagster namespace, and checking them
with SelfSubjectAccessReview (what `kubectl auth can-i` asks).

`REQUIRED` is the one list: docs/rbac/dagster-uc-role.yaml is the same list as a Role an
administrator applies, and tests/cli/test_doctor_permissions.py fails when the two differ
(`rules_from_role` expands a Role into these tuples).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightkube import Client


@dataclass(frozen=True, order=True)
class Permission:
    """One verb on one resource (`pods/log`: resource `pods`, subresource `log`) of an API group
    ('' for the core group)."""

    group: str
    resource: str
    verb: str

    def describe(self) -> str:
        group = f".{self.group}" if self.group else ""
        base, _, sub = self.resource.partition("/")
        return f"{self.verb} {base}{group}{'/' + sub if sub else ''}"


def _expand(rules: Iterable[tuple[str, Iterable[str], Iterable[str]]]) -> frozenset[Permission]:
    return frozenset(
        Permission(group, resource, verb)
        for group, resources, verbs in rules
        for resource in resources
        for verb in verbs
    )


_READ = ("get", "list", "watch")
_WRITE = ("create", "update", "patch", "delete")

#: What dagster-uc and the Helm release it manages do in the namespace.
REQUIRED: frozenset[Permission] = _expand(
    [
        # State (values and workspace ConfigMaps); the chart's env ConfigMaps.
        ("", ["configmaps"], (*_READ, *_WRITE)),
        # Helm keeps its releases in Secrets.
        ("", ["secrets"], (*_READ, *_WRITE)),
        # The chart's Services and ServiceAccount.
        ("", ["services", "serviceaccounts"], (*_READ, *_WRITE)),
        # Rollout checks, `deployment check`, diagnosis on failure.
        ("", ["pods"], _READ),
        ("", ["pods/log"], ("get",)),
        ("", ["events"], ("list", "watch")),
        ("apps", ["replicasets"], _READ),
        # The code servers (chart), and reloading the webserver and daemon.
        ("apps", ["deployments"], (*_READ, *_WRITE)),
        # The deploy lock.
        ("coordination.k8s.io", ["leases"], ("get", "create", "update", "delete")),
    ]
)


def rules_from_role(role: Mapping[str, Any]) -> frozenset[Permission]:
    """The permissions a Role (or ClusterRole) document grants, one per group/resource/verb."""
    expanded: set[Permission] = set()
    for rule in role.get("rules") or []:
        if rule.get("resourceNames"):
            continue  # limited to named objects: not what a namespace-wide check asks
        expanded |= _expand(
            (group, rule.get("resources") or [], rule.get("verbs") or [])
            for group in rule.get("apiGroups") or [""]
        )
    return frozenset(expanded)


def review_body(permission: Permission, namespace: str) -> dict[str, Any]:
    resource, _, subresource = permission.resource.partition("/")
    attributes = {
        "namespace": namespace,
        "verb": permission.verb,
        "group": permission.group,
        "resource": resource,
    }
    if subresource:
        attributes["subresource"] = subresource
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }


def is_allowed(client: Client, permission: Permission, namespace: str) -> bool:
    """One SelfSubjectAccessReview (allowed to every authenticated user by Kubernetes)."""
    from lightkube.resources.authorization_v1 import SelfSubjectAccessReview

    review = SelfSubjectAccessReview.from_dict(review_body(permission, namespace))
    answer: Any = client.create(review)  # type: ignore[call-overload]
    return bool(answer.status and answer.status.allowed)


def missing_permissions(
    client: Client,
    namespace: str,
    required: Iterable[Permission] = REQUIRED,
    *,
    workers: int = 8,
) -> list[Permission]:
    """The required permissions the current user lacks (reviews sent concurrently)."""
    wanted = sorted(required)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        allowed = list(pool.map(lambda p: is_allowed(client, p, namespace), wanted))
    return [p for p, ok in zip(wanted, allowed, strict=True) if not ok]
