"""Which Helm release holds a code location: the one shared release, or a release of its own.

`helm_release_mode`:

- `shared`: every location is an entry of the one release `helm_release_name` (the original
  dagster-uc's layout; every change is an upgrade of everyone's release, under one lock);
- `per-location`: each location is its own release of the same chart with one entry, named
  by `location_release_name`; its deploys are serialised by a Lease of its own
  (`location_lease_name`), never by the global deploy lock;
- `auto`: `shared` when the namespace holds the shared release, `per-location` otherwise.

The values ConfigMap keeps every location in the original format in both modes (so `list`
works for both tools); only what is handed to Helm differs (`location_values`).
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import sys
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dagster_uc.kube import api_errors
from dagster_uc.lease import status_from_lease
from dagster_uc.lock import DeployLock, OriginalLock
from dagster_uc.pods import UserCode
from dagster_uc.pods.model import COMPONENT_LABEL, USER_DEPLOYMENTS

if TYPE_CHECKING:
    from collections.abc import Callable

    from lightkube import Client

    from dagster_uc.config import Config
    from dagster_uc.lease import LockStatus
    from dagster_uc.session import Session

SHARED = "shared"
PER_LOCATION = "per-location"
AUTO = "auto"
#: Helm refuses release names longer than this.
MAX_RELEASE_NAME = 53
HASH_LENGTH = 8
#: The Lease of one location: `<uc_deployment_semaphore_name>.<location>` (a DNS subdomain).
LEASE_SEPARATOR = "."
_INVALID = re.compile(r"[^a-z0-9-]+")
_RESOLVED: weakref.WeakKeyDictionary[Session, str] = weakref.WeakKeyDictionary()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def _clean(text: str) -> str:
    return _INVALID.sub("-", text.lower()).strip("-")


def location_release_name(shared_release: str, location: str) -> str:
    """The release of `location` in per-location mode (pure, deterministic).

    `<shared release>-<location>` when that is a valid release name of at most 53 characters;
    otherwise cut and ended with a hash of the full name, so two locations never share one.
    Starts with a letter or digit and ends with one, as Helm requires."""
    full = f"{_clean(shared_release)}-{_clean(location)}".strip("-") or "location"
    if len(full) <= MAX_RELEASE_NAME - HASH_LENGTH - 1 and full == f"{shared_release}-{location}":
        return full
    digest = _digest(f"{shared_release}\0{location}")
    kept = full[: MAX_RELEASE_NAME - HASH_LENGTH - 1].rstrip("-")
    return f"{kept}-{digest}" if kept else digest


def location_lease_name(semaphore: str, location: str) -> str:
    """The Lease serialising the deploys of `location` in per-location mode (pure)."""
    name = f"{semaphore}{LEASE_SEPARATOR}{_clean(location)}"
    if len(name) <= 253 and _clean(location) == location:
        return name
    return f"{semaphore}{LEASE_SEPARATOR}{_clean(location)[:40].strip('-')}-{_digest(location)}"


def location_values(
    values: dict[str, Any], entry: dict[str, Any], release: str, namespace: str
) -> dict[str, Any]:
    """What Helm gets for the release of one location (pure): the shared document's top-level
    keys (pull secrets, anything the team set) with `entry` as the only deployment, its
    Service annotated as owned by `release`."""
    document = {k: copy.deepcopy(v) for k, v in values.items() if k != "deployments"}
    own = copy.deepcopy(entry)
    service = own.setdefault("service", {})
    annotations = dict(service.get("annotations") or {})
    annotations["meta.helm.sh/release-name"] = release
    annotations["meta.helm.sh/release-namespace"] = namespace
    service["annotations"] = annotations
    document["deployments"] = [own]
    return document


def release_of(config: Config, mode: str, location: str) -> str:
    """The release holding `location` in `mode` (already resolved)."""
    if mode == PER_LOCATION:
        return location_release_name(config.helm_release_name, location)
    return config.helm_release_name


def scope_of(config: Config, mode: str, location: str) -> UserCode:
    """The pod lookups' scope for `location`: the instance label is its release."""
    return UserCode(release_of(config, mode, location), config.code_server_container_name)


@dataclass(frozen=True)
class AllLocations(UserCode):
    """The scope of every location when each is its own release: `component=user-deployments`
    only (the instance label differs per location); used for one pod list of all of them."""

    def labels(self, name: str | None = None) -> dict[str, Any]:
        if name is not None:
            return super().labels(name)
        return {COMPONENT_LABEL: USER_DEPLOYMENTS}


def list_scope(config: Config, mode: str) -> UserCode:
    if mode == PER_LOCATION:
        return AllLocations(config.helm_release_name, config.code_server_container_name)
    return UserCode.of(config)


def release_exists(client: Client, namespace: str, release: str) -> bool:
    """Does Helm store a release named `release` in `namespace`? One list of Helm's storage
    objects (Secrets, or ConfigMaps with HELM_DRIVER=configmap), no helm process."""
    from lightkube.resources.core_v1 import ConfigMap, Secret

    kind: Any = ConfigMap if os.environ.get("HELM_DRIVER", "").lower() == "configmap" else Secret
    with api_errors(f"look for Helm release {release} in namespace {namespace}"):
        found = client.list(
            kind, namespace=namespace, labels={"owner": "helm", "name": release}, chunk_size=1
        )
        return next(iter(found), None) is not None


def resolve_mode(config: Config, shared_exists: Callable[[], bool]) -> tuple[str, str | None]:
    """(`shared` or `per-location`, a hint to print or None) for the configured mode (pure but
    for `shared_exists`, asked only in `auto` mode)."""
    if config.helm_release_mode != AUTO:
        return config.helm_release_mode, None
    if not shared_exists():
        return PER_LOCATION, None
    return SHARED, (
        f"Namespace {config.namespace} has the shared Helm release {config.helm_release_name}, "
        "so this runs in shared mode; `dagster-uc migrate --to per-location` gives each "
        "location its own release (see docs/release-modes.md)."
    )


def mode_of(session: Session, *, quiet: bool = False) -> str:
    """The resolved mode of this session (asked once per session; the hint printed once)."""
    if session in _RESOLVED:
        return _RESOLVED[session]
    config = session.config
    mode, hint = resolve_mode(
        config,
        lambda: release_exists(session.client, config.namespace, config.helm_release_name),
    )
    if hint and not quiet:
        sys.stderr.write(f"hint: {hint}\n")
    _RESOLVED[session] = mode
    return mode


class LocationLock(DeployLock):
    """The Lease of one location (per-location mode). Only our tool deploys per location, so
    the original dagster-uc's lock ConfigMap is neither waited for nor set."""

    def _take_original_lock(
        self,
        *,
        force: bool,
        deadline: float | None,
        on_wait: Callable[[LockStatus | OriginalLock], None] | None,
    ) -> None:
        return None

    def _release_original_lock(self) -> None:
        return None


def location_lock(session: Session, location: str) -> LocationLock:
    config = session.config
    return LocationLock(
        session.client,
        config.namespace,
        location_lease_name(config.uc_deployment_semaphore_name, location),
        lease_seconds=config.deploy_lock_lease_seconds,
    )


def location_lock_statuses(client: Client, config: Config) -> list[LockStatus]:
    """The per-location Leases of this config's lock (one list of the namespace's Leases)."""
    from lightkube.resources.coordination_v1 import Lease

    prefix = config.uc_deployment_semaphore_name + LEASE_SEPARATOR
    with api_errors(f"list the Leases in namespace {config.namespace}"):
        named = [
            (lease.metadata.name or "" if lease.metadata else "", lease)
            for lease in client.list(Lease, namespace=config.namespace)
        ]
    return sorted(
        (status_from_lease(name, lease) for name, lease in named if name.startswith(prefix)),
        key=lambda s: s.name,
    )
