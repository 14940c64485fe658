"""The commands around a deploy in per-location mode (prune, image prune, doctor), and a
namespace set up by the original dagster-uc 0.5.6 that keeps working with this tool in
`shared` and `auto` mode (the original deploys again after ours, and both list it all)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest

from dagster_uc.release_mode import location_lease_name
from stack.registry import push_many_tags
from tests.e2e.conftest import Stack
from tests.e2e.test_doctor import doctor_json
from tests.e2e.test_lifecycle import add_origin, deploy_branch
from tests.e2e.test_original_lock import (  # noqa: F401 (fixtures)
    HELM3,
    ORIGINAL_NAME,
    Original,
    finish,
    original,
    original_binary,
)
from tests.e2e.test_release_modes import NAME, SEMAPHORE, SHARED, history, release, releases

pytestmark = pytest.mark.e2e


def per_location(stack: Stack) -> None:
    stack.write_config(helm_release_mode="per-location")


def test_prune_uninstalls_the_releases_of_gone_branches_and_no_other(
    stack: Stack, tmp_path: Path
) -> None:
    per_location(stack)
    add_origin(stack, tmp_path)
    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.git("push", "-q", "origin", "feat/hello")
    gone = deploy_branch(stack, "feat/gone", "--timeout", "60")
    kept = deploy_branch(stack, "feat/kept", "--timeout", "60")
    stack.git("push", "-q", "origin", "feat/kept")
    stack.checkout("feat/hello")
    kept_history = history(stack, release(kept))
    assert releases(stack) == sorted(release(n) for n in (NAME, gone, kept))

    dry = json.loads(stack.ok("deployment", "prune", "--dry-run", "-o", "json").stdout)
    assert [r["name"] for r in dry["removed"]] == [gone]
    assert releases(stack) == sorted(release(n) for n in (NAME, gone, kept))

    result = stack.ok("deployment", "prune")
    assert gone in result.stdout
    assert "Taking the deploy lock" in result.stderr, "many locations: the global lock"
    assert releases(stack) == sorted(release(n) for n in (NAME, kept))
    assert stack.emulator.get("v1", "services", stack.namespace, gone) is None
    assert stack.deployment(gone) is None
    assert sorted(e["name"] for e in stack.values()["deployments"]) == sorted([NAME, kept])
    assert sorted(stack.locations()) == ["demo-project:feat-hello", "demo-project:feat-kept"]
    assert history(stack, release(kept)) == kept_history, "the neighbour's release untouched"
    assert "Nothing to prune" in stack.ok("deployment", "prune").stdout


def test_image_prune_keeps_the_tags_every_location_release_uses(stack: Stack) -> None:
    per_location(stack)
    stack.ok("deployment", "deploy", "--timeout", "60")  # 1.8.4-0
    stack.git("commit", "-q", "--allow-empty", "-m", "second")
    stack.ok("deployment", "deploy", "--timeout", "60")  # 1.8.4-1 deployed, -0 in history
    repository = f"{stack.prefix}/{NAME}"
    push_many_tags(
        stack.registry, repository, [f"1.8.4-{n}" for n in range(2, 8)], distinct_digests=True
    )
    # The location's release serves 1.8.4-1; the newest two by number are 1.8.4-7 and -6.

    text = stack.ok("image", "prune", "--keep", "2").stdout

    assert "kept" in text and "1.8.4-1" in text
    assert sorted(stack.tags(NAME)) == sorted(["1.8.4-0", "1.8.4-1", "1.8.4-6", "1.8.4-7"])
    deployment = stack.deployment(NAME)
    assert deployment is not None
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(":1.8.4-1") and deployment["status"].get("readyReplicas") == 1


def test_doctor_reports_the_mode_and_the_held_location_locks(stack: Stack) -> None:
    stack.write_config(helm_release_mode="auto")
    stack.ok("deployment", "deploy", "--timeout", "60")
    deploy_branch(stack, "feat/other", "--timeout", "60")

    result, found = doctor_json(stack)

    assert result.returncode == 0, result.output
    mode = found["release-mode"]
    assert mode["status"] == "ok"
    assert mode["details"]["mode"] == "per-location"
    assert mode["details"]["own_release_locations"] == 2
    assert "auto: no release dagster-user-code" in mode["message"]
    assert found["lock"]["status"] == "ok"

    # A teammate's deploy of one location holds that location's Lease: named, not a warning.
    lease = location_lease_name(SEMAPHORE, NAME)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert stack.emulator.get("coordination.k8s.io/v1", "leases", stack.namespace, lease)
    stack.emulator.patch(
        "coordination.k8s.io/v1",
        "leases",
        stack.namespace,
        lease,
        {
            "spec": {
                "holderIdentity": "dev@laptop pid=1 id=abc",
                "leaseDurationSeconds": 300,
                "acquireTime": now,
                "renewTime": now,
            }
        },
    )
    _, found = doctor_json(stack)
    assert found["lock"]["status"] == "ok"
    assert found["lock"]["message"].endswith(f"1 location lock(s) held ({lease})")
    assert [h["holder"] for h in found["lock"]["details"]["locations"]] == [
        "dev@laptop pid=1 id=abc"
    ]


def test_doctor_warns_about_a_half_done_migration(stack: Stack) -> None:
    """The shared release still holds a location while the config pins per-location."""
    stack.write_config(helm_release_mode="shared")
    stack.ok("deployment", "deploy", "--timeout", "60")
    per_location(stack)
    third = deploy_branch(stack, "feat/third", "--timeout", "60")
    assert releases(stack) == sorted([SHARED, release(third)])

    result, found = doctor_json(stack)

    assert result.returncode == 0, "a warning does not fail doctor"
    mode = found["release-mode"]
    assert mode["status"] == "warning"
    assert f"release {SHARED} still holds 1 location(s)" in mode["message"]
    assert "migrate --to per-location" in mode["fix"]


@HELM3
@pytest.mark.parametrize("mode", ["shared", "auto"])
def test_the_original_tools_namespace_keeps_working(
    stack: Stack,
    original: Original,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    mode: str,
) -> None:
    """The original sets the namespace up; ours deploys into its shared release; then the
    original deploys again and lists both, and our list shows both."""
    finish(original.start(tmp_path / "first.log"), tmp_path / "first.log")
    stack.write_config(helm_release_mode=mode)

    ours = stack.ok("deployment", "deploy", "--timeout", "60")

    assert ("migrate --to per-location" in ours.output) == (mode == "auto")
    assert releases(stack) == [SHARED]
    (original.checkout / "again.txt").write_text("again\n")
    log = tmp_path / "second.log"
    finish(original.start(log), log)
    assert releases(stack) == [SHARED]
    released = json.loads(stack.helm("get", "values", SHARED, "-o", "json"))
    assert sorted(e["name"] for e in released["deployments"]) == sorted([NAME, ORIGINAL_NAME])
    assert sorted(stack.locations()) == ["demo-project:feat-hello", "demo-project:feat-original"]
    listed = subprocess.run(
        [str(original.binary), "-c", str(original.config_file), "deployment", "list"],
        cwd=original.checkout,
        env=original.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert NAME in listed.stdout and ORIGINAL_NAME in listed.stdout
    rows = json.loads(stack.ok("deployment", "list", "-o", "json").stdout)
    assert sorted(r["name"] for r in rows) == sorted([NAME, ORIGINAL_NAME])
