"""The Dagster instance installed by Dagster's own chart: its version, and reloading it."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dagster_uc.kube import api_error_code, api_errors

if TYPE_CHECKING:
    from lightkube import Client

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
VERSION_LABEL = "app.kubernetes.io/version"
_CHART_LABEL = re.compile(r"^dagster-(\d+\.\d+\.\d+\S*)$")
_IMAGE_TAG = re.compile(r":(\d+\.\d+\.\d+[^:@/]*)$")


@dataclass(frozen=True)
class InstanceVersion:
    version: str | None
    source: str


def version_from_deployment(labels: dict[str, str], images: list[str]) -> InstanceVersion:
    """The Dagster version of the chart's daemon Deployment, from its labels or image tag."""
    if labels.get(VERSION_LABEL):
        return InstanceVersion(labels[VERSION_LABEL].strip('"'), f"label {VERSION_LABEL}")
    match = _CHART_LABEL.match(labels.get("helm.sh/chart", ""))
    if match:
        return InstanceVersion(match.group(1), "label helm.sh/chart")
    for image in images:
        tag = _IMAGE_TAG.search(image)
        if tag:
            return InstanceVersion(tag.group(1), f"image {image}")
    return InstanceVersion(None, "nothing on the daemon Deployment names a version")


def cluster_dagster_version(client: Client, namespace: str, daemon_name: str) -> InstanceVersion:
    """Read the Dagster version from the daemon Deployment (one GET, no exec needed)."""
    from lightkube import ApiError
    from lightkube.resources.apps_v1 import Deployment

    with api_errors(f"read Deployment {daemon_name}"):
        try:
            deployment = client.get(Deployment, daemon_name, namespace=namespace)
        except ApiError as exc:
            if api_error_code(exc) == 404:
                return InstanceVersion(None, f"Deployment {daemon_name} not found")
            raise
    labels = dict(deployment.metadata.labels or {}) if deployment.metadata else {}
    images = []
    if deployment.spec and deployment.spec.template.spec:
        images = [c.image or "" for c in deployment.spec.template.spec.containers]
    return version_from_deployment(labels, images)


def restart_deployments(client: Client, namespace: str, names: list[str]) -> list[str]:
    """`kubectl rollout restart` for each name; returns the names that do not exist."""
    from lightkube import ApiError
    from lightkube.resources.apps_v1 import Deployment
    from lightkube.types import PatchType

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    missing = []
    for name in names:
        with api_errors(f"restart Deployment {name}"):
            try:
                client.patch(
                    Deployment, name, patch, namespace=namespace, patch_type=PatchType.STRATEGIC
                )
            except ApiError as exc:
                if api_error_code(exc) != 404:
                    raise
                missing.append(name)
    return missing
