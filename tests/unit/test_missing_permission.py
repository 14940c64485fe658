"""Permissions: a 403 names what is missing; the documented Role is the one in docs/rbac."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dagster_uc.errors import missing_permission

ROOT = Path(__file__).resolve().parents[2]
ROLE_FILE = ROOT / "docs" / "rbac" / "dagster-uc-role.yaml"
PAGE = ROOT / "docs" / "permissions.md"


def test_the_api_servers_forbidden_message_names_the_permission() -> None:
    message = (
        'configmaps "dagster-user-deployments-values-yaml" is forbidden: User "ann" cannot get '
        'resource "configmaps" in API group "" in the namespace "dagster"'
    )
    assert missing_permission(message) == 'get configmaps in namespace "dagster"'
    lease = (
        'leases.coordination.k8s.io "dagster-uc-semaphore" is forbidden: User "ci" cannot '
        'update resource "leases" in API group "coordination.k8s.io" in the namespace "prod"'
    )
    assert missing_permission(lease) == 'update leases.coordination.k8s.io in namespace "prod"'


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("GET", "https://k:6443/api/v1/namespaces/ns/configmaps/v", 'get configmaps in namespace "ns"'),
        ("GET", "https://k/api/v1/namespaces/ns/pods?labelSelector=a%3Db", 'list pods in namespace "ns"'),
        ("GET", "https://k/api/v1/namespaces/ns/pods?watch=true", 'watch pods in namespace "ns"'),
        ("GET", "https://k/api/v1/namespaces/ns/pods/p/log?container=c", 'get pods/log in namespace "ns"'),
        ("POST", "https://k/api/v1/namespaces/ns/pods/p/exec?command=x", 'create pods/exec in namespace "ns"'),
        ("PUT", "https://k/apis/coordination.k8s.io/v1/namespaces/ns/leases/l", 'update leases.coordination.k8s.io in namespace "ns"'),
        ("PATCH", "https://k/apis/apps/v1/namespaces/ns/deployments/d", 'patch deployments.apps in namespace "ns"'),
        ("POST", "https://k/apis/apps/v1/namespaces/ns/deployments", 'create deployments.apps in namespace "ns"'),
        ("DELETE", "https://k/api/v1/namespaces/ns/configmaps/c", 'delete configmaps in namespace "ns"'),
    ],
)  # fmt: skip
def test_without_that_message_the_request_names_the_permission(
    method: str, url: str, expected: str
) -> None:
    assert missing_permission("injected fault: Forbidden", method, url) == expected


def test_nothing_is_named_when_nothing_is_known() -> None:
    assert missing_permission("Forbidden") is None
    assert missing_permission("Forbidden", "GET", "https://k/version") is None


def _documented_role_yaml() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", PAGE.read_text(), flags=re.S)
    return next(b for b in blocks if "kind: Role\n" in b)


def test_the_page_shows_exactly_the_role_file() -> None:
    assert _documented_role_yaml() == ROLE_FILE.read_text()


def grants(role: dict, group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule["apiGroups"]
        and resource in rule["resources"]
        and (verb in rule["verbs"] or "*" in rule["verbs"])
        for rule in role["rules"]
    )


#: (API group, resource, verb) each command uses; Helm's upgrade of the user-code chart included.
NEEDED = [
    ("", "configmaps", v) for v in ("get", "create", "update", "delete")
] + [
    ("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")
] + [
    ("", "secrets", v) for v in ("get", "list", "create", "update", "delete")
] + [
    (g, r, v)
    for g, r in [("apps", "deployments"), ("", "services"), ("", "serviceaccounts"),
                 ("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "rolebindings")]
    for v in ("get", "create", "patch", "delete")
] + [
    ("apps", "deployments", "list"), ("apps", "replicasets", "list"), ("", "events", "list"),
    ("", "pods", "list"), ("", "pods", "get"), ("", "pods/log", "get"),
    ("", "pods/exec", "create"), ("", "pods/exec", "get"),
]  # fmt: skip


def test_the_role_grants_what_every_command_needs_and_binds_it() -> None:
    role, binding = list(yaml.safe_load_all(ROLE_FILE.read_text()))
    assert role["kind"] == "Role" and binding["kind"] == "RoleBinding"
    missing = [n for n in NEEDED if not grants(role, *n)]
    assert missing == []
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert "namespace" not in role["metadata"], "applied with kubectl -n <namespace>"
