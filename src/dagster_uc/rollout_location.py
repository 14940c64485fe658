"""Roll out a change of ONE code location in per-location mode (see `release_mode`).

The location's own Lease (never the global deploy lock) is held while the values and
workspace ConfigMaps are written (compare-and-swap, so concurrent deploys of other locations
never lose each other's entry) and the location's own release is upgraded; the wait for
readiness runs with no lock held. A failed rollout undoes only this location: its entry, and
its release (rolled back, or uninstalled after a first install), unless a newer change of the
same location went out meanwhile, which then wins.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from dagster_uc import output
from dagster_uc.errors import DagsterUcError, OperationError
from dagster_uc.helm import PENDING_STATUSES, chart_source
from dagster_uc.lock import DeployLock, LockLost
from dagster_uc.pods import diagnose, format_diagnosis, wait_for_rollout
from dagster_uc.release_mode import (
    PER_LOCATION,
    location_lock,
    location_release_name,
    location_values,
    scope_of,
)
from dagster_uc.rollout import (
    ChangeResult,
    RolloutFailed,
    interrupts_deferred,
    location_names,
    reload_or_restart,
    restart_dagster,
    reverted,
    terminate_as_interrupt,
)
from dagster_uc.state import StateSnapshot, dump_yaml
from dagster_uc.values import entry_tag, find_entry, upsert_entry
from dagster_uc.workspace import workspace_yaml

if TYPE_CHECKING:
    from dagster_uc.progress import Steps
    from dagster_uc.session import Session

T = TypeVar("T")
#: How often, at most, the wait checks that no newer change of the location went out.
_SUPERSEDED_CHECK_S = 2.0


class Superseded(DagsterUcError):
    """A newer change of the same location went out while this one waited."""


@dataclass(frozen=True)
class Applied:
    before: StateSnapshot
    after: StateSnapshot
    #: The release's deployed revision before the change (None: it did not exist), and ours
    #: (None: Helm never ran, or the release was uninstalled).
    previous: int | None
    ours: int | None


def apply_location_change(
    session: Session,
    name: str,
    change: Callable[[StateSnapshot], StateSnapshot | None],
    *,
    steps: Steps,
    image: str | None = None,
    wait: bool = True,
    timeout_s: float = 300,
    force_restart: bool = False,
    start: StateSnapshot | None = None,
    reset_lock: bool = False,
) -> ChangeResult:
    """Write `change` (which touches only `name`'s entry) and roll out `name`'s release;
    wait (lock-free) until `image` is ready when given; undo this location on failure."""
    with terminate_as_interrupt():
        applied = with_location_lock(
            session,
            name,
            steps,
            lambda lock: _apply(session, name, change, start, lock, steps),
            reset_lock=reset_lock,
        )
        if wait and image is not None and find_entry(applied.after.values, name) is not None:
            try:
                with steps.step(f"Waiting for {name} to be ready (up to {int(timeout_s)} s)"):
                    _wait(session, name, image, timeout_s)
            except Superseded as exc:
                output.warning(str(exc))
                return ChangeResult(applied.before, applied.after, [], [name])
            except (DagsterUcError, KeyboardInterrupt):
                with interrupts_deferred():
                    with_location_lock(
                        session,
                        name,
                        steps,
                        lambda lock: undo_location(session, name, applied, steps, lock.ensure_held),
                    )
                raise
    restarted: list[str] = []
    if force_restart or location_names(applied.before) != location_names(applied.after):
        # Other locations may have come or gone meanwhile: Dagster must show today's set.
        current = session.state.read()
        if session.config.dagster_reload == "reload" and not force_restart:
            restarted = reload_or_restart(session, applied.before, current, steps)
        else:
            restarted = restart_dagster(session, steps)
    waited = [name] if wait and image is not None else []
    return ChangeResult(applied.before, applied.after, restarted, waited)


def with_location_lock(
    session: Session,
    name: str,
    steps: Steps,
    body: Callable[[DeployLock], T],
    *,
    reset_lock: bool = False,
) -> T:
    """`body(lock)` while holding the Lease of location `name` (released whatever happens)."""
    lock = location_lock(session, name)
    with steps.step(f"Taking the lock of {name}"):
        lock.acquire(
            force=reset_lock, on_wait=lambda s: steps.note(f"waiting: {s.describe_holder()}")
        )
    try:
        return body(lock)
    finally:
        lock.release()


@contextmanager
def global_lock(
    session: Session, steps: Steps, *, reset_lock: bool = False
) -> Iterator[DeployLock]:
    """The global deploy lock (operations on many locations at once), released whatever
    happens; SIGTERM is handled like Ctrl-C meanwhile."""
    config = session.config
    lock = DeployLock(
        session.client,
        config.namespace,
        config.uc_deployment_semaphore_name,
        lease_seconds=config.deploy_lock_lease_seconds,
    )
    with terminate_as_interrupt():
        with steps.step("Taking the deploy lock"):
            lock.acquire(
                force=reset_lock, on_wait=lambda s: steps.note(f"waiting: {s.describe_holder()}")
            )
        try:
            yield lock
        finally:
            lock.release()


def prepare_release(session: Session, release: str, guard: Callable[[], None]) -> int | None:
    """The deployed revision to go back to (None: uninstall), after unlocking a release left
    `pending-*` by an interrupted run (we hold its lock, so nobody else runs Helm on it)."""
    revisions = session.helm.history(release, max_revisions=16)
    if revisions and revisions[-1].status in PENDING_STATUSES:
        guard()
        done = session.helm.recover_pending(release)
        output.warning(f"Helm release {release} was left {revisions[-1].status}; {done}.")
        revisions = session.helm.history(release, max_revisions=16)
    deployed = [r.revision for r in revisions if r.status == "deployed"]
    return deployed[-1] if deployed else None


def _apply(
    session: Session,
    name: str,
    change: Callable[[StateSnapshot], StateSnapshot | None],
    start: StateSnapshot | None,
    lock: DeployLock,
    steps: Steps,
) -> Applied:
    config = session.config
    release = location_release_name(config.helm_release_name, name)
    previous = prepare_release(session, release, lock.ensure_held)
    before: StateSnapshot | None = None
    after: StateSnapshot | None = None
    helm_ran = False
    try:
        lock.ensure_held()
        with interrupts_deferred(), steps.step("Updating the list of code locations"):
            before, after = session.state.update(change, start=start)
            session.state.write_workspace(workspace_yaml(after.values))
        lock.ensure_held()
        entry = find_entry(after.values, name)
        if entry is None:
            with steps.step(f"Removing Helm release {release}"):
                helm_ran = True
                session.helm.uninstall(release)
            return Applied(before, after, previous, None)
        document = location_values(after.values, entry, release, config.namespace)
        with steps.step(f"Rolling out Helm release {release}"):
            helm_ran = True
            result = session.helm.upgrade_install(
                release, chart_source(config), dump_yaml(document)
            )
        return Applied(before, after, previous, result.revision)
    except LockLost:
        raise
    except (DagsterUcError, KeyboardInterrupt):
        if before is not None and after is not None:
            applied = Applied(before, after, previous, None if not helm_ran else -1)
            with interrupts_deferred():
                undo_location(session, name, applied, steps, lock.ensure_held)
        raise


def _wait(session: Session, name: str, image: str, timeout_s: float) -> None:
    """Wait until `image` of `name` is ready; stop early (Superseded) when the state shows a
    newer change of the location (its entry no longer names `image`)."""
    config = session.config
    scope = scope_of(config, PER_LOCATION, name)
    tag = image.rsplit(":", 1)[-1]
    checked = [time.monotonic()]

    def check_superseded() -> None:
        if time.monotonic() - checked[0] < _SUPERSEDED_CHECK_S:
            return
        checked[0] = time.monotonic()
        entry = find_entry(session.state.read().values, name)
        if entry is None or entry_tag(entry) != tag:
            now = entry_tag(entry) if entry is not None else None
            raise Superseded(
                f"Deployment {name} was changed meanwhile by a newer deploy "
                f"({'now at tag ' + now if now else 'deleted'}); that change wins, so this "
                f"one stopped waiting for {tag}."
            )

    result = wait_for_rollout(
        session.client,
        config.namespace,
        name,
        image,
        timeout_s,
        scope=scope,
        before_poll=check_superseded,
    )
    if result.ok:
        return
    checked[0] = float("-inf")
    check_superseded()
    try:
        diagnosis = format_diagnosis(diagnose(session.client, config.namespace, name, scope=scope))
    except OperationError as exc:
        diagnosis = f"Could not diagnose {name}: {exc}"
    raise RolloutFailed(name, result.message, diagnosis)


def undo_location(
    session: Session,
    name: str,
    applied: Applied,
    steps: Steps,
    guard: Callable[[], None],
) -> None:
    """Put `name`'s entry, the workspace and its release back as before `applied`, unless a
    newer change of `name` went out since (then nothing is touched: the newer change wins).
    `applied.ours`: -1 when Helm ran but its revision is unknown, None when it never ran."""
    config = session.config
    release = location_release_name(config.helm_release_name, name)
    ours = find_entry(applied.after.values, name)
    with steps.step(f"Rolling {name} back to its previous state"):
        try:
            guard()
            if find_entry(session.state.read().values, name) != ours:
                output.warning(f"Deployment {name} was changed meanwhile; that change stays.")
                return
            _, restored = session.state.update(
                lambda current: reverted(current, applied.before, applied.after)
            )
            guard()
            session.state.write_workspace(workspace_yaml(restored.values))
            if applied.ours is None and find_entry(applied.after.values, name) is not None:
                return
            revisions = session.helm.history(release, max_revisions=16)
            latest = revisions[-1].revision if revisions else None
            if applied.ours not in (None, -1) and latest != applied.ours:
                return
            guard()
            if applied.previous is None:
                session.helm.uninstall(release)
                return
            if latest == applied.previous:
                return
            old = find_entry(applied.before.values, name)
            try:
                session.helm.rollback(release, applied.previous)
            except DagsterUcError:
                if old is None:
                    raise
                document = location_values(restored.values, old, release, config.namespace)
                session.helm.upgrade_install(release, chart_source(config), dump_yaml(document))
        except LockLost:
            raise
        except DagsterUcError as exc:
            output.error(
                f"The rollback of {name} did not complete ({exc}); the next deploy or delete "
                f"of {name} will reconcile its release with the state."
            )


def remove_locations(
    session: Session,
    change: Callable[[StateSnapshot], StateSnapshot | None],
    *,
    steps: Steps,
    reset_lock: bool = False,
) -> ChangeResult:
    """Remove many locations at once (`delete --all`, `prune`) in per-location mode, under the
    global deploy lock: one compare-and-swap of the values and the workspace, then each
    location's release uninstalled under its own Lease (a few at a time), unless it was
    deployed again meanwhile; one reload of Dagster at the end. Releases that could not be
    uninstalled get their entries back, so the state keeps naming what runs."""
    config = session.config
    with global_lock(session, steps, reset_lock=reset_lock) as lock:
        with interrupts_deferred(), steps.step("Updating the list of code locations"):
            before, after = session.state.update(change)
            session.state.write_workspace(workspace_yaml(after.values))
        gone = sorted(location_names(before) - location_names(after))
        failed: dict[str, str] = {}
        if gone:
            with steps.step(f"Removing {len(gone)} Helm release(s)"):
                failed = uninstall_releases(session, gone, lock.ensure_held)
        if failed:
            _put_back(session, before, sorted(failed))
            raise OperationError(
                f"Could not remove the release of {', '.join(sorted(failed))} "
                f"({next(iter(failed.values()))}); their entries were kept, the others "
                "are gone. Run the command again."
            )
    restarted: list[str] = []
    if gone:
        current = session.state.read()
        if config.dagster_reload == "reload":
            restarted = reload_or_restart(session, before, current, steps)
        else:
            restarted = restart_dagster(session, steps)
    return ChangeResult(before, after, restarted, [])


#: Helm processes run at once when many releases are removed or moved.
PARALLEL_HELM = 4
#: Releases one `helm uninstall` removes at most: one Helm process costs about as much as
#: removing one release, so `delete --all` of many hands each process a batch.
UNINSTALL_BATCH = 16


def uninstall_batches(names: list[str]) -> list[list[str]]:
    """`names` in batches for PARALLEL_HELM workers: as even as possible, none larger than
    UNINSTALL_BATCH, order kept."""
    if not names:
        return []
    count = max(PARALLEL_HELM, -(-len(names) // UNINSTALL_BATCH))
    count = min(count, len(names))
    size, extra = divmod(len(names), count)
    batches, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        batches.append(names[start:end])
        start = end
    return batches


def uninstall_releases(
    session: Session, names: list[str], guard: Callable[[], None]
) -> dict[str, str]:
    """Uninstall the release of each of `names`, each under its Lease, a batch per Helm process
    and a few processes at a time; returns {name: error} of those that failed. A name
    registered again meanwhile (a deploy that came after our state change) keeps its release."""
    from concurrent.futures import ThreadPoolExecutor

    config = session.config

    def release(name: str) -> str:
        return location_release_name(config.helm_release_name, name)

    def one_batch(batch: list[str]) -> dict[str, str]:
        guard()
        failed: dict[str, str] = {}
        held = []
        try:
            for name in batch:
                lock = location_lock(session, name)
                try:
                    lock.acquire()
                except DagsterUcError as exc:
                    failed[name] = str(exc)
                    continue
                held.append((name, lock))
            values = session.state.read().values
            todo = [name for name, _ in held if find_entry(values, name) is None]
            if not todo:
                return failed
            try:
                session.helm.uninstall(*(release(name) for name in todo))
            except DagsterUcError:
                # Helm stops at the first failure: find out which, one release at a time
                # (those already removed are not-found now, which is no error).
                for name in todo:
                    try:
                        session.helm.uninstall(release(name))
                    except DagsterUcError as exc:
                        failed[name] = str(exc)
        finally:
            for _, lock in held:
                lock.release()
        return failed

    failed: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=PARALLEL_HELM) as pool:
        for outcome in pool.map(one_batch, uninstall_batches(names)):
            failed.update(outcome)
    return failed


def _put_back(session: Session, before: StateSnapshot, names: list[str]) -> None:
    def change(current: StateSnapshot) -> StateSnapshot:
        values = current.values
        for name in names:
            entry = find_entry(before.values, name)
            if entry is not None and find_entry(values, name) is None:
                values = upsert_entry(values, entry)
        return replace(current, values=values)

    _, restored = session.state.update(change)
    session.state.write_workspace(workspace_yaml(restored.values))
