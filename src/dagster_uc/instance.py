"""The Dagster instance installed by Dagster's own chart: its version, and reloading it."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dagster_uc.kube import api_error_code, api_errors, describe_api_error

if TYPE_CHECKING:
    from lightkube import Client

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
VERSION_LABEL = "app.kubernetes.io/version"
_CHART_LABEL = re.compile(r"^dagster-(\S+)$")
_IMAGE_TAG = re.compile(r":(\d+\.\d+\.\d+[^:@/]*)$")
#: A released Dagster version (PEP 440 as Dagster publishes them): 1.8.4, 1.9.0rc1, 1.10.0.post1.
_RELEASE = re.compile(r"^\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?$")
#: What `dagster --version` prints: `dagster, version 1.8.4`.
_CLI_VERSION = re.compile(r"version (\S+)")
#: The container of Dagster's main chart (`{{ .Chart.Name }}`) in the daemon pod.
DAEMON_CONTAINER = "dagster"


@dataclass(frozen=True)
class InstanceVersion:
    version: str | None
    source: str


def is_release(text: str) -> bool:
    """Does `text` name a released Dagster version (not `dev`, `latest`, `0.0.1-dev`)?"""
    return bool(_RELEASE.match(text))


def version_from_deployment(labels: dict[str, str], images: list[str]) -> InstanceVersion:
    """The Dagster version of the chart's daemon Deployment, from its labels or image tag.

    A version label that is no version (`dev` from a self-built chart) is unknown, and so is
    the chart label next to it (that chart's own version); the image tag is read instead.
    """
    label = labels.get(VERSION_LABEL, "").strip('"')
    if is_release(label):
        return InstanceVersion(label, f"label {VERSION_LABEL}")
    match = _CHART_LABEL.match(labels.get("helm.sh/chart", ""))
    if not label and match and is_release(match.group(1)):
        return InstanceVersion(match.group(1), "label helm.sh/chart")
    for image in images:
        tag = _IMAGE_TAG.search(image)
        if tag and is_release(tag.group(1)):
            return InstanceVersion(tag.group(1), f"image {image}")
    if label:
        return InstanceVersion(
            None, f"label {VERSION_LABEL} is {label!r} and no image tag names a version"
        )
    return InstanceVersion(None, "nothing on the daemon Deployment names a version")


def version_from_cli(output: str) -> str | None:
    """The version in `dagster --version` output, if it is a release."""
    match = _CLI_VERSION.search(output)
    return match.group(1) if match and is_release(match.group(1)) else None


def cluster_dagster_version(client: Client, namespace: str, daemon_name: str) -> InstanceVersion:
    """Read the Dagster version from the daemon Deployment: its labels, its image tag, and
    when neither names a version, `dagster --version` run in a daemon pod (as the original
    dagster-uc does). One GET when the labels say it; a pod list and an exec otherwise."""
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
    found = version_from_deployment(labels, images)
    if found.version is not None:
        return found
    selector = {}
    if deployment.spec and deployment.spec.selector:
        selector = dict(deployment.spec.selector.matchLabels or {})
    asked = _version_by_exec(client, namespace, selector)
    if asked.version is not None:
        return asked
    return InstanceVersion(None, f"{found.source}; {asked.source}")


def _version_by_exec(client: Client, namespace: str, selector: dict[str, str]) -> InstanceVersion:
    """`dagster --version` in a running pod the daemon Deployment selects."""
    import httpx2
    from lightkube import ApiError
    from lightkube.resources.core_v1 import Pod

    if not selector:
        return InstanceVersion(None, "the daemon Deployment selects no pods")
    try:
        pods = [
            p
            for p in client.list(Pod, namespace=namespace, labels=dict(selector))
            if p.status and p.status.phase == "Running" and p.metadata and p.metadata.name
        ]
    except (ApiError, httpx2.HTTPError) as exc:
        return InstanceVersion(None, f"could not list the daemon pods: {describe_api_error(exc)}")
    if not pods:
        return InstanceVersion(None, "no daemon pod is running to ask `dagster --version`")
    pod = pods[0]
    assert pod.metadata is not None and pod.metadata.name is not None
    names = [c.name for c in (pod.spec.containers if pod.spec else [])]
    container = DAEMON_CONTAINER if DAEMON_CONTAINER in names else names[0]
    why = f"`dagster --version` in pod {pod.metadata.name}"
    try:
        from httpx2.websockets import HTTPXWSException, WebSocketUpgradeError
    except ImportError:  # wsproto, httpx2's WebSocket layer, is missing
        return InstanceVersion(None, f"could not run {why}: no WebSocket support (wsproto)")
    try:
        reply = client.exec(
            pod.metadata.name,
            namespace=namespace,
            container=container,
            command=["dagster", "--version"],
            stdout=True,
            stderr=True,
            timeout=30,
        )
    except WebSocketUpgradeError as exc:  # refused before the exec started (403 pods/exec)
        return InstanceVersion(None, f"could not run {why}: {_refusal(exc.response)}")
    except (ApiError, httpx2.HTTPError, HTTPXWSException) as exc:
        return InstanceVersion(None, f"could not run {why}: {describe_api_error(exc)}")
    output = str(reply.stdout or "")
    version = version_from_cli(output)
    if reply.exit_code or version is None:
        shown = output.strip() or str(reply.stderr or "").strip() or "no output"
        return InstanceVersion(None, f"{why} answered {shown!r} (exit {reply.exit_code})")
    return InstanceVersion(version, why)


def _refusal(response: Any) -> str:
    """`the Kubernetes API answered 403: <message>` of a refused WebSocket upgrade."""
    try:
        response.read()
        message = response.json().get("message") or response.text
    except Exception:  # not a Status body: the status line says enough
        message = response.reason_phrase
    return f"the Kubernetes API answered {response.status_code}: {message}"


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
