"""Apply one change of the registered deployments to the cluster, or undo it.

Every command that changes the set of code locations goes through `apply_change`, under the
deploy lock: compare-and-swap the values ConfigMap, regenerate Dagster's workspace, run one
Helm upgrade of the shared release, wait for the locations this change touched (never for the
neighbours: a teammate's broken location must not fail this change), and reload Dagster's
webserver and daemon when the set of locations changed. On failure the release, the values
and the workspace go back to what they were before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from dagster_uc import output
from dagster_uc.errors import DagsterUcError, OperationError
from dagster_uc.values import entries

if TYPE_CHECKING:
    from dagster_uc.progress import Steps
    from dagster_uc.session import Session
    from dagster_uc.state import StateSnapshot


@dataclass(frozen=True)
class WaitTarget:
    """A location whose rollout decides success: its name and the image it must run."""

    name: str
    image: str


@dataclass
class ChangeResult:
    before: StateSnapshot
    after: StateSnapshot
    restarted: list[str] = field(default_factory=list)
    waited: list[str] = field(default_factory=list)


def location_names(state: StateSnapshot) -> set[str]:
    return {e["name"] for e in entries(state.values)}


def apply_change(
    session: Session,
    change: Callable[[StateSnapshot], StateSnapshot | None],
    *,
    steps: Steps,
    wait_for: Callable[[StateSnapshot], list[WaitTarget]] = lambda _s: [],
    wait: bool = True,
    timeout_s: float = 300,
    force_restart: bool = False,
) -> ChangeResult:
    """Write `change` to the state and roll it out; restore everything if the rollout fails."""
    from dagster_uc.helm import chart_source
    from dagster_uc.instance import restart_deployments
    from dagster_uc.state import dump_yaml
    from dagster_uc.workspace import workspace_yaml

    config = session.config
    helm = session.helm
    release = config.helm_release_name
    previous_revision = _last_revision(session)

    with steps.step("Updating the list of code locations"):
        before, after = session.state.update(change)
        session.state.write_workspace(workspace_yaml(after.values))
    try:
        with steps.step(f"Rolling out Helm release {release}"):
            helm.upgrade_install(release, chart_source(config), dump_yaml(after.values))
        targets = wait_for(after)
        if wait and targets:
            with steps.step(
                "Waiting for "
                + ", ".join(t.name for t in targets)
                + f" to be ready (up to {int(timeout_s)} s)"
            ):
                _wait_all(session, targets, timeout_s)
    except (DagsterUcError, KeyboardInterrupt) as exc:
        _restore(session, before, previous_revision, steps)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise
    restarted: list[str] = []
    if force_restart or location_names(before) != location_names(after):
        names = [config.dagster_webserver_deployment_name, config.dagster_daemon_deployment_name]
        with steps.step("Reloading Dagster (webserver and daemon)"):
            missing = restart_deployments(session.client, config.namespace, names)
        for name in missing:
            output.warning(
                f"Deployment {name} was not found in namespace {config.namespace}, so it was not "
                "restarted; check dagster_webserver_deployment_name / dagster_daemon_deployment_name."
            )
        restarted = [n for n in names if n not in missing]
    return ChangeResult(before, after, restarted, [t.name for t in wait_for(after)] if wait else [])


def _wait_all(session: Session, targets: list[WaitTarget], timeout_s: float) -> None:
    from dagster_uc.pods import diagnose, format_diagnosis, wait_for_rollout

    for target in targets:
        result = wait_for_rollout(
            session.client, session.config.namespace, target.name, target.image, timeout_s
        )
        if not result.ok:
            diagnosis = format_diagnosis(
                diagnose(session.client, session.config.namespace, target.name)
            )
            raise RolloutFailed(target.name, result.message, diagnosis)


class RolloutFailed(OperationError):
    def __init__(self, name: str, reason: str, diagnosis: str) -> None:
        super().__init__(f"Code location {name} did not become ready: {reason}.")
        self.diagnosis = diagnosis


def _last_revision(session: Session) -> int | None:
    history = session.helm.history(session.config.helm_release_name)
    return history[-1].revision if history else None


def _restore(session: Session, before: StateSnapshot, revision: int | None, steps: Steps) -> None:
    """Put the release, the values and the workspace back as they were before the change."""
    from dagster_uc.state import dump_yaml
    from dagster_uc.workspace import workspace_yaml

    release = session.config.helm_release_name
    with steps.step("Rolling back to the previous state"):
        try:
            session.state.update(lambda current: replace(current, values=before.values))
            session.state.write_workspace(workspace_yaml(before.values))
            if revision is not None:
                session.helm.rollback(release, revision)
            else:
                session.helm.uninstall(release)
        except DagsterUcError as exc:
            output.error(
                f"The rollback did not complete ({exc}); the next deploy or delete will "
                f"reconcile the release with the state. Values before the change:\n{dump_yaml(before.values)}"
            )
