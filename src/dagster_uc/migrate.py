"""`dagster-uc migrate --to per-location | shared`: move every code location between the one
shared Helm release and releases of their own, with no location ever down.

For each location that is not yet where it should be (resumable: a location already moved is
skipped, and every step below is idempotent):

1. the target release's objects of that location are rendered (`helm template`) and created
   with Helm's ownership metadata of the target release, except the Service;
2. its new Deployment is waited for until ready (the old one still serves);
3. the Service (same name in both layouts, so the workspace is unchanged) is annotated as
   owned by the target release, with `helm.sh/resource-policy: keep` for the time of the move;
4. `helm upgrade --install` of the target release adopts all of it: the Service's selector
   now points at the new, ready pods.

Then each source release is upgraded without the moved locations (Helm removes the old
Deployments; the Services are kept by the policy) and uninstalled once empty, and the keep
policy is taken off the Services again. The whole move runs under the global deploy lock (the
original tool's lock included); moving to per-location also holds each location's Lease while
that location moves. The values and workspace ConfigMaps do not change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dagster_uc import output
from dagster_uc.errors import OperationError, UsageError
from dagster_uc.helm import chart_source
from dagster_uc.kube import api_error_code, api_errors
from dagster_uc.pods import UserCode, wait_for_rollout
from dagster_uc.release_mode import (
    PER_LOCATION,
    SHARED,
    location_lock,
    location_release_name,
    location_values,
    release_exists,
)
from dagster_uc.rollout_location import global_lock
from dagster_uc.state import dump_yaml
from dagster_uc.values import entries, find_entry

if TYPE_CHECKING:
    from dagster_uc.progress import Steps
    from dagster_uc.session import Session

RELEASE_ANNOTATION = "meta.helm.sh/release-name"
NAMESPACE_ANNOTATION = "meta.helm.sh/release-namespace"
KEEP_ANNOTATION = "helm.sh/resource-policy"
#: The field manager Helm's applies record (the name of its binary).
HELM_FIELD_MANAGER = "helm"


@dataclass(frozen=True)
class Move:
    """One location: the release its Service belongs to now, and the one it moves to."""

    name: str
    source: str | None
    target: str
    image: str

    @property
    def done(self) -> bool:
        return self.source == self.target


@dataclass
class MigrationPlan:
    to: str
    moves: list[Move]
    #: Releases to empty and uninstall at the end.
    sources: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        lines = [f"Migration to {self.to} releases:"]
        for move in self.moves:
            if move.done:
                lines.append(f"  {move.name}: already in release {move.target}")
            else:
                lines.append(
                    f"  {move.name}: {move.source or 'no release'} -> {move.target} (new "
                    "Deployment ready before the old one goes; Service kept)"
                )
        for source in self.sources:
            lines.append(f"  then release {source} is emptied and uninstalled")
        if not self.sources and all(m.done for m in self.moves):
            lines.append("  nothing to do")
        return lines


def plan_migration(session: Session, to: str) -> MigrationPlan:
    """Where each location is (its Service's owner) and where it goes (one Service list)."""
    config = session.config
    values = session.state.read().values
    services = _service_owners(session)
    moves = []
    for entry in entries(values):
        name = entry["name"]
        target = (
            location_release_name(config.helm_release_name, name)
            if to == PER_LOCATION
            else config.helm_release_name
        )
        image = entry.get("image") or {}
        moves.append(
            Move(name, services.get(name), target, f"{image.get('repository')}:{image.get('tag')}")
        )
    if to == PER_LOCATION:
        shared = config.helm_release_name
        sources = [shared] if release_exists(session.client, config.namespace, shared) else []
    else:
        sources = sorted(
            {m.source for m in moves if m.source and m.source != config.helm_release_name}
        )
    return MigrationPlan(to, moves, sources)


def migrate(
    session: Session,
    to: str,
    *,
    steps: Steps,
    dry_run: bool = False,
    timeout_s: float = 300,
    reset_lock: bool = False,
) -> MigrationPlan:
    if to not in (PER_LOCATION, SHARED):
        raise UsageError(f"--to {to!r} is not a release mode; use per-location or shared.")
    config = session.config
    if dry_run:
        plan = plan_migration(session, to)
        output.result("\n".join([*plan.describe(), "Dry run: nothing was changed."]))
        return plan
    with global_lock(session, steps, reset_lock=reset_lock) as lock:
        plan = plan_migration(session, to)
        pending = [m for m in plan.moves if not m.done]
        if to == PER_LOCATION:
            for move in pending:
                with steps.step(f"Moving {move.name} to release {move.target}"):
                    held = location_lock(session, move.name)
                    held.acquire()
                    try:
                        _move_to_own(session, move, timeout_s, held.ensure_held)
                    finally:
                        held.release()
        elif pending:
            with steps.step(
                f"Moving {len(pending)} location(s) to release {config.helm_release_name}"
            ):
                _move_to_shared(session, pending, timeout_s, lock.ensure_held)
        for source in plan.sources:
            with steps.step(f"Emptying and uninstalling release {source}"):
                lock.ensure_held()
                _drain(session, source)
        with steps.step("Clearing the keep policy of the moved Services"):
            _unkeep(session, [m.name for m in plan.moves])
    return plan


def _render(session: Session, release: str, document: dict[str, Any]) -> list[Any]:
    """The objects the chart renders for `release` with `document` (no cluster access)."""
    from lightkube import codecs

    text = session.helm.template(release, chart_source(session.config), dump_yaml(document))
    return [o for o in codecs.load_all_yaml(text) if o is not None]


def _precreate(session: Session, release: str, objects: list[Any]) -> None:
    """Apply every object but the Services, owned by `release` as Helm marks what it owns, so
    the release's install adopts them (a resumed move applies them again, unchanged). Applied
    server-side as field manager `helm`: Helm 4's own applies then own every field, and later
    upgrades of the release meet no conflict with another manager."""
    namespace = session.config.namespace
    marks = {RELEASE_ANNOTATION: release, NAMESPACE_ANNOTATION: namespace}
    for obj in objects:
        if obj.kind == "Service":
            continue
        obj.metadata.namespace = namespace
        obj.metadata.annotations = {**(obj.metadata.annotations or {}), **marks}
        obj.metadata.labels = {
            **(obj.metadata.labels or {}),
            "app.kubernetes.io/managed-by": "Helm",
        }
        with api_errors(f"create {obj.kind} {obj.metadata.name}"):
            session.client.apply(obj, field_manager=HELM_FIELD_MANAGER, force=True)


def _adopt_service(session: Session, name: str, release: str) -> None:
    from lightkube.resources.core_v1 import Service

    annotations = {
        RELEASE_ANNOTATION: release,
        NAMESPACE_ANNOTATION: session.config.namespace,
        KEEP_ANNOTATION: "keep",
    }
    with api_errors(f"annotate Service {name}"):
        session.client.patch(
            Service,
            name,
            {"metadata": {"annotations": annotations}},
            namespace=session.config.namespace,
        )


def _wait_ready(
    session: Session,
    name: str,
    image: str,
    release: str,
    timeout_s: float,
    guard: Callable[[], None],
) -> None:
    scope = UserCode(release, session.config.code_server_container_name)
    result = wait_for_rollout(
        session.client,
        session.config.namespace,
        name,
        image,
        timeout_s,
        scope=scope,
        before_poll=guard,
    )
    if not result.ok:
        raise OperationError(
            f"The new Deployment of {name} in release {release} did not become ready "
            f"({result.message}); the old one still serves. Fix it and run migrate again."
        )


def _move_to_own(session: Session, move: Move, timeout_s: float, guard: Callable[[], None]) -> None:
    config = session.config
    values = session.state.read().values
    entry = find_entry(values, move.name)
    if entry is None:
        return
    document = location_values(values, entry, move.target, config.namespace)
    if move.source is not None:
        _precreate(session, move.target, _render(session, move.target, document))
        _wait_ready(session, move.name, move.image, move.target, timeout_s, guard)
        _adopt_service(session, move.name, move.target)
    guard()
    session.helm.upgrade_install(move.target, chart_source(config), dump_yaml(document))


def _move_to_shared(
    session: Session, moves: list[Move], timeout_s: float, guard: Callable[[], None]
) -> None:
    config = session.config
    release = config.helm_release_name
    values = session.state.read().values
    _precreate(session, release, _render(session, release, values))
    for move in moves:
        _wait_ready(session, move.name, move.image, release, timeout_s, guard)
    for move in moves:
        if move.source is not None:
            _adopt_service(session, move.name, release)
    guard()
    session.helm.upgrade_install(release, chart_source(config), dump_yaml(values))


def _drain(session: Session, release: str) -> None:
    """Upgrade `release` without the locations that moved out (Helm deletes their old
    Deployments; the Services, marked keep, stay), then uninstall it when nothing is left."""
    config = session.config
    values = session.state.read().values
    owners = _service_owners(session)
    staying = [e for e in entries(values) if owners.get(e["name"]) == release]
    document = {**{k: v for k, v in values.items() if k != "deployments"}, "deployments": staying}
    if session.helm.history(release, max_revisions=1):
        session.helm.upgrade_install(release, chart_source(config), dump_yaml(document))
    if not staying:
        session.helm.uninstall(release)


def _unkeep(session: Session, names: list[str]) -> None:
    from lightkube import ApiError
    from lightkube.resources.core_v1 import Service

    for name in names:
        with api_errors(f"annotate Service {name}"):
            try:
                session.client.patch(
                    Service,
                    name,
                    {"metadata": {"annotations": {KEEP_ANNOTATION: None}}},
                    namespace=session.config.namespace,
                )
            except ApiError as exc:
                if api_error_code(exc) != 404:
                    raise


def _service_owners(session: Session) -> dict[str, str | None]:
    """{Service name: the release its Helm annotation names} of every location (one list)."""
    from lightkube.resources.core_v1 import Service

    namespace = session.config.namespace
    with api_errors(f"list the Services in namespace {namespace}"):
        return {
            s.metadata.name: (s.metadata.annotations or {}).get(RELEASE_ANNOTATION)
            for s in session.client.list(
                Service, namespace=namespace, labels={"component": "user-deployments"}
            )
            if s.metadata is not None and s.metadata.name
        }
