"""The deploy lock over a long rollout: renewal keeps it, a lost lock stops the command before
it changes anything more (no rollback over someone else's deploy), and two deploys of one
name that finish out of order never put the older build back.

Real podman, registry, Helm and kubectl; the Kubernetes API server is the emulator, whose
fault injection makes the Lease renewals fail."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import VALUES_CM, WORKSPACE_CM, Stack, wait_helm_rolled_out
from tests.e2e.test_reliability import (
    LEASE,
    LEASES,
    NAME,
    RELEASE,
    Proc,
    assert_consistent,
    entry_tag,
    helm_json,
    hold_new_pods,
    lease_holder,
    micro_time,
    new_commit,
    one_error_line,
    wait_until,
)

pytestmark = pytest.mark.e2e

SLOW = "demo-project--feat-slow"


def lease_spec(stack: Stack) -> dict[str, Any]:
    lease = stack.emulator.get(*LEASES, stack.namespace, LEASE)
    return dict((lease or {}).get("spec") or {})


def resource_version(stack: Stack, name: str) -> str:
    configmap = stack.configmap(name)
    assert configmap is not None
    return str(configmap["metadata"]["resourceVersion"])


def cluster_marks(stack: Stack) -> tuple[str, str, int]:
    """What any change of the state, the workspace or the release moves."""
    return (
        resource_version(stack, VALUES_CM),
        resource_version(stack, WORKSPACE_CM),
        len(helm_json(stack, "history", RELEASE)),
    )


def worktree(stack: Stack, branch: str) -> Path:
    """A second checkout of the project (its config committed first, so both see it)."""
    stack.git("commit", "-qam", "config", "--allow-empty")
    path = stack.project.parent / f"checkout-{branch.replace('/', '-')}"
    stack.git("worktree", "add", "-q", "-b", branch, str(path))
    return path


def test_renewals_failing_during_the_wait_lose_the_lock_and_nothing_more_changes(
    stack: Stack,
) -> None:
    stack.write_config(deploy_lock_lease_seconds=6)
    stack.ok("deployment", "deploy", "--timeout", "60")
    selector = hold_new_pods(stack, NAME)
    new_commit(stack)
    deploying = Proc(stack, "deployment", "deploy", "--timeout", "300")
    try:
        wait_helm_rolled_out(stack, NAME, "1.8.4-1")
        holder = lease_holder(stack)
        marks = cluster_marks(stack)
        stack.emulator.inject_fault(
            "PUT", f"/namespaces/{stack.namespace}/leases/{LEASE}$", status=503, times=None
        )
        result = deploying.finish()
    finally:
        deploying.stop()
        stack.emulator.clear_faults()

    assert result.returncode == 1, result.output
    assert "Lost the deploy lock dagster-uc-semaphore" in one_error_line(result.stderr)
    assert "no renewal succeeded" in result.stderr
    assert "Rolling back" not in result.stderr
    assert cluster_marks(stack) == marks, "the command changed the cluster after losing the lock"
    assert entry_tag(stack, NAME) == "1.8.4-1", "its change stays as it was when the lock was lost"

    # The next deploy waits out the lost lease (nobody renews it) and repairs the location.
    stack.emulator.release_unready(stack.namespace, selector)
    new_commit(stack)
    repaired = stack.ok("deployment", "deploy", "--timeout", "60")
    assert f"held by {holder}" in repaired.stderr
    assert entry_tag(stack, NAME) == "1.8.4-2"
    assert_consistent(stack)


def test_a_deploy_that_took_the_lock_over_is_not_rolled_back_by_the_one_that_lost_it(
    stack: Stack,
) -> None:
    stack.write_config(deploy_lock_lease_seconds=6)
    other = worktree(stack, "feat/slow")
    stack.emulator.hold_unready(stack.namespace, f"deployment={SLOW}")
    slow = Proc(stack, "deployment", "deploy", "--timeout", "30", cwd=other)
    try:
        wait_helm_rolled_out(stack, SLOW, "1.8.4-0")
        taker = stack.ok("deployment", "deploy", "--reset-lock", "--timeout", "60")
        lost = slow.finish()
    finally:
        slow.stop()

    assert taker.returncode == 0
    assert lost.returncode == 1, lost.output
    assert "Lost the deploy lock" in one_error_line(lost.stderr)
    assert "holds it now" in lost.stderr
    assert "Rolling back" not in lost.stderr
    # The release is the one the taker rolled out, with both locations, and stays so.
    released = helm_json(stack, "get", "values", RELEASE)
    assert sorted(e["name"] for e in released["deployments"]) == sorted([SLOW, NAME])
    assert entry_tag(stack, NAME) == "1.8.4-0"
    assert entry_tag(stack, SLOW) == "1.8.4-0"
    assert (stack.deployment(NAME) or {})["status"].get("readyReplicas") == 1
    assert lease_holder(stack) is None


def test_renewal_keeps_the_lock_through_a_rollout_longer_than_the_lease(stack: Stack) -> None:
    stack.write_config(deploy_lock_lease_seconds=5)
    other = worktree(stack, "feat/other")
    stack.emulator.hold_unready(stack.namespace, f"deployment={NAME}")
    first = Proc(stack, "deployment", "deploy", "--timeout", "300")
    second: Proc | None = None
    try:
        wait_helm_rolled_out(stack, NAME, "1.8.4-0")
        holder = lease_holder(stack)
        second = Proc(stack, "deployment", "deploy", "--timeout", "60", cwd=other)
        second.wait_for_line(f"held by {holder}")
        # Three lease durations of renewals by the first deploy, the second one waiting.
        renewals: set[str] = set()

        def renewed_enough() -> bool:
            spec = lease_spec(stack)
            assert spec.get("holderIdentity") == holder, f"the lock changed hands: {spec}"
            renewals.add(str(spec.get("renewTime")))
            return len(renewals) >= 9

        wait_until(renewed_enough, "the first deploy to renew its lease nine times")
        stack.emulator.release_unready(stack.namespace, f"deployment={NAME}")
        done = first.finish()
        waited = second.finish()
    finally:
        first.stop()
        if second is not None:
            second.stop()

    assert done.returncode == 0, done.output
    assert waited.returncode == 0, waited.output
    assert "Lost the deploy lock" not in done.output
    assert entry_tag(stack, NAME) == "1.8.4-0"
    assert entry_tag(stack, "demo-project--feat-other") == "1.8.4-0"
    assert_consistent(stack)


def test_an_older_build_that_finishes_last_does_not_replace_the_newer_deploy(
    stack: Stack,
) -> None:
    """The first deploy reserves 1.8.4-0 and waits at the lock (held by a colleague); a second
    deploy of the same name reserves 1.8.4-1, takes the lock over and goes out; then the first
    gets the lock and must stop."""
    now = dt.datetime.now(dt.timezone.utc)
    stack.emulator.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE, "namespace": stack.namespace},
            "spec": {
                "holderIdentity": "alice@laptop pid=42 id=feedbeef",
                "leaseDurationSeconds": 3600,
                "acquireTime": micro_time(now),
                "renewTime": micro_time(now),
            },
        }
    )
    older = Proc(stack, "deployment", "deploy", "--timeout", "60")
    try:
        older.wait_for_line("held by alice@laptop pid=42 id=feedbeef")
        newer = stack.ok("deployment", "deploy", "--reset-lock", "--timeout", "60")
        marks = cluster_marks(stack)
        late = older.finish()
    finally:
        older.stop()

    assert "1.8.4-1" in newer.output
    assert late.returncode == 1, late.output
    error = one_error_line(late.stderr)
    assert "already runs the newer tag 1.8.4-1" in error
    assert "this deploy of 1.8.4-0 finished later" in error
    assert "rollback -n demo-project--feat-hello --to 1.8.4-0" in error
    assert cluster_marks(stack) == marks, "the older deploy changed the cluster"
    assert entry_tag(stack, NAME) == "1.8.4-1"
    assert_consistent(stack)
