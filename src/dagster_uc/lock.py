"""The deploy lock: a coordination.k8s.io/v1 Lease, taken and renewed with compare-and-swap.

Only one process changes the cluster state at a time, across machines. The Lease names its
holder (user@host plus a per-process token) and expires unless renewed, so a killed deploy
never locks the team out for longer than one lease duration.

Expiry and loss are judged as client-go's leader election judges them, never by comparing
another machine's clock with ours:

- a Lease held by someone else is expired once its record (resourceVersion, holder,
  renewTime) has not changed for a whole lease duration, measured on this process's monotonic
  clock from the moment this process first saw that record;
- the holder renews every third of the duration and retries quickly after a failure; when no
  renewal succeeded for two thirds of the duration (measured from the moment the last
  successful renewal was sent) the lock counts as lost, before any other process can judge it
  expired. Every write, and every step of a rollback, checks it first (`ensure_held`).

While the Lease is held, the lock ConfigMap of the original dagster-uc (same name, data
`locked: "true"`) is respected too: we wait while the original holds it and set it while we
hold ours, so both tools exclude each other during a migration.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from dagster_uc import output
from dagster_uc.errors import DagsterUcError, OperationError, UsageError
from dagster_uc.kube import api_error_code, api_errors
from dagster_uc.lease import (
    DEFAULT_LEASE_SECONDS,
    LeaseObserver,
    LockStatus,
    answered,
    clear_holder,
    holder_identity,
    keep_micro_times,
    lease_record,
    micro_time,
    read_lease,
    release_lease,
    status_from_lease,
    user_at_host,
    utc_now,
)

if TYPE_CHECKING:
    from lightkube import Client

    from dagster_uc.config import Config

#: Data key of the original dagster-uc's lock ConfigMap, and the key naming which of our
#: processes set it (the original writes only `locked`).
ORIGINAL_LOCKED_KEY = "locked"
ORIGINAL_HOLDER_KEY = "holder"


class LockLost(OperationError):
    """The lease was taken over or could not be renewed in time: nothing more may change."""


@dataclass(frozen=True)
class OriginalLock:
    """The original dagster-uc's lock ConfigMap as seen at one moment (the wait message)."""

    name: str

    def describe_holder(self) -> str:
        return (
            f'ConfigMap {self.name} says locked: "true" (set by the original dagster-uc); '
            "waiting for that deploy to finish (--reset-lock if none is running)"
        )


class DeployLock:
    """Acquire, renew and release the Lease named `name` in `namespace` (and the original
    tool's lock ConfigMap of the same name).

    `clock` (monotonic seconds) and `wall` (for the Lease's MicroTimes) are parameters so
    the expiry rules can be tested without waiting.
    """

    def __init__(
        self,
        client: Client,
        namespace: str,
        name: str,
        *,
        identity: str | None = None,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity or holder_identity()
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.wall = wall
        self._lease: Any = None
        self._flag: Any = None
        self._observer = LeaseObserver()
        self._renewed_at: float | None = None
        self._lost_reason = ""
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = threading.Event()

    @property
    def renew_interval(self) -> float:
        return self.lease_seconds / 3

    @property
    def renew_deadline(self) -> float:
        """No successful renewal for this long means the lock is lost: a third of the lease
        before any other process may judge it expired."""
        return self.lease_seconds * 2 / 3

    def status(self) -> LockStatus:
        return status_from_lease(self.name, self._read())

    def try_acquire(self, *, force: bool = False) -> LockStatus | None:
        """Take the lock if free, expired, ours, or `force`; else return who holds it."""
        from lightkube.models.coordination_v1 import LeaseSpec
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.coordination_v1 import Lease

        lease = self._read()
        seen = self.clock()
        current = status_from_lease(self.name, lease)
        if (
            lease is not None
            and current.holder
            and current.holder != self.identity
            and not force
            and not self._observer.expired(lease_record(lease), current.lease_seconds, seen)
        ):
            return current
        transitions = 0
        if lease is not None and lease.spec is not None:
            transitions = int(lease.spec.leaseTransitions or 0)
            if lease.spec.holderIdentity != self.identity:
                transitions += 1
        stamp = micro_time(self.wall())
        spec = LeaseSpec(
            holderIdentity=self.identity,
            leaseDurationSeconds=self.lease_seconds,
            acquireTime=cast("dt.datetime", stamp),
            renewTime=cast("dt.datetime", stamp),
            leaseTransitions=transitions,
        )
        sent = self.clock()
        if lease is not None:
            lease.spec = spec
        try:
            self._lease = self._create_or_replace(
                f"take the deploy lock {self.name}",
                lease,
                Lease(metadata=ObjectMeta(name=self.name, namespace=self.namespace), spec=spec),
            )
        except OperationError as exc:
            if answered(exc, 409):
                return status_from_lease(self.name, self._read())
            raise
        self._renewed_at = sent
        self._lost_reason = ""
        self.lost.clear()
        return None

    def acquire(
        self,
        *,
        force: bool = False,
        timeout_s: float | None = None,
        on_wait: Callable[[LockStatus | OriginalLock], None] | None = None,
    ) -> None:
        """Wait (polling with backoff) until the lock is ours, keep renewing it, then wait
        likewise for the original tool's lock ConfigMap and set it."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        delay = 0.2
        last_holder: str | None = None
        while True:
            holder = self.try_acquire(force=force)
            if holder is None:
                break
            if on_wait is not None and holder.holder != last_holder:
                on_wait(holder)
            last_holder = holder.holder
            if deadline is not None and time.monotonic() >= deadline:
                raise OperationError(
                    f"Timed out waiting for the deploy {holder.describe_holder()}; "
                    "retry later or use --reset-lock if that deploy is gone."
                )
            time.sleep(delay)
            delay = min(delay * 1.6, 2.0)
        self._start_renewing()
        try:
            self._take_original_lock(force=force, deadline=deadline, on_wait=on_wait)
        except BaseException:
            self.release()
            raise

    def _take_original_lock(
        self,
        *,
        force: bool,
        deadline: float | None,
        on_wait: Callable[[LockStatus | OriginalLock], None] | None,
    ) -> None:
        """Set the original dagster-uc's lock ConfigMap (`locked: "true"`) for us, waiting
        while the original holds it. A flag set by another process of ours is stale: that
        process no longer holds the Lease, which we hold now."""
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ConfigMap

        delay = 0.2
        told = False
        while True:
            self.ensure_held()
            configmap = self._read_flag()
            data = dict((configmap.data or {}) if configmap is not None else {})
            held_by_original = data.get(ORIGINAL_LOCKED_KEY) == "true" and not data.get(
                ORIGINAL_HOLDER_KEY
            )
            if not held_by_original or force:
                data.update({ORIGINAL_LOCKED_KEY: "true", ORIGINAL_HOLDER_KEY: self.identity})
                if configmap is not None:
                    configmap.data = data
                try:
                    self._flag = self._create_or_replace(
                        f"set the lock ConfigMap {self.name}",
                        configmap,
                        ConfigMap(
                            metadata=ObjectMeta(name=self.name, namespace=self.namespace),
                            data=data,
                        ),
                    )
                    return
                except OperationError as exc:
                    if not answered(exc, 409):
                        raise
                    continue
            if on_wait is not None and not told:
                on_wait(OriginalLock(self.name))
                told = True
            if deadline is not None and time.monotonic() >= deadline:
                raise OperationError(
                    f"Timed out waiting for the original dagster-uc's lock: "
                    f"{OriginalLock(self.name).describe_holder()}."
                )
            time.sleep(delay)
            delay = min(delay * 1.6, 2.0)

    def _release_original_lock(self) -> None:
        """Clear the original tool's flag if we set it (compare-and-swap, a few tries)."""

        configmap = self._flag
        self._flag = None
        for _ in range(5):
            if configmap is None:
                configmap = self._read_flag()
            data = dict((configmap.data or {}) if configmap is not None else {})
            if configmap is None or data.get(ORIGINAL_HOLDER_KEY) != self.identity:
                return
            data.pop(ORIGINAL_HOLDER_KEY, None)
            data[ORIGINAL_LOCKED_KEY] = "false"
            configmap.data = data
            try:
                with api_errors(f"clear the lock ConfigMap {self.name}"):
                    self.client.replace(configmap)
                return
            except OperationError as exc:
                if not answered(exc, 404, 409):
                    raise
                configmap = None

    def release(self) -> None:
        """Give the lock back if we still hold it (compare-and-swap; never frees someone else's).

        Best effort: when the API server cannot be reached the Lease simply expires, so a
        failure here is a warning and never hides the outcome of the deploy itself.
        """
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        try:
            self._release_original_lock()
            if not self._release_cached():
                release_lease(self.client, self.namespace, self.name, only_holder=self.identity)
        except DagsterUcError as exc:
            output.warning(
                f"Could not release the deploy lock {self.name} ({exc}); "
                f"it expires by itself within {self.lease_seconds} s."
            )
        self._lease = None

    def _release_cached(self) -> bool:
        """Clear the holder with the Lease we last wrote (one request); False when that copy is
        stale (409) or missing, so the caller re-reads."""

        lease = self._lease
        if lease is None or lease.spec is None or lease.spec.holderIdentity != self.identity:
            return False
        try:
            clear_holder(self.client, lease, self.name)
        except OperationError as exc:
            if answered(exc, 404, 409):
                return False
            raise
        return True

    def _start_renewing(self) -> None:
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True, name="lease-renew")
        self._renewer.start()

    def _renew_loop(self) -> None:
        """Renew every `renew_interval`; after a failure retry quickly; stop once lost."""
        delay = self.renew_interval
        while not self._stop.wait(delay):
            if self.renew_once():
                delay = self.renew_interval
            elif self.lost.is_set():
                return
            else:
                left = self.renew_deadline - (self.clock() - (self._renewed_at or 0.0))
                delay = max(0.05, min(1.0, left / 4))

    def renew_once(self) -> bool:
        """One renewal with the Lease we last wrote (one request; after a conflict it reads
        the Lease and tries once more). False when it failed; sets `lost` when someone else
        holds the Lease or no renewal succeeded within `renew_deadline`."""
        from lightkube import ApiError

        sent = self.clock()
        if self._overdue(sent):
            return False
        lease = self._lease
        self._lease = None
        for _ in range(2):
            try:
                if lease is None:
                    lease = self._read()
                if lease is None or lease.spec is None:
                    self._lose("the Lease was deleted")
                    return False
                if lease.spec.holderIdentity != self.identity:
                    self._lose(f"{lease.spec.holderIdentity or 'nobody'} holds it now")
                    return False
                lease.spec.renewTime = micro_time(self.wall())
                keep_micro_times(lease.spec)
                self._lease = self.client.replace(lease)
            except ApiError as exc:
                if api_error_code(exc) != 409:
                    return False
                lease = None
                continue
            except Exception:
                return False
            self._renewed_at = sent
            return True
        return False

    def _overdue(self, now: float) -> bool:
        if self._renewed_at is not None and now - self._renewed_at > self.renew_deadline:
            self._lose(f"no renewal succeeded for {self.renew_deadline:g} s")
        return self.lost.is_set()

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self._lost_reason = reason
            self.lost.set()

    def ensure_held(self) -> None:
        """Stop before a write (or a rollback step) unless the lock is surely still ours."""
        if self._overdue(self.clock()):
            raise LockLost(
                f"Lost the deploy lock {self.name} ({self._lost_reason}); stopped without "
                "changing anything more. What this command had changed before stays as it is "
                "(without the lock nothing may be rolled back): see `dagster-uc deployment "
                "list` and run the command again."
            )

    def _create_or_replace(self, action: str, current: Any, new: Any) -> Any:
        """Create `new` when there is no `current`, else replace `current` (a compare-and-swap
        on its resourceVersion); returns what the API server stored."""
        with api_errors(action):
            if current is None:
                return self.client.create(new)
            return self.client.replace(current)

    def _read(self) -> Any:
        return read_lease(self.client, self.namespace, self.name)

    def _read_flag(self) -> Any:
        from lightkube import ApiError
        from lightkube.resources.core_v1 import ConfigMap

        with api_errors(f"read the lock ConfigMap {self.name}"):
            try:
                return self.client.get(ConfigMap, self.name, namespace=self.namespace)
            except ApiError as exc:
                if api_error_code(exc) == 404:
                    return None
                raise

    @contextmanager
    def held(
        self,
        *,
        force: bool = False,
        timeout_s: float | None = None,
        on_wait: Callable[[LockStatus | OriginalLock], None] | None = None,
    ) -> Iterator[DeployLock]:
        self.acquire(force=force, timeout_s=timeout_s, on_wait=on_wait)
        try:
            yield self
        finally:
            self.release()


def lock_status(client: Client, config: Config) -> LockStatus:
    return status_from_lease(
        config.uc_deployment_semaphore_name,
        read_lease(client, config.namespace, config.uc_deployment_semaphore_name),
    )


def release_lock(client: Client, config: Config, *, force: bool) -> str:
    """`lock release`: free the lock; one held by another user or machine only with `force`."""
    status = lock_status(client, config)
    if not status.is_held():
        return f"The deploy lock {status.name} is not held; nothing to release."
    assert status.holder is not None
    mine = user_at_host(status.holder) == user_at_host(holder_identity())
    if not mine and not force:
        raise UsageError(
            f"The deploy {status.describe()}; pass --force to release someone else's lock."
        )
    release_lease(client, config.namespace, status.name, only_holder=status.holder)
    return f"Released the deploy lock {status.name} held by {status.holder}."
