"""What a deploy lock's Lease says (holder, times, expiry as client-go judges it) and the two
plain operations on it, read and release; the taking and renewing protocol is in `lock`."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dagster_uc.errors import OperationError
from dagster_uc.kube import api_error_code, api_errors

if TYPE_CHECKING:
    from lightkube import Client

DEFAULT_LEASE_SECONDS = 30


def holder_identity() -> str:
    """`user@host` plus the process and a random token, so two deploys never share an identity."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid={os.getpid()} id={uuid.uuid4().hex[:8]}"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def micro_time(moment: dt.datetime) -> str:
    """A MicroTime as the API server parses it: always six fractional digits, UTC."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def keep_micro_times(spec: Any) -> None:
    """Turn the Lease times read back (datetimes) into MicroTime strings before a write:
    lightkube sends a string as it is, but formats a datetime at an exact second without the
    fraction, which the API server's MicroTime parser refuses."""
    for attribute in ("acquireTime", "renewTime"):
        value = getattr(spec, attribute)
        if isinstance(value, dt.datetime):
            setattr(spec, attribute, micro_time(_parse_time(value) or value))


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
    """The Lease as seen at one moment.

    `is_held` reads renewTime against this machine's clock: good enough to show the lock
    (`lock status`, `doctor`), never used to take it over (see `LeaseObserver`)."""

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
        return bool(self.holder) and expires is not None and expires > (now or utc_now())

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
        return self.describe_holder()

    def describe_holder(self) -> str:
        """Who holds it, whatever the clocks say (the wait message of a deploy)."""
        since = self.acquired_at.strftime("%H:%M:%S UTC") if self.acquired_at else "unknown"
        return (
            f"lock {self.name} is held by {self.holder} since {since} (free once not renewed "
            f"for {self.lease_seconds} s)"
        )


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def user_at_host(identity: str) -> str:
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


def lease_record(lease: Any) -> tuple[str, ...]:
    """What changes whenever the holder renews or the Lease changes hands."""
    spec = lease.spec
    return (
        str(getattr(lease.metadata, "resourceVersion", "") or ""),
        str(spec.holderIdentity or ""),
        str(spec.renewTime or ""),
        str(spec.leaseDurationSeconds or ""),
    )


class LeaseObserver:
    """Judges another holder's Lease expired as client-go does: its record unchanged for a
    whole lease duration on our monotonic clock, counted from when we first saw the record."""

    def __init__(self) -> None:
        self._record: tuple[str, ...] | None = None
        self._since = 0.0

    def expired(self, record: tuple[str, ...], lease_seconds: float, now: float) -> bool:
        if record != self._record:
            self._record, self._since = record, now
            return False
        return now - self._since >= lease_seconds


def answered(exc: OperationError, *codes: int) -> bool:
    """Was `exc` (from `api_errors`) caused by an API answer with one of `codes`?"""
    from lightkube import ApiError

    cause = exc.__cause__
    return isinstance(cause, ApiError) and api_error_code(cause) in codes


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

    for _ in range(5):
        lease = read_lease(client, namespace, name)
        if lease is None or lease.spec is None or not lease.spec.holderIdentity:
            return False
        if only_holder is not None and lease.spec.holderIdentity != only_holder:
            return False
        try:
            clear_holder(client, lease, name)
            return True
        except OperationError as exc:
            if answered(exc, 409):
                continue
            raise
    return False


def clear_holder(client: Client, lease: Any, name: str) -> None:
    """Write `lease` back with no holder: a compare-and-swap on the resourceVersion it has
    (409 when someone wrote it since)."""
    lease.spec.holderIdentity = None
    lease.spec.renewTime = None
    lease.spec.acquireTime = None
    with api_errors(f"release the deploy lock {name}"):
        client.replace(lease)
