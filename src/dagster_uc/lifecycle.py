"""The life of a code location after its first deploy: list, delete, revive, rollback, prune,
check. Every command that changes the cluster takes the deploy lock and goes through
`rollout.apply_change`, the same path `deploy` uses.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dagster_uc.deploy import deployer_identity, now_iso
from dagster_uc.errors import UsageError
from dagster_uc.naming import (
    PROJECT_SEPARATOR,
    compute_deployment_name,
    image_repository,
    name_from_user_input,
    sanitize,
    ui_name,
)
from dagster_uc.pods import (
    Diagnosis,
    PodStatus,
    diagnose,
    follow_logs_until,
    format_diagnosis,
    readiness_summary,
)
from dagster_uc.release_mode import PER_LOCATION, list_scope, mode_of, scope_of
from dagster_uc.rollout import WaitTarget, apply_change_locked
from dagster_uc.rollout_location import apply_location_change, remove_locations
from dagster_uc.values import (
    DeploymentRecord,
    build_entry,
    entries,
    entry_tag,
    find_entry,
    record_of,
    remove_entries,
    retag_entry,
)

if TYPE_CHECKING:
    from dagster_uc.progress import Steps
    from dagster_uc.session import Session
    from dagster_uc.state import StateSnapshot

STARTED_LINE = re.compile(r"Started Dagster code server")


@dataclass(frozen=True)
class DeploymentRow:
    name: str
    ui_name: str
    image: str
    tag: str | None
    deployed_at: str | None
    deployed_by: str | None
    commit: str | None
    branch: str | None
    action: str | None
    ready: int
    pods: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ui_name": self.ui_name,
            "image": self.image,
            "tag": self.tag,
            "deployed_at": self.deployed_at,
            "deployed_by": self.deployed_by,
            "commit": self.commit,
            "branch": self.branch,
            "action": self.action,
            "ready": self.ready,
            "pods": self.pods,
        }


def rows_from_state(
    values: dict[str, Any], readiness: dict[str, tuple[int, int]]
) -> list[DeploymentRow]:
    """Pure: one row per registered deployment, with what its record and pods tell."""
    rows = []
    for entry in entries(values):
        record = record_of(entry)
        image = entry.get("image") or {}
        ready, total = readiness.get(entry["name"], (0, 0))
        rows.append(
            DeploymentRow(
                name=entry["name"],
                ui_name=ui_name(entry["name"]),
                image=f"{image.get('repository', '')}:{image.get('tag', '')}",
                tag=entry_tag(entry),
                deployed_at=record.at if record else None,
                deployed_by=record.by if record else None,
                commit=record.commit if record else None,
                branch=record.branch if record else None,
                action=record.action if record else None,
                ready=ready,
                pods=total,
            )
        )
    return rows


def list_deployments(session: Session) -> list[DeploymentRow]:
    """Two API calls: the values ConfigMap and one pod list."""
    values = session.state.read().values
    names = [e["name"] for e in entries(values)]
    scope = list_scope(session.config, mode_of(session)) if names else None
    namespace = session.config.namespace
    readiness = readiness_summary(session.client, namespace, names, scope=scope) if scope else {}
    return rows_from_state(values, readiness)


def resolve_names(values: dict[str, Any], requested: Iterable[str]) -> list[str]:
    """Internal names for what the user typed (UI names with ':' accepted); unknown ones are an error."""
    known = {e["name"] for e in entries(values)}
    names = []
    for text in requested:
        name = name_from_user_input(text)
        if name not in known:
            raise UsageError(
                f"There is no deployment named {_named(text, name)} on the cluster "
                f"(deployed: {_some(known)}); see `dagster-uc deployment list`."
            )
        names.append(name)
    return names


def _named(text: str, name: str) -> str:
    return name if text.strip() == name else f"{name} ({text.strip()})"


def _some(names: Iterable[str], limit: int = 8) -> str:
    """`a, b, c` (at most `limit` names, then how many more); `none` for no names."""
    ordered = sorted(names)
    if not ordered:
        return "none"
    shown = ", ".join(ordered[:limit])
    return shown if len(ordered) <= limit else f"{shown} and {len(ordered) - limit} more"


def _record(
    action: str,
    tag: str,
    *,
    commit: str | None = None,
    branch: str | None = None,
    cicd: bool = False,
) -> DeploymentRecord:
    return DeploymentRecord(
        tag=tag,
        by=deployer_identity(),
        at=now_iso(),
        action=action,
        commit=commit,
        branch=branch,
        cicd=cicd,
    )


def _origin_of(state: StateSnapshot, name: str, tag: str) -> DeploymentRecord | None:
    """The newest record that put `tag` of `name` on the cluster (its commit and branch)."""
    return next(
        (
            r
            for r in reversed(state.history_of(name).records)
            if r.tag == tag and r.action != "delete" and (r.commit or r.branch)
        ),
        None,
    )


def delete_deployments(
    session: Session,
    names: list[str],
    *,
    steps: Steps,
    reset_lock: bool = False,
    missing_ok: bool = False,
    global_lock: bool = False,
) -> list[str]:
    """Remove `names` in one rollout; they must all exist (checked again under the lock), or
    with `missing_ok` those deleted meanwhile are skipped. Returns the names removed.

    In per-location mode one name takes only its location's Lease, unless `global_lock`
    (prune: an operation over every location, however many it ends up removing)."""
    wanted = set(names)
    removed: list[str] = []

    def change(state: StateSnapshot) -> StateSnapshot | None:
        present = {e["name"] for e in entries(state.values)}
        missing = wanted - present
        if missing and not missing_ok:
            raise UsageError(
                f"There is no deployment named {_some(missing)} on the cluster any more "
                "(deleted meanwhile); nothing changed."
            )
        gone = wanted & present
        removed[:] = sorted(gone)
        if not gone:
            return None
        result = replace(state, values=remove_entries(state.values, gone))
        for name in sorted(gone):
            entry = find_entry(state.values, name) or {}
            tag = entry_tag(entry) or ""
            result = result.with_history(
                name, state.history_of(name).with_record(_record("delete", tag))
            )
        return result

    if mode_of(session) == PER_LOCATION:
        if len(wanted) == 1 and not global_lock:
            apply_location_change(session, names[0], change, steps=steps, reset_lock=reset_lock)
        else:
            remove_locations(session, change, steps=steps, reset_lock=reset_lock)
        return removed
    apply_change_locked(session, change, steps=steps, reset_lock=reset_lock)
    return removed


def _require_image(session: Session, repository: str, tag: str) -> None:
    if not session.registry.tag_exists(session.registry_path(repository), tag):
        raise UsageError(
            f"Image {repository}:{tag} does not exist in the registry; "
            "pick a tag from `dagster-uc deployment list` or the deployment's history."
        )


def revive(
    session: Session,
    name: str,
    tag: str,
    *,
    steps: Steps,
    wait: bool = True,
    timeout_s: float = 300,
) -> str:
    """Deploy `name` again from an image tag already in the registry (no build)."""
    config = session.config
    internal = name_from_user_input(name)
    state = session.state.read()
    if find_entry(state.values, internal) is not None:
        raise UsageError(
            f"Deployment {internal} is already deployed; use `dagster-uc deployment rollback -n {internal} --to {tag}` instead."
        )
    repository = image_repository(config.container_registry, config.image_prefix, internal)
    _require_image(session, repository, tag)
    origin = _origin_of(state, internal, tag)
    record = _record(
        "revive",
        tag,
        commit=origin.commit if origin else None,
        branch=origin.branch if origin else None,
        cicd=origin.cicd if origin else False,
    )
    entry = build_entry(config, name=internal, repository=repository, tag=tag, record=record)

    def change(current: StateSnapshot) -> StateSnapshot:
        if find_entry(current.values, internal) is not None:
            raise UsageError(
                f"Deployment {internal} was deployed meanwhile by someone else; nothing changed."
            )
        return current.with_deployment(entry, record)

    if mode_of(session) == PER_LOCATION:
        apply_location_change(
            session,
            internal,
            change,
            steps=steps,
            image=f"{repository}:{tag}",
            wait=wait,
            timeout_s=timeout_s,
        )
        return f"{repository}:{tag}"
    apply_change_locked(
        session,
        change,
        steps=steps,
        wait_for=lambda _s: [WaitTarget(internal, f"{repository}:{tag}")],
        wait=wait,
        timeout_s=timeout_s,
    )
    return f"{repository}:{tag}"


def rollback(
    session: Session,
    name: str,
    to_tag: str | None,
    *,
    steps: Steps,
    wait: bool = True,
    timeout_s: float = 300,
) -> tuple[str, str]:
    """Point a deployed location back at an earlier tag; returns (from_tag, to_tag)."""

    state = session.state.read()
    internal = resolve_names(state.values, [name])[0]
    entry = find_entry(state.values, internal)
    assert entry is not None
    current = entry_tag(entry)
    target = to_tag or state.history_of(internal).previous_tag(current)
    if target is None:
        raise UsageError(
            f"Deployment {internal} has no earlier tag in its history; give one with --to TAG."
        )
    if target == current:
        raise UsageError(f"Deployment {internal} already runs tag {target}; nothing to roll back.")
    repository = str((entry.get("image") or {}).get("repository", ""))
    _require_image(session, repository, target)
    origin = _origin_of(state, internal, target)
    current_record = record_of(entry)
    record = _record(
        "rollback",
        target,
        commit=origin.commit if origin else None,
        branch=origin.branch if origin else (current_record.branch if current_record else None),
        cicd=current_record.cicd if current_record else False,
    )

    def change(snapshot: StateSnapshot) -> StateSnapshot:
        existing = find_entry(snapshot.values, internal)
        if existing is None:
            raise UsageError(f"Deployment {internal} was deleted meanwhile; nothing changed.")
        return snapshot.with_deployment(retag_entry(existing, tag=target, record=record), record)

    if mode_of(session) == PER_LOCATION:
        apply_location_change(
            session,
            internal,
            change,
            steps=steps,
            image=f"{repository}:{target}",
            wait=wait,
            timeout_s=timeout_s,
        )
        return str(current), target
    apply_change_locked(
        session,
        change,
        steps=steps,
        wait_for=lambda _s: [WaitTarget(internal, f"{repository}:{target}")],
        wait=wait,
        timeout_s=timeout_s,
    )
    return str(current), target


# --- prune ---------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> dt.timedelta:
    match = _DURATION.match(text.lower())
    if not match:
        raise UsageError(
            f"--older-than {text!r} is not a duration; use a number and a unit, e.g. 12h, 7d or 2w."
        )
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _human(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


@dataclass(frozen=True)
class PruneCandidate:
    name: str
    reason: str


def plan_prune(
    values: dict[str, Any],
    *,
    remote_branches: set[str] | None,
    project: str | None,
    environments: set[str],
    older_than: dt.timedelta | None,
    include_cicd: bool,
    now: dt.datetime,
) -> list[PruneCandidate]:
    """Pure: which deployments prune removes, and why.

    Only this project's deployments are considered (`<project>--...` with `project`, names
    without a project part otherwise). A branch is gone when the remote has no branch with the
    recorded name; deployments the original tool made carry no record, so their name is
    compared with the names the remote's branches would get. CI/CD (environment) deployments
    are named after an environment, not a branch: they go only by age, and only with
    `include_cicd`. Deployments without a record have no known age.
    """
    prefix = None
    if project is not None:
        computed = compute_deployment_name(branch="x", cicd=False, environment="x", project=project)
        prefix = (computed.project or sanitize(project)) + PROJECT_SEPARATOR
    live_parts = {sanitize(b) for b in remote_branches or set()}
    environment_parts = {sanitize(e) for e in environments}
    result = []
    for entry in entries(values):
        name = entry["name"]
        record = record_of(entry)
        # Only this project's deployments: `<project>--<branch>`, or plain names without one.
        if prefix is not None:
            if not name.startswith(prefix):
                continue
            branch_part = name[len(prefix) :]
        else:
            if PROJECT_SEPARATOR in name:
                continue
            branch_part = name
        is_cicd = record.cicd if record else branch_part in environment_parts
        if is_cicd and not include_cicd:
            continue
        if older_than is not None and record and record.at:
            at = dt.datetime.fromisoformat(record.at.replace("Z", "+00:00"))
            if now - at > older_than:
                result.append(
                    PruneCandidate(
                        name, f"deployed {record.at}, more than {_human(older_than)} ago"
                    )
                )
                continue
        if remote_branches is None or is_cicd:
            continue
        if record and record.branch:
            if record.branch not in remote_branches:
                result.append(
                    PruneCandidate(name, f"branch {record.branch} no longer exists on the remote")
                )
        elif branch_part not in live_parts:
            result.append(PruneCandidate(name, "no branch on the remote maps to this name"))
    return result


def prune(
    session: Session,
    candidates: list[PruneCandidate],
    *,
    steps: Steps,
    dry_run: bool,
) -> list[PruneCandidate]:
    if dry_run or not candidates:
        return candidates
    removed = set(
        delete_deployments(
            session,
            [c.name for c in candidates],
            steps=steps,
            missing_ok=True,
            global_lock=True,
        )
    )
    return [c for c in candidates if c.name in removed]


# --- check ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    name: str
    started: bool
    pod: str | None
    diagnosis: Diagnosis

    def to_json(self, log: list[str]) -> dict[str, Any]:
        d = self.diagnosis
        return {
            "name": self.name,
            "started": self.started,
            "deployment": d.deployment,
            "image": d.image,
            "ready": d.ready,
            "desired": d.desired,
            "pods": [
                {
                    "name": p.name,
                    "phase": p.phase,
                    "ready": p.ready,
                    "restarts": p.restarts,
                    "reason": p.reason,
                    "message": p.message,
                    "image": p.image,
                    "container": p.container,
                    "node": p.node,
                }
                for p in d.pods
            ],
            "events": [
                {
                    "type": e.type,
                    "reason": e.reason,
                    "object": f"{e.object_kind.lower()}/{e.object_name}"
                    if e.object_kind
                    else e.object_name,
                    "message": e.message,
                    "count": e.count,
                    "last_seen": e.last_seen.isoformat() if e.last_seen else None,
                }
                for e in d.events
            ],
            "unread": d.unread,
            "followed_pod": self.pod,
            "log": log,
        }


def check(
    session: Session,
    name: str,
    *,
    timeout_s: float,
    on_status: Callable[[str], None] = lambda _text: None,
    on_line: Callable[[str], None] = lambda _line: None,
) -> CheckResult:
    """Pod status and recent events (`on_status`), then the newest pod's log (`on_line`, from its
    start) followed until the code server says it started or `timeout_s` passes; a location
    whose pod does not exist yet is waited for within the same timeout."""
    import time
    from dataclasses import replace as replaced

    state = session.state.read()
    internal = resolve_names(state.values, [name])[0]
    namespace = session.config.namespace
    scope = scope_of(session.config, mode_of(session), internal)
    deadline = time.monotonic() + timeout_s
    diagnosis = diagnose(session.client, namespace, internal, tail_lines=0, scope=scope)
    on_status(format_diagnosis(replaced(diagnosis, logs={})))
    pod = _newest_pod(diagnosis)
    while pod is None and time.monotonic() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        diagnosis = diagnose(session.client, namespace, internal, tail_lines=0, scope=scope)
        pod = _newest_pod(diagnosis)
    started = False
    if pod is not None:
        remaining = max(0.0, deadline - time.monotonic())
        started = follow_logs_until(
            session.client,
            namespace,
            pod.name,
            STARTED_LINE,
            remaining,
            on_line=on_line,
            container=pod.container,
        )
    diagnosis = diagnose(session.client, namespace, internal, tail_lines=0, scope=scope)
    return CheckResult(internal, started, pod.name if pod else None, replaced(diagnosis, logs={}))


def _newest_pod(diagnosis: Diagnosis) -> PodStatus | None:
    """The pod to follow: the newest one that is not going away."""
    live = [p for p in diagnosis.pods if not p.terminating]
    return live[-1] if live else None
