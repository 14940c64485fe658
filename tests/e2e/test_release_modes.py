"""`helm_release_mode` end to end: per-location releases (own release, own Lease, lock-free
wait), `auto` on fresh and on shared namespaces, the lifecycle commands in per-location mode."""

from __future__ import annotations

import json
import subprocess
import threading
from typing import Any

import pytest

from dagster_uc.release_mode import location_lease_name, location_release_name
from tests.e2e.conftest import Result, Stack, wait_until

NAME = "demo-project--feat-hello"
OTHER = "demo-project--feat-other"
SHARED = "dagster-user-code"
SEMAPHORE = "dagster-uc-semaphore"


def release(name: str) -> str:
    return location_release_name(SHARED, name)


def releases(stack: Stack) -> list[str]:
    """Every release Helm stores in the namespace (its storage Secrets, any status)."""
    secrets = stack.emulator.list("v1", "secrets", stack.namespace, label_selector="owner=helm")
    return sorted({s["metadata"]["labels"]["name"] for s in secrets})


def history(stack: Stack, name: str) -> list[dict[str, Any]]:
    try:
        return list(json.loads(stack.helm("history", name, "-o", "json")))
    except subprocess.CalledProcessError:
        return []


def image_tag(stack: Stack, name: str) -> str | None:
    deployment = stack.deployment(name)
    if deployment is None:
        return None
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"]).rsplit(":", 1)[1]


def lease_holder(stack: Stack, lease: str) -> str | None:
    obj = stack.emulator.get("coordination.k8s.io/v1", "leases", stack.namespace, lease)
    return None if obj is None else (obj.get("spec") or {}).get("holderIdentity")


def per_location(stack: Stack) -> Stack:
    stack.write_config(helm_release_mode="per-location")
    return stack


def deploy_in_thread(
    stack: Stack, branch_dir: Any, *args: str
) -> tuple[threading.Thread, list[Result]]:
    results: list[Result] = []

    def run() -> None:
        results.append(stack.run("deployment", "deploy", *args, cwd=branch_dir))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, results


def worktree(stack: Stack, branch: str) -> Any:
    """A second checkout of the project on `branch` (a teammate's working copy)."""
    path = stack.project.parent / f"wt-{branch.replace('/', '-')}"
    stack.git("worktree", "add", "-q", "-B", branch, str(path))
    (path / ".config_user_code_deployments.yaml").write_text(
        (stack.project / ".config_user_code_deployments.yaml").read_text()
    )
    return path


@pytest.mark.parametrize("helm_major", [3, 4], indirect=True, ids=["helm3", "helm4"])
def test_a_location_gets_its_own_release_and_lease_and_keeps_its_service_name(
    stack: Stack,
) -> None:
    per_location(stack)
    result = stack.ok("deployment", "deploy", "--timeout", "60")

    assert release(NAME) in releases(stack)
    assert SHARED not in releases(stack)
    assert "Taking the deploy lock" not in result.stderr
    assert f"Taking the lock of {NAME}" in result.stderr
    assert (
        stack.emulator.get("coordination.k8s.io/v1", "leases", stack.namespace, SEMAPHORE) is None
    )
    assert lease_holder(stack, location_lease_name(SEMAPHORE, NAME)) is None
    assert stack.configmap(SEMAPHORE) is None, "no lock ConfigMap of the original tool set"
    assert stack.configmap(location_lease_name(SEMAPHORE, NAME)) is None
    deployment = stack.deployment(NAME)
    assert deployment is not None
    assert deployment["metadata"]["labels"]["app.kubernetes.io/instance"] == release(NAME)
    assert deployment["status"].get("readyReplicas") == 1
    service = stack.emulator.get("v1", "services", stack.namespace, NAME)
    assert service is not None
    assert service["metadata"]["annotations"]["meta.helm.sh/release-name"] == release(NAME)
    assert stack.entry(NAME)["image"]["tag"] == "1.8.4-0"  # type: ignore[index]
    assert stack.locations() == ["demo-project:feat-hello"]

    stack.git("commit", "-q", "--allow-empty", "-m", "second")
    stack.ok("deployment", "deploy", "--timeout", "60")
    assert image_tag(stack, NAME) == "1.8.4-1"
    assert [r["revision"] for r in history(stack, release(NAME))] == [1, 2]


def test_auto_is_per_location_in_a_fresh_namespace_and_shared_where_the_shared_release_is(
    stack: Stack,
) -> None:
    stack.write_config(helm_release_mode="shared")
    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.write_config(helm_release_mode="auto")
    stack.checkout("feat/other")
    result = stack.ok("deployment", "deploy", "--timeout", "60")

    assert "dagster-uc migrate --to per-location" in result.output
    assert releases(stack) == [SHARED]
    assert sorted(e["name"] for e in stack.values()["deployments"]) == [NAME, OTHER]


def test_auto_in_a_fresh_namespace_is_per_location(stack: Stack) -> None:
    stack.write_config(helm_release_mode="auto")
    dry = stack.ok("deployment", "deploy", "--dry-run")
    assert f"Release:      {release(NAME)} in {stack.namespace}" in dry.stdout
    result = stack.ok("deployment", "deploy", "--timeout", "60")

    assert "migrate" not in result.output
    assert releases(stack) == [release(NAME)]


def test_parallel_deploys_of_different_branches_do_not_wait_for_each_others_rollout(
    stack: Stack,
) -> None:
    per_location(stack)
    other_dir = worktree(stack, "feat/other")
    stack.emulator.hold_unready(stack.namespace, f"deployment={NAME}")
    try:
        held, held_result = deploy_in_thread(stack, stack.project, "--timeout", "120")
        wait_until(lambda: image_tag(stack, NAME) == "1.8.4-0", "the held deploy to roll out")
        # While NAME's rollout waits (no lock held), OTHER deploys from start to end.
        other = stack.run("deployment", "deploy", "--timeout", "60", cwd=other_dir)
        assert other.returncode == 0, other.output
        assert "waiting:" not in other.output
        assert held.is_alive(), "the first deploy is still waiting for its pods"
    finally:
        stack.emulator.release_unready(stack.namespace, f"deployment={NAME}")
    held.join(timeout=120)
    assert held_result and held_result[0].returncode == 0, held_result[0].output
    assert sorted(stack.locations()) == ["demo-project:feat-hello", "demo-project:feat-other"]
    assert releases(stack) == sorted([release(NAME), release(OTHER)])


def test_two_deploys_of_the_same_name_are_serialised_and_the_newer_tag_wins(stack: Stack) -> None:
    per_location(stack)
    stack.ok("deployment", "deploy", "--timeout", "60")
    second_dir = worktree(stack, "feat/hello-2")
    # Both checkouts deploy the same location name (an explicit name).
    stack.emulator.hold_unready(stack.namespace, f"deployment={NAME}")
    try:
        first, first_result = deploy_in_thread(stack, stack.project, "--timeout", "120")
        wait_until(lambda: image_tag(stack, NAME) == "1.8.4-1", "the first redeploy to roll out")
        second, second_result = deploy_in_thread(
            stack, second_dir, "--deployment-name", NAME, "--timeout", "120"
        )
        wait_until(lambda: image_tag(stack, NAME) == "1.8.4-2", "the newer deploy to roll out")
    finally:
        stack.emulator.release_unready(stack.namespace, f"deployment={NAME}")
    first.join(timeout=120)
    second.join(timeout=120)
    assert second_result[0].returncode == 0, second_result[0].output
    assert first_result[0].returncode == 0, first_result[0].output
    assert "newer deploy" in first_result[0].output
    assert stack.entry(NAME)["image"]["tag"] == "1.8.4-2"  # type: ignore[index]
    assert image_tag(stack, NAME) == "1.8.4-2"


def test_a_failed_rollout_of_one_location_changes_no_other_release(stack: Stack) -> None:
    per_location(stack)
    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.checkout("feat/other")
    stack.ok("deployment", "deploy", "--timeout", "60")
    other_history = history(stack, release(OTHER))
    hello_history = history(stack, release(NAME))
    stack.git("commit", "-q", "--allow-empty", "-m", "broken")
    stack.emulator.hold_unready(stack.namespace, f"deployment={OTHER}")
    try:
        result = stack.run("deployment", "deploy", "--timeout", "3")
    finally:
        stack.emulator.release_unready(stack.namespace, f"deployment={OTHER}")

    assert result.returncode == 1, result.output
    assert "did not become ready" in result.stderr
    assert history(stack, release(NAME)) == hello_history
    assert stack.entry(OTHER)["image"]["tag"] == "1.8.4-0"  # type: ignore[index]
    revisions = history(stack, release(OTHER))
    assert len(revisions) == len(other_history) + 2, "upgrade, then its rollback"
    assert image_tag(stack, OTHER) == "1.8.4-0"
    assert sorted(stack.locations()) == ["demo-project:feat-hello", "demo-project:feat-other"]


def test_a_failed_first_deploy_uninstalls_only_its_release(stack: Stack) -> None:
    per_location(stack)
    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.checkout("feat/other")
    stack.emulator.hold_unready(stack.namespace, f"deployment={OTHER}")
    try:
        result = stack.run("deployment", "deploy", "--timeout", "3")
    finally:
        stack.emulator.release_unready(stack.namespace, f"deployment={OTHER}")

    assert result.returncode == 1, result.output
    assert releases(stack) == [release(NAME)]
    assert stack.entry(OTHER) is None
    assert stack.locations() == ["demo-project:feat-hello"]
    assert stack.emulator.get("v1", "services", stack.namespace, OTHER) is None


# --- the lifecycle commands in per-location mode -----------------------------------------------


def deploy_branch(stack: Stack, branch: str) -> str:
    stack.checkout(branch)
    stack.ok("deployment", "deploy", "--timeout", "60")
    return "demo-project--" + branch.replace("/", "-")


def test_list_check_rollback_delete_and_revive_work_per_location(stack: Stack) -> None:
    per_location(stack)
    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.git("commit", "-q", "--allow-empty", "-m", "second")
    stack.ok("deployment", "deploy", "--timeout", "60")
    other = deploy_branch(stack, "feat/other")
    stack.checkout("feat/hello")

    rows = {r["name"]: r for r in json.loads(stack.ok("deployment", "list", "-o", "json").stdout)}
    assert set(rows) == {NAME, other}
    assert (rows[NAME]["ready"], rows[NAME]["pods"]) == (1, 1)
    assert (rows[other]["ready"], rows[other]["pods"]) == (1, 1)

    check = stack.ok("deployment", "check", "-n", NAME, "-t", "20")
    assert "Started Dagster code server" in check.stdout

    other_history = history(stack, release(other))
    stack.ok("deployment", "rollback", "-n", NAME, "--timeout", "60")
    assert stack.entry(NAME)["image"]["tag"] == "1.8.4-0"  # type: ignore[index]
    assert image_tag(stack, NAME) == "1.8.4-0"
    assert history(stack, release(other)) == other_history, "the neighbour's release untouched"

    stack.ok("deployment", "delete", "-n", other)
    assert releases(stack) == [release(NAME)]
    assert stack.emulator.get("v1", "services", stack.namespace, other) is None
    assert stack.locations() == ["demo-project:feat-hello"]

    stack.ok("deployment", "revive", "-n", other, "-t", "1.8.4-0", "--timeout", "60")
    assert releases(stack) == sorted([release(NAME), release(other)])
    assert image_tag(stack, other) == "1.8.4-0"
    assert sorted(stack.locations()) == ["demo-project:feat-hello", "demo-project:feat-other"]


def test_delete_all_removes_every_release_under_the_global_lock(stack: Stack) -> None:
    per_location(stack)
    stack.ok("deployment", "deploy", "--timeout", "60")
    deploy_branch(stack, "feat/other")
    deploy_branch(stack, "feat/third")

    result = stack.ok("deployment", "delete", "--all", "--yes")

    assert "Taking the deploy lock" in result.stderr
    assert releases(stack) == []
    assert stack.values()["deployments"] == []
    assert stack.locations() == []
    assert (
        stack.emulator.list("v1", "services", stack.namespace, "component=user-deployments") == []
    )


def test_lock_status_shows_the_global_and_the_held_location_locks(stack: Stack) -> None:
    import datetime as dt

    per_location(stack)
    lease = location_lease_name(SEMAPHORE, NAME)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    stack.emulator.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": lease, "namespace": stack.namespace},
            "spec": {
                "holderIdentity": "dev@laptop pid=1 id=abc",
                "leaseDurationSeconds": 300,
                "acquireTime": now,
                "renewTime": now,
            },
        }
    )

    data = json.loads(stack.ok("lock", "status", "-o", "json").stdout)

    assert data["name"] == SEMAPHORE and data["held"] is False
    assert [entry["name"] for entry in data["locations"]] == [lease]
    assert data["locations"][0]["holder"] == "dev@laptop pid=1 id=abc"
    text = stack.ok("lock", "status").stdout
    assert f"lock {SEMAPHORE} is free" in text
    assert f"lock {lease} is held by dev@laptop" in text
