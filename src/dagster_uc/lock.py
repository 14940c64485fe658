"""The deploy lock: a coordination.k8s.io/v1 Lease, taken and renewed with compare-and-swap.

Only one process changes the cluster state at a time, across machines. The Lease names its
holder (user@host plus a per-process token) and expires unless renewed, so a killed deploy
never locks the team out for longer than one lease duration.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dagster_uc.errors import OperationError
from dagster_uc.kube import api_error_code, api_errors

if TYPE_CHECKING:
    from lightkube import Client

    from dagster_uc.config import Config

DEFAULT_LEASE_SECONDS = 30


def holder_identity() -> str:
    """`user@host` plus the process and a random token, so two deploys never share an identity."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid={os.getpid()} id={uuid.uuid4().hex[:8]}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _parse_time(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    text = str(value).replace("Z", "+00:00")
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class LockStatus:
    """The Lease as seen at one moment."""

    name: str
    holder: str | None
    acquired_at: dt.datetime | None
    renewed_at: dt.datetime | None
    lease_seconds: int
    exists: bool

    @property
    def expires_at(self) -> dt.datetime | None:
        if self.renewed_at is None:
            return None
        return self.renewed_at + dt.timedelta(seconds=self.lease_seconds)

    def is_held(self, now: dt.datetime | None = None) -> bool:
        expires = self.expires_at
        return bool(self.holder) and expires is not None and expires > (now or _now())

    def to_json(self) -> dict[str, Any]:
        held = self.is_held()
        return {
            "name": self.name,
            "held": held,
            "holder": self.holder if held else None,
            "acquired_at": _iso(self.acquired_at) if held else None,
            "renewed_at": _iso(self.renewed_at) if held else None,
            "expires_at": _iso(self.expires_at) if held else None,
            "lease_seconds": self.lease_seconds,
        }

    def describe(self) -> str:
        if not self.is_held():
            return f"lock {self.name} is free"
        since = self.acquired_at.strftime("%H:%M:%S UTC") if self.acquired_at else "unknown"
        until = self.expires_at.strftime("%H:%M:%S UTC") if self.expires_at else "unknown"
        return f"lock {self.name} is held by {self.holder} since {since} (expires {until} unless renewed)"


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _user_at_host(identity: str) -> str:
    return identity.split(" ", 1)[0]


def status_from_lease(name: str, lease: Any | None) -> LockStatus:
    if lease is None or lease.spec is None:
        return LockStatus(name, None, None, None, DEFAULT_LEASE_SECONDS, lease is not None)
    spec = lease.spec
    return LockStatus(
        name=name,
        holder=spec.holderIdentity or None,
        acquired_at=_parse_time(spec.acquireTime),
        renewed_at=_parse_time(spec.renewTime),
        lease_seconds=int(spec.leaseDurationSeconds or DEFAULT_LEASE_SECONDS),
        exists=True,
    )


class DeployLock:
    """Acquire, renew and release the Lease named `name` in `namespace`."""

    def __init__(
        self,
        client: Client,
        namespace: str,
        name: str,
        *,
        identity: str | None = None,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity or holder_identity()
        self.lease_seconds = lease_seconds
        self._lease: Any = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = threading.Event()

    def status(self) -> LockStatus:
        return status_from_lease(self.name, self._read())

    def try_acquire(self, *, force: bool = False) -> LockStatus | None:
        """Take the lock if free, expired, ours, or `force`; else return who holds it."""
        from lightkube import ApiError
        from lightkube.models.coordination_v1 import LeaseSpec
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.coordination_v1 import Lease

        lease = self._read()
        current = status_from_lease(self.name, lease)
        if current.is_held() and current.holder != self.identity and not force:
            return current
        now = _now()
        transitions = 0
        if lease is not None and lease.spec is not None:
            transitions = int(lease.spec.leaseTransitions or 0) + 1
        spec = LeaseSpec(
            holderIdentity=self.identity,
            leaseDurationSeconds=self.lease_seconds,
            acquireTime=now,
            renewTime=now,
            leaseTransitions=transitions,
        )
        try:
            with api_errors(f"take the deploy lock {self.name}"):
                if lease is None:
                    self._lease = self.client.create(
                        Lease(
                            metadata=ObjectMeta(name=self.name, namespace=self.namespace),
                            spec=spec,
                        )
                    )
                else:
                    lease.spec = spec
                    self._lease = self.client.replace(lease)
        except OperationError as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiError) and api_error_code(cause) == 409:
                return status_from_lease(self.name, self._read())
            raise
        return None

    def acquire(
        self,
        *,
        force: bool = False,
        timeout_s: float | None = None,
        on_wait: Callable[[LockStatus], None] | None = None,
    ) -> None:
        """Wait (polling with backoff) until the lock is ours, then keep renewing it."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        delay = 0.2
        last_holder: str | None = None
        while True:
            holder = self.try_acquire(force=force)
            if holder is None:
                self._start_renewing()
                return
            if on_wait is not None and holder.holder != last_holder:
                on_wait(holder)
            last_holder = holder.holder
            if deadline is not None and time.monotonic() >= deadline:
                raise OperationError(
                    f"Timed out waiting for the deploy {holder.describe()}; "
                    "retry later or use --reset-lock if that deploy is gone."
                )
            time.sleep(delay)
            delay = min(delay * 1.6, 2.0)

    def release(self) -> None:
        """Give the lock back if we still hold it (compare-and-swap; never frees someone else's).

        Best effort: when the API server cannot be reached the Lease simply expires, so a
        failure here is a warning and never hides the outcome of the deploy itself.
        """
        from dagster_uc import output
        from dagster_uc.errors import DagsterUcError

        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        try:
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
        from lightkube import ApiError

        lease = self._lease
        if lease is None or lease.spec is None or lease.spec.holderIdentity != self.identity:
            return False
        lease.spec.holderIdentity = None
        lease.spec.renewTime = None
        lease.spec.acquireTime = None
        try:
            with api_errors(f"release the deploy lock {self.name}"):
                self.client.replace(lease)
        except OperationError as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiError) and api_error_code(cause) in (404, 409):
                return False
            raise
        return True

    def _start_renewing(self) -> None:
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True, name="lease-renew")
        self._renewer.start()

    def _renew_loop(self) -> None:
        """Renew with the Lease we last wrote (one request); re-read only after a conflict or
        an error, and stop (setting `lost`) once someone else holds it."""
        interval = max(0.5, self.lease_seconds / 3)
        lease = self._lease
        while not self._stop.wait(interval):
            try:
                if lease is None:
                    lease = self._read()
                if (
                    lease is None
                    or lease.spec is None
                    or lease.spec.holderIdentity != self.identity
                ):
                    self.lost.set()
                    return
                lease.spec.renewTime = _now()
                lease = self._lease = self.client.replace(lease)
            except Exception:
                lease = None

    def ensure_held(self) -> None:
        """Stop before a write when the lease was taken over (this process stalled past expiry)."""
        if self.lost.is_set():
            raise OperationError(
                f"The deploy lock {self.name} was taken over by someone else while this command "
                "ran; nothing more was changed, run the command again."
            )

    def _read(self) -> Any:
        return read_lease(self.client, self.namespace, self.name)

    @contextmanager
    def held(
        self,
        *,
        force: bool = False,
        timeout_s: float | None = None,
        on_wait: Callable[[LockStatus], None] | None = None,
    ) -> Iterator[DeployLock]:
        self.acquire(force=force, timeout_s=timeout_s, on_wait=on_wait)
        try:
            yield self
        finally:
            self.release()


def read_lease(client: Client, namespace: str, name: str) -> Any:
    from lightkube import ApiError
    from lightkube.resources.coordination_v1 import Lease

    with api_errors(f"read the deploy lock {name}"):
        try:
            return client.get(Lease, name, namespace=namespace)
        except ApiError as exc:
            if api_error_code(exc) == 404:
                return None
            raise


def release_lease(client: Client, namespace: str, name: str, *, only_holder: str | None) -> bool:
    """Clear the holder of the Lease; with `only_holder`, only if that identity holds it."""
    from lightkube import ApiError

    for _ in range(5):
        lease = read_lease(client, namespace, name)
        if lease is None or lease.spec is None or not lease.spec.holderIdentity:
            return False
        if only_holder is not None and lease.spec.holderIdentity != only_holder:
            return False
        lease.spec.holderIdentity = None
        lease.spec.renewTime = None
        lease.spec.acquireTime = None
        try:
            with api_errors(f"release the deploy lock {name}"):
                client.replace(lease)
            return True
        except OperationError as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiError) and api_error_code(cause) == 409:
                continue
            raise
    return False


def lock_status(client: Client, config: Config) -> LockStatus:
    return status_from_lease(
        config.uc_deployment_semaphore_name,
        read_lease(client, config.namespace, config.uc_deployment_semaphore_name),
    )


def release_lock(client: Client, config: Config, *, force: bool) -> str:
    """`lock release`: free the lock; one held by another user or machine only with `force`."""
    from dagster_uc.errors import UsageError

    status = lock_status(client, config)
    if not status.is_held():
        return f"The deploy lock {status.name} is not held; nothing to release."
    assert status.holder is not None
    mine = _user_at_host(status.holder) == _user_at_host(holder_identity())
    if not mine and not force:
        raise UsageError(
            f"The deploy {status.describe()}; pass --force to release someone else's lock."
        )
    release_lease(client, config.namespace, status.name, only_holder=status.holder)
    return f"Released the deploy lock {status.name} held by {status.holder}."
