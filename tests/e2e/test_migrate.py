"""`dagster-uc migrate`: every location moved between the shared release and releases of
their own while it keeps serving (a ready pod behind its Service at every moment), resumable,
`--dry-run` first; a namespace set up by the original dagster-uc 0.5.6 migrated while a
teammate's deploy runs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dagster_uc.release_mode import location_release_name
from tests.e2e.conftest import VALUES_CM, WORKSPACE_CM, Stack, wait_until
from tests.e2e.test_original_lock import (  # noqa: F401 (fixtures)
    ORIGINAL_NAME,
    Original,
    finish,
    original,
    original_binary,
)

NAME = "demo-project--feat-hello"
OTHER = "demo-project--feat-other"
SHARED = "dagster-user-code"
KEEP = "helm.sh/resource-policy"
LEASE = "dagster-uc-semaphore"


def releases(stack: Stack) -> list[str]:
    secrets = stack.emulator.list("v1", "secrets", stack.namespace, label_selector="owner=helm")
    return sorted({s["metadata"]["labels"]["name"] for s in secrets})


def service(stack: Stack, name: str) -> dict[str, Any]:
    obj = stack.emulator.get("v1", "services", stack.namespace, name)
    assert obj is not None, f"Service {name} is gone"
    return obj


def serving(stack: Stack, name: str) -> bool:
    """A ready pod is selected by the location's Service (what Dagster's gRPC calls reach)."""
    obj = stack.emulator.get("v1", "services", stack.namespace, name)
    if obj is None:
        return False
    selector = ",".join(f"{k}={v}" for k, v in obj["spec"]["selector"].items())
    for pod in stack.emulator.list("v1", "pods", stack.namespace, label_selector=selector):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return True
    return False


@contextmanager
def watching(stack: Stack, names: list[str]) -> Iterator[list[str]]:
    """Sample, until the block ends, whether every location is served; yields the outages."""
    outages: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for name in names:
                if not serving(stack, name):
                    outages.append(f"{name} at {time.monotonic():.2f}")
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield outages
    finally:
        stop.set()
        thread.join(timeout=10)


def documents(stack: Stack) -> tuple[str, str]:
    values = stack.configmap(VALUES_CM)
    workspace = stack.configmap(WORKSPACE_CM)
    assert values is not None and workspace is not None
    return values["data"]["yaml"], workspace["data"]["workspace.yaml"]


def assert_per_location(stack: Stack, names: list[str], uids: dict[str, str]) -> None:
    assert releases(stack) == sorted(location_release_name(SHARED, n) for n in names)
    for name in names:
        svc = service(stack, name)
        assert svc["metadata"]["uid"] == uids[name], "the Service was kept, not recreated"
        annotations = svc["metadata"]["annotations"]
        assert annotations["meta.helm.sh/release-name"] == location_release_name(SHARED, name)
        assert KEEP not in annotations
        deployments = stack.emulator.list(
            "apps/v1", "deployments", stack.namespace, label_selector=f"deployment={name}"
        )
        assert [d["metadata"]["labels"]["app.kubernetes.io/instance"] for d in deployments] == [
            location_release_name(SHARED, name)
        ]
        assert serving(stack, name)


def deploy_two_shared(stack: Stack) -> None:
    stack.write_config(helm_release_mode="shared")
    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.checkout("feat/other")
    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.checkout("feat/hello")


@pytest.mark.parametrize("helm_major", [3, 4], indirect=True, ids=["helm3", "helm4"])
def test_migrate_to_per_location_and_back_keeps_every_location_serving(stack: Stack) -> None:
    deploy_two_shared(stack)
    names = [NAME, OTHER]
    uids = {n: service(stack, n)["metadata"]["uid"] for n in names}
    docs = documents(stack)

    dry = stack.ok("migrate", "--to", "per-location", "--dry-run")
    assert f"{NAME}: {SHARED} -> {location_release_name(SHARED, NAME)}" in dry.stdout
    assert "Dry run: nothing was changed." in dry.stdout
    assert releases(stack) == [SHARED]

    with watching(stack, names) as outages:
        stack.ok("migrate", "--to", "per-location", "--timeout", "60")
    assert outages == []
    assert_per_location(stack, names, uids)
    assert documents(stack) == docs, "values and workspace unchanged"

    again = stack.ok("migrate", "--to", "per-location")
    assert "Moved 0 location(s)" in again.output

    # auto mode now deploys per location
    stack.write_config(helm_release_mode="auto")
    stack.git("commit", "-q", "--allow-empty", "-m", "after migration")
    stack.ok("deployment", "deploy", "--timeout", "60")
    assert stack.entry(NAME)["image"]["tag"] == "1.8.4-1"  # type: ignore[index]
    assert releases(stack) == sorted(location_release_name(SHARED, n) for n in names)

    with watching(stack, names) as outages:
        stack.ok("migrate", "--to", "shared", "--timeout", "60")
    assert outages == []
    assert releases(stack) == [SHARED]
    for name in names:
        svc = service(stack, name)
        assert svc["metadata"]["uid"] == uids[name]
        assert svc["metadata"]["annotations"]["meta.helm.sh/release-name"] == SHARED
        assert KEEP not in svc["metadata"]["annotations"]
    released = json.loads(stack.helm("get", "values", SHARED, "-o", "json"))
    assert sorted(e["name"] for e in released["deployments"]) == sorted(names)
    rows = json.loads(stack.ok("deployment", "list", "-o", "json").stdout)
    assert {(r["name"], r["ready"]) for r in rows} == {(NAME, 1), (OTHER, 1)}


def test_an_interrupted_migration_resumes(stack: Stack) -> None:
    deploy_two_shared(stack)
    uids = {n: service(stack, n)["metadata"]["uid"] for n in (NAME, OTHER)}
    # The second location's new pods never become ready: the first location moves, the
    # second keeps serving from the shared release, which stays.
    stack.emulator.hold_unready(
        stack.namespace,
        f"deployment={OTHER},app.kubernetes.io/instance={location_release_name(SHARED, OTHER)}",
    )
    try:
        failed = stack.run("migrate", "--to", "per-location", "--timeout", "3")
    finally:
        stack.emulator.release_unready(
            stack.namespace,
            f"deployment={OTHER},app.kubernetes.io/instance={location_release_name(SHARED, OTHER)}",
        )
    assert failed.returncode == 1, failed.output
    assert "did not become ready" in failed.stderr
    assert SHARED in releases(stack)
    assert serving(stack, NAME) and serving(stack, OTHER)

    stack.ok("migrate", "--to", "per-location", "--timeout", "60")
    assert_per_location(stack, [NAME, OTHER], uids)


@pytest.mark.parametrize("helm_major", [3], indirect=True, ids=["helm3"])
def test_a_namespace_of_the_original_tool_migrates_while_a_teammate_deploys(
    stack: Stack,
    original: Original,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    log = tmp_path / "original.log"
    first = original.start(log)
    finish(first, log)
    stack.write_config(helm_release_mode="auto")
    result = stack.ok("deployment", "deploy", "--timeout", "60")
    assert "migrate --to per-location" in result.output, "auto: shared, with the hint"
    uids = {n: service(stack, n)["metadata"]["uid"] for n in (NAME, ORIGINAL_NAME)}

    # A teammate's deploy (the original tool) runs while the migration starts: the migration
    # waits for its lock, then moves its location too.
    (original.checkout / "touch.txt").write_text("second\n")
    log2 = tmp_path / "original-2.log"
    teammate = original.start(log2)
    wait_until(
        lambda: (stack.configmap(LEASE) or {}).get("data") == {"locked": "true"},
        "the teammate's original dagster-uc to take its lock",
        timeout=300,
    )
    with watching(stack, [NAME, ORIGINAL_NAME]) as outages:
        migration = stack.run("migrate", "--to", "per-location", "--timeout", "120")
        finish(teammate, log2)
    assert migration.returncode == 0, migration.output
    assert "set by the original dagster-uc" in migration.output, "it waited for the teammate"
    assert outages == []
    names = sorted([NAME, ORIGINAL_NAME])
    assert sorted(e["name"] for e in stack.values()["deployments"]) == names
    assert sorted(stack.locations()) == ["demo-project:feat-hello", "demo-project:feat-original"]
    assert_per_location(stack, names, uids)
    # ours keeps working on the migrated namespace, in auto mode (now per location)
    stack.git("commit", "-q", "--allow-empty", "-m", "after")
    stack.ok("deployment", "deploy", "--timeout", "60")
    assert SHARED not in releases(stack)
