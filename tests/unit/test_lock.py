"""The deploy lock against the Kubernetes API emulator: expiry judged by observation on our
own monotonic clock (client-go's rule), the renewal deadline, MicroTimes, and the original
dagster-uc's lock ConfigMap. The clock is a parameter, so no test waits for a lease."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from dagster_uc.errors import OperationError
from dagster_uc.kube import make_client
from dagster_uc.lease import LockStatus, micro_time
from dagster_uc.lock import DeployLock, LockLost, OriginalLock
from stack.pytest_plugin import KubeEnv

NAME = "dagster-uc-semaphore"
LEASES = ("coordination.k8s.io/v1", "leases")
EXACT_SECOND = dt.datetime(2026, 11, 30, 5, 18, 43, tzinfo=dt.timezone.utc)
FAR_FUTURE = dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc)
FAR_PAST = dt.datetime(1999, 1, 1, tzinfo=dt.timezone.utc)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client(kube: KubeEnv) -> Any:
    return make_client(kube.context, kube.namespace, {"KUBECONFIG": str(kube.kubeconfig)})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def faults(kube: KubeEnv) -> Iterator[Any]:
    yield kube.emulator
    kube.emulator.clear_faults()


def lock(client: Any, kube: KubeEnv, clock: Clock, **kwargs: Any) -> DeployLock:
    kwargs.setdefault("identity", "bob@desk pid=2 id=b0b")
    return DeployLock(client, kube.namespace, NAME, lease_seconds=30, clock=clock, **kwargs)


def foreign_lease(kube: KubeEnv, renew: dt.datetime) -> None:
    kube.emulator.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": NAME, "namespace": kube.namespace},
            "spec": {
                "holderIdentity": "alice@laptop pid=1 id=a11ce",
                "leaseDurationSeconds": 30,
                "acquireTime": micro_time(renew),
                "renewTime": micro_time(renew),
            },
        }
    )


def renew_foreign(kube: KubeEnv, renew: dt.datetime) -> None:
    """Alice's process renews (with whatever her clock says)."""
    kube.emulator.patch(
        *LEASES,
        kube.namespace,
        NAME,
        {"spec": {"renewTime": micro_time(renew)}},
    )


def stored_spec(kube: KubeEnv) -> dict[str, Any]:
    lease = kube.emulator.get(*LEASES, kube.namespace, NAME)
    assert lease is not None
    return dict(lease["spec"])


def test_micro_time_has_six_fractional_digits_at_an_exact_second(
    client: Any, kube: KubeEnv, clock: Clock
) -> None:
    assert micro_time(EXACT_SECOND) == "2026-11-30T05:18:43.000000Z"
    mine = lock(client, kube, clock, wall=lambda: EXACT_SECOND)

    assert mine.try_acquire() is None
    spec = stored_spec(kube)
    assert spec["acquireTime"] == spec["renewTime"] == "2026-11-30T05:18:43.000000Z"

    # A renewal writes back the acquireTime it read (a datetime in lightkube's model) too.
    assert mine.renew_once()
    spec = stored_spec(kube)
    assert spec["acquireTime"] == spec["renewTime"] == "2026-11-30T05:18:43.000000Z"


@pytest.mark.parametrize("renew", [FAR_FUTURE, FAR_PAST], ids=["clock-ahead", "clock-behind"])
def test_a_dead_holder_expires_one_lease_after_we_first_saw_it_whatever_its_clock(
    client: Any, kube: KubeEnv, clock: Clock, renew: dt.datetime
) -> None:
    foreign_lease(kube, renew)
    mine = lock(client, kube, clock)

    held = mine.try_acquire()
    assert isinstance(held, LockStatus) and held.holder == "alice@laptop pid=1 id=a11ce"
    clock.now += 29.9
    assert mine.try_acquire() is not None, "taken over before a whole lease passed"
    clock.now += 0.1
    assert mine.try_acquire() is None, "a holder that stopped renewing was never taken over"
    spec = stored_spec(kube)
    assert spec["holderIdentity"] == "bob@desk pid=2 id=b0b"
    assert spec["leaseTransitions"] == 1


@pytest.mark.parametrize("renew", [FAR_FUTURE, FAR_PAST], ids=["clock-ahead", "clock-behind"])
def test_a_holder_that_keeps_renewing_is_never_taken_over_whatever_its_clock(
    client: Any, kube: KubeEnv, clock: Clock, renew: dt.datetime
) -> None:
    foreign_lease(kube, renew)
    mine = lock(client, kube, clock)

    for step in range(1, 6):
        assert mine.try_acquire() is not None
        clock.now += 20
        renew_foreign(kube, renew + dt.timedelta(seconds=step))
    assert mine.try_acquire() is not None
    clock.now += 29
    assert mine.try_acquire() is not None
    assert stored_spec(kube)["holderIdentity"] == "alice@laptop pid=1 id=a11ce"


def test_renewals_that_keep_failing_lose_the_lock_before_anyone_may_take_it(
    client: Any, kube: KubeEnv, clock: Clock, faults: Any
) -> None:
    mine = lock(client, kube, clock)
    assert mine.try_acquire() is None
    faults.inject_fault(
        "PUT", f"/namespaces/{kube.namespace}/leases/{NAME}$", status=503, times=None
    )

    clock.now += 10
    assert not mine.renew_once()
    mine.ensure_held()  # within the renewal deadline: still ours
    clock.now += mine.renew_deadline - 10 + 0.1
    assert not mine.renew_once()
    with pytest.raises(LockLost, match=r"Lost the deploy lock dagster-uc-semaphore \(no renewal"):
        mine.ensure_held()
    # Lost before a contender, who first saw our last renewal no earlier than we sent it, may
    # judge the Lease expired.
    assert mine.renew_deadline < mine.lease_seconds


def test_a_lock_taken_over_is_lost_at_the_next_renewal(
    client: Any, kube: KubeEnv, clock: Clock
) -> None:
    mine = lock(client, kube, clock)
    assert mine.try_acquire() is None
    other = lock(client, kube, clock, identity="carol@ci pid=3 id=ca401")
    assert other.try_acquire(force=True) is None

    assert not mine.renew_once()
    with pytest.raises(LockLost, match="carol@ci pid=3 id=ca401 holds it now"):
        mine.ensure_held()


def original_flag(kube: KubeEnv) -> dict[str, str] | None:
    configmap = kube.emulator.get("v1", "configmaps", kube.namespace, NAME)
    return None if configmap is None else dict(configmap.get("data") or {})


def set_original_flag(kube: KubeEnv, data: dict[str, str]) -> None:
    kube.emulator.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": NAME, "namespace": kube.namespace},
            "data": data,
        }
    )


def test_the_original_tools_lock_is_set_while_ours_is_held_and_cleared_after(
    client: Any, kube: KubeEnv
) -> None:
    mine = DeployLock(client, kube.namespace, NAME, identity="bob@desk pid=2 id=b0b")

    with mine.held():
        assert original_flag(kube) == {"locked": "true", "holder": "bob@desk pid=2 id=b0b"}

    assert original_flag(kube) == {"locked": "false"}
    assert stored_spec(kube).get("holderIdentity") is None


def test_we_wait_while_the_original_tool_holds_its_lock(client: Any, kube: KubeEnv) -> None:
    set_original_flag(kube, {"locked": "true"})
    mine = DeployLock(client, kube.namespace, NAME, identity="bob@desk pid=2 id=b0b")
    seen: list[object] = []

    with pytest.raises(OperationError, match="original dagster-uc"):
        mine.acquire(timeout_s=0.5, on_wait=seen.append)

    assert seen == [OriginalLock(NAME)]
    assert original_flag(kube) == {"locked": "true"}, "the original's lock was touched"
    assert stored_spec(kube).get("holderIdentity") is None, "our Lease was kept after giving up"

    # The original's release, as it does it (a merge patch of `locked`).
    kube.emulator.patch("v1", "configmaps", kube.namespace, NAME, {"data": {"locked": "false"}})
    with mine.held():
        assert original_flag(kube) == {"locked": "true", "holder": "bob@desk pid=2 id=b0b"}


def test_a_flag_left_by_a_killed_process_of_ours_is_taken_at_once(
    client: Any, kube: KubeEnv
) -> None:
    set_original_flag(kube, {"locked": "true", "holder": "bob@desk pid=1 id=dead"})
    mine = DeployLock(client, kube.namespace, NAME, identity="bob@desk pid=2 id=b0b")

    mine.acquire(timeout_s=5)
    try:
        assert original_flag(kube) == {"locked": "true", "holder": "bob@desk pid=2 id=b0b"}
    finally:
        mine.release()


def test_reset_lock_takes_the_original_tools_lock_too(client: Any, kube: KubeEnv) -> None:
    set_original_flag(kube, {"locked": "true"})
    mine = DeployLock(client, kube.namespace, NAME, identity="bob@desk pid=2 id=b0b")

    with mine.held(force=True, timeout_s=5):
        assert original_flag(kube) == {"locked": "true", "holder": "bob@desk pid=2 id=b0b"}
