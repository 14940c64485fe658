"""The values document of Dagster's `dagster-user-deployments` chart, kept on the cluster.

Pure functions only: they take and return plain documents so that every rule (entry shape,
upsert, removal, deployment records) is tested without a cluster. The format is the one the
original dagster-uc writes, so clusters set up by it keep working; keys this module does not
know are carried through untouched.
"""

from __future__ import annotations

import copy
import posixpath
from typing import TYPE_CHECKING, Any

from dagster_uc.history import (
    DeploymentHistory,
    DeploymentRecord,
    history_from_document,
    history_to_document,
)

if TYPE_CHECKING:
    from dagster_uc.config import Config

__all__ = [
    "DeploymentHistory",
    "DeploymentRecord",
    "history_from_document",
    "history_to_document",
]

GRPC_PORT = 3030
ANNOTATION_PREFIX = "dagster-uc.io/"


def empty_values(config: Config) -> dict[str, Any]:
    """The document created when the cluster has none yet."""
    return {
        "deployments": [],
        "imagePullSecrets": [
            s.model_dump() if hasattr(s, "model_dump") else dict(s)
            for s in config.image_pull_secrets
        ],
    }


def entries(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in values.get("deployments") or [] if isinstance(e, dict) and e.get("name")]


def find_entry(values: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((e for e in entries(values) if e["name"] == name), None)


def upsert_entry(values: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """A copy of `values` with `entry` replacing the entry of the same name, or appended.

    Dagster's chart reads pull secrets only from the top-level `imagePullSecrets` (an entry's
    own list is ignored), so the entry's are added there too; the ones already listed stay."""
    result = _shallow(values)
    deployments = list(result.get("deployments") or [])
    for index, existing in enumerate(deployments):
        if isinstance(existing, dict) and existing.get("name") == entry["name"]:
            deployments[index] = copy.deepcopy(entry)
            break
    else:
        deployments.append(copy.deepcopy(entry))
    result["deployments"] = deployments
    result["imagePullSecrets"] = merged_pull_secrets(
        result.get("imagePullSecrets"), entry.get("imagePullSecrets")
    )
    return result


def merged_pull_secrets(listed: Any, added: Any) -> list[Any]:
    """`listed` (kept as written, in order) followed by the secrets of `added` not yet in it."""
    result = list(listed) if isinstance(listed, list) else []
    names = {s.get("name") for s in result if isinstance(s, dict)}
    for secret in added if isinstance(added, list) else []:
        if isinstance(secret, dict) and secret.get("name") not in names:
            result.append(copy.deepcopy(secret))
            names.add(secret.get("name"))
    return result


def _shallow(values: dict[str, Any]) -> dict[str, Any]:
    """A copy of `values` for a change of its entries: the top-level keys copied deeply, the
    entries shared (documents are never changed in place; deep-copying every entry of a few
    hundred locations on each change cost tens of milliseconds)."""
    return {k: v if k == "deployments" else copy.deepcopy(v) for k, v in values.items()}


def remove_entries(values: dict[str, Any], names: set[str]) -> dict[str, Any]:
    result = _shallow(values)
    result["deployments"] = [
        e
        for e in result.get("deployments") or []
        if not (isinstance(e, dict) and e.get("name") in names)
    ]
    return result


def record_annotations(record: DeploymentRecord) -> dict[str, str]:
    annotations = {
        f"{ANNOTATION_PREFIX}deployed-by": record.by,
        f"{ANNOTATION_PREFIX}deployed-at": record.at,
        f"{ANNOTATION_PREFIX}action": record.action,
    }
    if record.commit:
        annotations[f"{ANNOTATION_PREFIX}commit"] = record.commit
    if record.branch:
        annotations[f"{ANNOTATION_PREFIX}branch"] = record.branch
    if record.cicd:
        annotations[f"{ANNOTATION_PREFIX}cicd"] = "true"
    return annotations


def record_of(entry: dict[str, Any]) -> DeploymentRecord | None:
    """The record kept in an entry's annotations; None for entries the original tool wrote."""
    annotations = entry.get("annotations") or {}
    by = annotations.get(f"{ANNOTATION_PREFIX}deployed-by")
    if by is None:
        return None
    return DeploymentRecord(
        tag=str((entry.get("image") or {}).get("tag", "")),
        by=str(by),
        at=str(annotations.get(f"{ANNOTATION_PREFIX}deployed-at", "")),
        action=str(annotations.get(f"{ANNOTATION_PREFIX}action", "deploy")),
        commit=annotations.get(f"{ANNOTATION_PREFIX}commit"),
        branch=annotations.get(f"{ANNOTATION_PREFIX}branch"),
        cicd=annotations.get(f"{ANNOTATION_PREFIX}cicd") == "true",
    )


def entry_tag(entry: dict[str, Any]) -> str | None:
    tag = (entry.get("image") or {}).get("tag")
    return None if tag is None else str(tag)


def build_entry(
    config: Config, *, name: str, repository: str, tag: str, record: DeploymentRecord
) -> dict[str, Any]:
    """One `deployments[]` entry, in the shape the original tool and Dagster's chart use."""
    node_selector: dict[str, str] = {}
    tolerations: list[dict[str, str]] = []
    if config.node:
        node_selector = {"agentpool": config.node}
        tolerations = [
            {"key": "agentpool", "operator": "Equal", "value": config.node, "effect": "NoSchedule"}
        ]
    resources: dict[str, Any] = {}
    if config.limits:
        resources["limits"] = dict(config.limits)
    if config.requests:
        resources["requests"] = dict(config.requests)
    return {
        "name": name,
        "image": {"repository": repository, "tag": tag, "pullPolicy": config.image_pull_policy},
        "dagsterApiGrpcArgs": ["-f", posixpath.join(config.docker_root, config.code_path)],
        "port": GRPC_PORT,
        "includeConfigInLaunchedRuns": {"enabled": True},
        "env": [_plain(e) for e in config.user_code_deployment_env],
        "envConfigMaps": [],
        "envSecrets": [_plain(e) for e in config.user_code_deployment_env_secrets],
        "annotations": record_annotations(record),
        "nodeSelector": node_selector,
        "affinity": {},
        "resources": resources,
        "tolerations": tolerations,
        "imagePullSecrets": [_plain(s) for s in config.image_pull_secrets],
        "podSecurityContext": {},
        "securityContext": {},
        "labels": {},
        "readinessProbe": {
            "enabled": True,
            "periodSeconds": 20,
            "timeoutSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "livenessProbe": {},
        "startupProbe": {"enabled": False},
        "service": {
            "annotations": {
                "meta.helm.sh/release-name": config.helm_release_name,
                "meta.helm.sh/release-namespace": config.namespace,
            }
        },
    }


def retag_entry(entry: dict[str, Any], *, tag: str, record: DeploymentRecord) -> dict[str, Any]:
    """The same entry pointing at another tag of its image (rollback, revive of a kept entry)."""
    result = copy.deepcopy(entry)
    result.setdefault("image", {})["tag"] = tag
    annotations = {
        k: v
        for k, v in (result.get("annotations") or {}).items()
        if not k.startswith(ANNOTATION_PREFIX)
    }
    annotations.update(record_annotations(record))
    result["annotations"] = annotations
    return result


def _plain(item: Any) -> Any:
    """Config items may be pydantic models; the document holds plain data."""
    if hasattr(item, "model_dump"):
        return item.model_dump(exclude_none=True)
    return copy.deepcopy(item)
