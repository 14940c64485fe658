"""Who owns Dagster's workspace ConfigMap.

dagster-uc rewrites the workspace ConfigMap on every change. When the main Dagster release
renders that ConfigMap itself (Dagster's chart does, unless `dagsterWebserver.workspace` points
to an external ConfigMap), the release's next `helm upgrade` puts its own list of locations
back and every location dagster-uc registered disappears from Dagster. Helm marks what it
owns with the `meta.helm.sh/release-name` annotation: that is what is checked here.
`workspace_owner` is pure (for `deploy` and `doctor`); `read_workspace_owner` reads the
ConfigMap once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from dagster_uc.kube import api_error_code, api_errors

if TYPE_CHECKING:
    from lightkube import Client

HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"
HELM_NAMESPACE_ANNOTATION = "meta.helm.sh/release-namespace"

Status = Literal["ok", "absent", "owned-by-release"]


@dataclass(frozen=True)
class WorkspaceOwner:
    """The verdict: `ok` is False only when a Helm release owns the ConfigMap."""

    status: Status
    message: str
    release: str | None = None
    fix: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "owned-by-release"


def workspace_owner(
    annotations: Mapping[str, str] | None, *, configmap: str, namespace: str
) -> WorkspaceOwner:
    """The owner of workspace ConfigMap `configmap` from its annotations (None: no ConfigMap)."""
    if annotations is None:
        return WorkspaceOwner(
            "absent", f"ConfigMap {configmap} does not exist yet; the next deploy creates it."
        )
    release = annotations.get(HELM_RELEASE_ANNOTATION)
    if not release:
        return WorkspaceOwner("ok", f"ConfigMap {configmap} is not owned by a Helm release.")
    release_ns = annotations.get(HELM_NAMESPACE_ANNOTATION) or namespace
    message = (
        f"ConfigMap {configmap} is rendered by Helm release {release}, whose next upgrade "
        "resets the list of code locations; set dagsterWebserver.workspace.enabled=true and "
        f"dagsterWebserver.workspace.externalConfigmap={configmap} in release {release}."
    )
    fix = "\n".join(
        [
            "1. Keep the ConfigMap when the release stops rendering it:",
            f"   kubectl -n {namespace} annotate configmap {configmap} "
            "helm.sh/resource-policy=keep",
            f"2. In the values of release {release}, set:",
            "     dagsterWebserver:",
            "       workspace:",
            "         enabled: true",
            f"         externalConfigmap: {configmap}",
            f"   and run helm upgrade {release} -n {release_ns} with them.",
            "3. Hand the ConfigMap over to dagster-uc:",
            f"   kubectl -n {namespace} annotate configmap {configmap} "
            f"{HELM_RELEASE_ANNOTATION}- {HELM_NAMESPACE_ANNOTATION}- helm.sh/resource-policy-",
        ]
    )
    return WorkspaceOwner("owned-by-release", message, release=release, fix=fix)


def read_workspace_owner(client: Client, namespace: str, configmap: str) -> WorkspaceOwner:
    """`workspace_owner` of the ConfigMap as it is on the cluster (one GET)."""
    from lightkube import ApiError
    from lightkube.resources.core_v1 import ConfigMap

    with api_errors(f"read ConfigMap {configmap}"):
        try:
            found = client.get(ConfigMap, configmap, namespace=namespace)
        except ApiError as exc:
            if api_error_code(exc) != 404:
                raise
            return workspace_owner(None, configmap=configmap, namespace=namespace)
    annotations = dict((found.metadata.annotations if found.metadata else None) or {})
    return workspace_owner(annotations, configmap=configmap, namespace=namespace)
