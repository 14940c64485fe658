"""Failed rollouts of every command that changes the set of code locations: a first deploy
(the release is uninstalled), `delete`, `revive`, `prune` and `rollback` (the release is rolled
back). Each ends with the values ConfigMap, the workspace, the Helm release and the lock as
they were before the command, and a next command that works.

Failures are real: pods held unready by the emulator (the wait fails), or one injected API
error on a resource Helm applies (the Helm upgrade fails after it recorded a new revision)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import VALUES_CM, Stack
from tests.e2e.test_reliability import (
    BOTH_HELMS,
    RELEASE,
    assert_consistent,
    entry_tag,
    hold_new_pods,
    image_tag_of,
    lease_holder,
    one_error_line,
    workspace_text,
)

NAME = "demo-project--feat-hello"
OTHER = "demo-project--feat-other"
CHART_DEPLOYMENT = "dagster-user-code-dagster-user-deployments-"


def helm_history(stack: Stack) -> list[dict[str, Any]]:
    try:
        return list(json.loads(stack.helm("history", RELEASE, "-o", "json")))
    except subprocess.CalledProcessError as exc:
        assert "not found" in exc.stderr, exc.stderr
        return []


def snapshot(stack: Stack) -> tuple[Any, ...]:
    """What a failed command must leave as it found it: entries, workspace, released values."""
    released = json.loads(stack.helm("get", "values", RELEASE, "-o", "json"))
    return stack.values()["deployments"], workspace_text(stack), released


def fail_next_helm_apply(stack: Stack, name: str) -> None:
    """The next request on location `name`'s Deployment fails: Helm 4 applies it with a
    server-side apply PATCH, Helm 3 reads it first; either way the upgrade fails after Helm
    recorded the new revision (so the release must be rolled back)."""
    stack.emulator.inject_fault(
        "*", f"/namespaces/{stack.namespace}/deployments/{CHART_DEPLOYMENT}{name}$", status=500
    )


def assert_rolled_back(stack: Stack, before: tuple[Any, ...], revisions_before: int) -> None:
    """The state, workspace and released values are as `before`, in a new deployed revision."""
    assert snapshot(stack) == before
    history = helm_history(stack)
    assert len(history) > revisions_before, history
    assert history[-1]["status"] == "deployed", history
    assert_consistent(stack)


def assert_helm_rolled_back(stack: Stack, revisions_before: int) -> None:
    """After a failed wait: the upgrade's revision, then `helm rollback` to the one before."""
    history = helm_history(stack)
    assert len(history) == revisions_before + 2, history
    assert history[-1]["description"] == f"Rollback to {revisions_before}", history


@pytest.fixture
def two_locations(stack: Stack) -> Stack:
    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.checkout("feat/other")
    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.checkout("feat/hello")
    return stack


# --- a first deploy ---------------------------------------------------------------------------


def test_a_failing_first_deploy_uninstalls_the_release_and_leaves_no_location(
    stack: Stack,
) -> None:
    workspace_before = workspace_text(stack)
    stack.emulator.hold_unready(stack.namespace, f"deployment={NAME}")
    try:
        result = stack.run("deployment", "deploy", "--timeout", "3")
    finally:
        stack.emulator.release_unready(stack.namespace, f"deployment={NAME}")

    assert result.returncode == 1, result.output
    assert "did not become ready" in one_error_line(result.stderr)
    assert "Rolling back to the previous state" in result.stderr
    assert stack.values()["deployments"] == []
    assert workspace_text(stack) == workspace_before
    assert helm_history(stack) == [], "the release of a failed first install is uninstalled"
    assert stack.deployment(NAME) is None
    assert stack.emulator.list("v1", "services", stack.namespace, f"deployment={NAME}") == []
    assert lease_holder(stack) is None
    assert stack.history()["deployments"][NAME]["tags"] == ["1.8.4-0"]
    assert stack.history()["deployments"][NAME]["records"] == []

    stack.ok("deployment", "deploy", "--timeout", "60")
    assert entry_tag(stack, NAME) == "1.8.4-1", "the failed tag is never handed out again"
    assert_consistent(stack)


# --- delete and prune -------------------------------------------------------------------------


@BOTH_HELMS
def test_a_failed_delete_restores_the_location(two_locations: Stack) -> None:
    stack = two_locations
    before, revisions = snapshot(stack), len(helm_history(stack))
    fail_next_helm_apply(stack, NAME)

    result = stack.run("deployment", "delete", "-n", OTHER)

    assert result.returncode == 1, result.output
    assert f"helm upgrade of release {RELEASE} failed" in one_error_line(result.stderr)
    assert "Rolling back to the previous state" in result.stderr
    assert_rolled_back(stack, before, revisions)
    assert stack.deployment(OTHER) is not None
    assert stack.locations() == ["demo-project:feat-hello", "demo-project:feat-other"]
    assert "delete" not in [r["action"] for r in stack.history()["deployments"][OTHER]["records"]]

    stack.ok("deployment", "delete", "-n", OTHER)
    assert stack.locations() == ["demo-project:feat-hello"]
    assert_consistent(stack)


def test_a_failed_prune_restores_the_locations(two_locations: Stack, tmp_path: Path) -> None:
    stack = two_locations
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    stack.git("remote", "add", "origin", str(bare))
    stack.git("push", "-q", "origin", "feat/hello")  # feat/other was never pushed: prunable
    before, revisions = snapshot(stack), len(helm_history(stack))
    fail_next_helm_apply(stack, NAME)

    result = stack.run("deployment", "prune")

    assert result.returncode == 1, result.output
    assert f"helm upgrade of release {RELEASE} failed" in one_error_line(result.stderr)
    assert_rolled_back(stack, before, revisions)
    assert stack.deployment(OTHER) is not None

    pruned = stack.ok("deployment", "prune")
    assert f"removed {OTHER}" in pruned.stdout
    assert stack.locations() == ["demo-project:feat-hello"]
    assert_consistent(stack)


# --- revive and rollback ----------------------------------------------------------------------


def test_a_failed_revive_removes_the_location_again(stack: Stack) -> None:
    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.checkout("feat/other")
    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.ok("deployment", "delete")
    stack.checkout("feat/hello")
    before, revisions = snapshot(stack), len(helm_history(stack))
    records_before = stack.history()["deployments"][OTHER]["records"]
    stack.emulator.hold_unready(stack.namespace, f"deployment={OTHER}")
    try:
        result = stack.run("deployment", "revive", "-n", OTHER, "-t", "1.8.4-0", "--timeout", "3")
    finally:
        stack.emulator.release_unready(stack.namespace, f"deployment={OTHER}")

    assert result.returncode == 1, result.output
    assert "did not become ready" in one_error_line(result.stderr)
    assert_rolled_back(stack, before, revisions)
    assert_helm_rolled_back(stack, revisions)
    assert stack.entry(OTHER) is None
    assert stack.deployment(OTHER) is None
    assert stack.locations() == ["demo-project:feat-hello"]
    assert stack.history()["deployments"][OTHER]["records"] == records_before

    stack.ok("deployment", "revive", "-n", OTHER, "-t", "1.8.4-0", "--timeout", "60")
    assert entry_tag(stack, OTHER) == "1.8.4-0"
    assert_consistent(stack)


def test_a_failed_rollback_keeps_the_current_tag_serving(stack: Stack) -> None:
    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.git("commit", "-q", "--allow-empty", "-m", "second")
    stack.ok("deployment", "deploy", "--timeout", "60")
    before, revisions = snapshot(stack), len(helm_history(stack))
    records_before = stack.history()["deployments"][NAME]["records"]
    selector = hold_new_pods(stack, NAME)
    try:
        result = stack.run("deployment", "rollback", "-n", NAME, "--timeout", "3")
    finally:
        stack.emulator.release_unready(stack.namespace, selector)

    assert result.returncode == 1, result.output
    assert "did not become ready" in one_error_line(result.stderr)
    assert_rolled_back(stack, before, revisions)
    assert_helm_rolled_back(stack, revisions)
    assert entry_tag(stack, NAME) == "1.8.4-1"
    assert image_tag_of(stack, NAME) == "1.8.4-1"
    assert stack.history()["deployments"][NAME]["records"] == records_before
    assert stack.configmap(VALUES_CM) is not None

    stack.ok("deployment", "rollback", "-n", NAME, "--timeout", "60")
    assert entry_tag(stack, NAME) == "1.8.4-0"
    assert_consistent(stack)
