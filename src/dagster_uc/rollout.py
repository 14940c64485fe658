"""Apply one change of the registered deployments to the cluster, or undo it.

Every command that changes the set of code locations goes through `apply_change`, under the
deploy lock: compare-and-swap the values ConfigMap, regenerate Dagster's workspace, run one
Helm upgrade of the shared release, wait for the locations this change touched (never for the
neighbours: a teammate's broken location must not fail this change), and, when the set of
locations changed, have Dagster's webserver reload its workspace (`dagster_reload: reload`,
see `reload`) or restart the webserver and daemon (`restart`, `--force`, or when the reload
does not show the change in time). On failure the release, the values
and the workspace go back to what they were before.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from dagster_uc import output
from dagster_uc.errors import DagsterUcError, OperationError
from dagster_uc.helm import PENDING_STATUSES, chart_source
from dagster_uc.instance import restart_deployments
from dagster_uc.lock import DeployLock, LockLost
from dagster_uc.pods import UserCode, diagnose, format_diagnosis, wait_for_rollout
from dagster_uc.reload import reload_webserver, workspace_locations
from dagster_uc.state import StateSnapshot, dump_yaml
from dagster_uc.values import (
    DeploymentHistory,
    entries,
    find_entry,
    remove_entries,
    upsert_entry,
)
from dagster_uc.workspace import workspace_document, workspace_yaml

if TYPE_CHECKING:
    from dagster_uc.progress import Steps
    from dagster_uc.session import Session


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
    start: StateSnapshot | None = None,
    guard: Callable[[], None] = lambda: None,
) -> ChangeResult:
    """Write `change` to the state and roll it out; restore everything if the rollout fails.

    `guard` runs before each write, each step of a rollback and each poll of the wait (the
    lock's check that it is still held): once the lock is lost nothing more is changed, not
    even rolled back, since someone else may be changing the cluster by then.

    `start`: a recent snapshot of the state to try the first compare-and-swap on (saves a
    read). Ctrl-C is held back while a ConfigMap write is in flight (so no write is cut in half)
    and handled like a failure afterwards: the state, workspace and release are restored.
    """
    config = session.config
    helm = session.helm
    release = config.helm_release_name
    previous_revision = _prepare_release(session, guard)

    before: StateSnapshot | None = None
    after: StateSnapshot | None = None
    helm_ran = False
    try:
        guard()
        with interrupts_deferred(), steps.step("Updating the list of code locations"):
            before, after = session.state.update(change, start=start)
            session.state.write_workspace(workspace_yaml(after.values))
        guard()
        with steps.step(f"Rolling out Helm release {release}"):
            helm_ran = True
            helm.upgrade_install(release, chart_source(config), dump_yaml(after.values))
        targets = wait_for(after)
        if wait and targets:
            with steps.step(
                "Waiting for "
                + ", ".join(t.name for t in targets)
                + f" to be ready (up to {int(timeout_s)} s)"
            ):
                _wait_all(session, targets, timeout_s, guard)
    except LockLost:
        raise
    except (DagsterUcError, KeyboardInterrupt):
        if before is not None and after is not None:
            with interrupts_deferred():
                _restore(
                    session,
                    before,
                    after,
                    previous_revision if helm_ran else _UNTOUCHED,
                    steps,
                    guard,
                )
        raise
    assert before is not None and after is not None
    restarted: list[str] = []
    if force_restart or location_names(before) != location_names(after):
        if config.dagster_reload == "reload" and not force_restart:
            restarted = reload_or_restart(session, before, after, steps)
        else:
            restarted = restart_dagster(session, steps)
    return ChangeResult(before, after, restarted, [t.name for t in wait_for(after)] if wait else [])


def restart_dagster(session: Session, steps: Steps) -> list[str]:
    """Restart the webserver and daemon Deployments; returns the ones restarted."""
    config = session.config
    names = [config.dagster_webserver_deployment_name, config.dagster_daemon_deployment_name]
    with steps.step("Restarting Dagster (webserver and daemon)"):
        missing = restart_deployments(session.client, config.namespace, names)
    for name in missing:
        output.warning(
            f"Deployment {name} was not found in namespace {config.namespace}, so it was not "
            "restarted; check dagster_webserver_deployment_name / dagster_daemon_deployment_name."
        )
    return [n for n in names if n not in missing]


def reload_or_restart(
    session: Session, before: StateSnapshot, after: StateSnapshot, steps: Steps
) -> list[str]:
    """`dagster_reload: reload`: ask the running webserver to reload its workspace and wait
    until it shows the new set of locations (the daemon re-reads the file by itself within a
    minute); restart both, as in `restart` mode, when that does not happen in time."""
    config = session.config
    expected = set(workspace_locations(workspace_document(after.values)))
    shown_before = set(workspace_locations(workspace_document(before.values)))
    timeout = config.dagster_reload_timeout_seconds
    with steps.step(f"Reloading Dagster's webserver (up to {timeout} s)"):
        outcome = reload_webserver(
            session.client,
            config.namespace,
            config.dagster_webserver_deployment_name,
            expected,
            timeout,
        )
    if not outcome.visible:
        problem = (
            f"Dagster's webserver cannot reload its workspace ({outcome.reason})"
            if outcome.permanent
            else f"Dagster's webserver did not show the new set of locations within {timeout} s ({outcome.reason})"
        )
        output.warning(f"{problem}; restarting the webserver and daemon instead.")
        return restart_dagster(session, steps)
    added, removed = sorted(expected - shown_before), sorted(shown_before - expected)
    parts = [f"shows {', '.join(added)}"] if added else []
    parts += [f"no longer shows {', '.join(removed)}"] if removed else []
    steps.note(
        f"Dagster's webserver {' and '.join(parts) or 'is up to date'} "
        f"(reloaded in {outcome.seconds:.1f} s, no restart); the daemon picks the change up "
        "within about a minute."
    )
    for location in outcome.locations:
        if location.error and location.name in added:
            first = location.error.strip().splitlines()[0] if location.error.strip() else ""
            output.warning(f"Location {location.name} is shown with a load error: {first}")
    return []


def apply_change_locked(
    session: Session,
    change: Callable[[StateSnapshot], StateSnapshot | None],
    *,
    steps: Steps,
    reset_lock: bool = False,
    wait_for: Callable[[StateSnapshot], list[WaitTarget]] = lambda _s: [],
    wait: bool = True,
    timeout_s: float = 300,
    force_restart: bool = False,
    start: StateSnapshot | None = None,
) -> ChangeResult:
    """`apply_change` under the deploy lock, which is released whatever happens (and SIGTERM
    is handled like Ctrl-C meanwhile, so a cancelled CI job still restores and releases)."""
    config = session.config
    lock = DeployLock(
        session.client,
        config.namespace,
        config.uc_deployment_semaphore_name,
        lease_seconds=config.deploy_lock_lease_seconds,
    )
    with terminate_as_interrupt():
        try:
            with steps.step("Taking the deploy lock"):
                lock.acquire(
                    force=reset_lock,
                    on_wait=lambda s: steps.note(f"waiting: {s.describe_holder()}"),
                )
            return apply_change(
                session,
                change,
                steps=steps,
                wait_for=wait_for,
                wait=wait,
                timeout_s=timeout_s,
                force_restart=force_restart,
                start=start,
                guard=lock.ensure_held,
            )
        finally:
            lock.release()


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM until the block ends, then raise KeyboardInterrupt.

    Only the main thread can set signal handlers; elsewhere this does nothing.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, _frame: object) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (a CI job cancelled, `kill`) is handled like Ctrl-C, so the
    change is rolled back and the lock released instead of the process just vanishing."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _wait_all(
    session: Session, targets: list[WaitTarget], timeout_s: float, guard: Callable[[], None]
) -> None:
    scope = UserCode.of(session.config)
    namespace = session.config.namespace
    for target in targets:
        result = wait_for_rollout(
            session.client,
            namespace,
            target.name,
            target.image,
            timeout_s,
            scope=scope,
            before_poll=guard,
        )
        if not result.ok:
            try:
                diagnosis = format_diagnosis(
                    diagnose(session.client, namespace, target.name, scope=scope)
                )
            except OperationError as exc:  # the reason above matters more than the details
                diagnosis = f"Could not diagnose {target.name}: {exc}"
            raise RolloutFailed(target.name, result.message, diagnosis)


class RolloutFailed(OperationError):
    def __init__(self, name: str, reason: str, diagnosis: str) -> None:
        super().__init__(f"Code location {name} did not become ready: {reason}.")
        self.diagnosis = diagnosis


def _prepare_release(session: Session, guard: Callable[[], None]) -> int | None:
    """The revision to go back to if this change fails (None: uninstall).

    A release left `pending-*` by a killed or interrupted Helm run blocks every upgrade; we
    hold the deploy lock (`guard` checks it), so nobody else is running Helm on it: unlock it
    first.
    """
    helm = session.helm
    release = session.config.helm_release_name
    revisions = helm.history(release)
    if revisions and revisions[-1].status in PENDING_STATUSES:
        stuck = revisions[-1]
        guard()
        done = helm.recover_pending(release)
        output.warning(
            f"Helm release {release} was left {stuck.status} (revision {stuck.revision}) by an "
            f"interrupted run; {done}."
        )
        revisions = helm.history(release)
    deployed = [r.revision for r in revisions if r.status == "deployed"]
    return deployed[-1] if deployed else None


def reverted(current: StateSnapshot, before: StateSnapshot, after: StateSnapshot) -> StateSnapshot:
    """`current` with what the change `before` -> `after` did undone (pure).

    Entries the change touched go back to their `before` form (or away when it added them);
    entries anyone else changed meanwhile stay. History records of those names go back too,
    but every tag stays recorded: a tag is never handed out twice.
    """
    if current.values == after.values:
        values = copy.deepcopy(before.values)
    else:
        values = current.values
        touched = {
            name
            for name in location_names(before) | location_names(after)
            if find_entry(before.values, name) != find_entry(after.values, name)
        }
        for name in sorted(touched):
            old = find_entry(before.values, name)
            values = upsert_entry(values, old) if old else remove_entries(values, {name})
    history = dict(current.history)
    for name, changed in after.history.items():
        previous = before.history_of(name)
        if changed.records != previous.records:
            kept = current.history_of(name)
            history[name] = DeploymentHistory(tags=list(kept.tags), records=list(previous.records))
    return replace(current, values=values, history=history)


#: `_restore`'s revision when Helm never ran: the release needs no rollback.
_UNTOUCHED = -1


def _restore(
    session: Session,
    before: StateSnapshot,
    after: StateSnapshot,
    revision: int | None,
    steps: Steps,
    guard: Callable[[], None] = lambda: None,
) -> None:
    """Put the release, the values and the workspace back as they were before the change
    (`revision`: the release revision to roll back to; None uninstalls; _UNTOUCHED keeps it).
    `guard` runs before each step: a lost lock stops the rollback (LockLost is raised)."""
    release = session.config.helm_release_name
    with steps.step("Rolling back to the previous state"):
        try:
            guard()
            _, restored = session.state.update(lambda current: reverted(current, before, after))
            guard()
            session.state.write_workspace(workspace_yaml(restored.values))
            if revision != _UNTOUCHED and _release_moved(session, revision):
                guard()
                if revision is not None:
                    _roll_release_back(session, revision, dump_yaml(restored.values))
                else:
                    session.helm.uninstall(release)
        except LockLost:
            raise
        except DagsterUcError as exc:
            output.error(
                f"The rollback did not complete ({exc}); the next deploy or delete will "
                f"reconcile the release with the state. Values before the change:\n{dump_yaml(before.values)}"
            )


def _roll_release_back(session: Session, revision: int, values_yaml: str) -> None:
    """`helm rollback` to `revision`, or, when Helm refuses, an upgrade to `values_yaml`.

    Helm compares a rollback with the newest (failed) revision: when the failed upgrade dropped
    resources from its manifest without deleting them (a delete or prune), Helm finds them in
    the cluster but not in that revision and refuses. An upgrade compares with the last
    deployed revision, which still has them."""
    release = session.config.helm_release_name
    try:
        session.helm.rollback(release, revision)
    except OperationError as exc:
        output.info(f"{exc}; upgrading the release to the values before the change instead.")
        session.helm.upgrade_install(release, chart_source(session.config), values_yaml)


def _release_moved(session: Session, revision: int | None) -> bool:
    """Did Helm record anything after `revision` (None: is there a release at all)? A Helm run
    that failed before changing anything (a chart that cannot be fetched) needs no rollback."""
    revisions = session.helm.history(session.config.helm_release_name)
    if revision is None:
        return bool(revisions)
    return not (revisions and revisions[-1].revision == revision)
