"""The Kubernetes permissions dagster-uc needs in the Dagster namespace, and checking them
with SelfSubjectAccessReview (what `kubectl auth can-i` asks).

The list is the Role an administrator applies, docs/rbac/dagster-uc-role.yaml (shipped in the
package as `dagster_uc/doctor/dagster-uc-role.yaml`, a link to that file): the checks are
derived from it, so the Role and the checks cannot drift apart.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
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


ROLE_FILE = "dagster-uc-role.yaml"


@functools.cache
def required_permissions() -> frozenset[Permission]:
    """Every permission of the packaged Role, one per group, resource and verb."""
    import yaml

    text = resources.files("dagster_uc.doctor").joinpath(ROLE_FILE).read_text(encoding="utf-8")
    roles = [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind") == "Role"]
    if len(roles) != 1:
        raise ValueError(f"{ROLE_FILE} must hold exactly one Role")
    return rules_from_role(roles[0])


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
    required: Iterable[Permission],
    *,
    workers: int = 8,
) -> list[Permission]:
    """The required permissions the current user lacks (reviews sent concurrently)."""
    wanted = sorted(required)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        allowed = list(pool.map(lambda p: is_allowed(client, p, namespace), wanted))
    return [p for p, ok in zip(wanted, allowed, strict=True) if not ok]
