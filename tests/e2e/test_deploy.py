"""`deployment deploy` end to end: real podman, registry, Helm and kubectl, emulated API server."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.conftest import GUI, Stack

NAME = "demo-project--feat-hello"
WEBSERVER = "dagster-dagster-webserver"
DAEMON = "dagster-daemon"


def image_env(image: str) -> list[str]:
    done = subprocess.run(
        ["podman", "image", "inspect", image, "--format", "{{json .Config.Env}}"],
        capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("helm_major", [3, 4], indirect=True, ids=["helm3", "helm4"])
def test_first_deploy_registers_builds_rolls_out_and_reloads_dagster(stack: Stack) -> None:
    result = stack.ok("deployment", "deploy", "--timeout", "60")

    assert stack.tags(NAME) == ["1.8.4-0"]
    entry = stack.entry(NAME)
    assert entry is not None
    assert entry["image"]["repository"] == f"{stack.registry.host}/{stack.prefix}/{NAME}"
    assert entry["image"]["tag"] == "1.8.4-0"
    assert entry["dagsterApiGrpcArgs"] == ["-f", "/app/demo_project/definitions.py"]
    assert entry["annotations"]["dagster-uc.io/branch"] == "feat/hello"
    assert stack.locations() == ["demo-project:feat-hello"]
    deployment = stack.deployment(NAME)
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.8.4-0")
    assert deployment["status"].get("readyReplicas") == 1
    assert stack.restarted_at(WEBSERVER) and stack.restarted_at(DAEMON)
    assert f"{GUI}/locations/demo-project:feat-hello/assets" in result.stdout
    assert "BRANCH_NAME=feat-hello" in image_env(f"{entry['image']['repository']}:1.8.4-0")
    assert "dagster-user-code" in stack.helm("list", "-q")


def test_redeploy_gets_a_new_tag_and_does_not_reload_dagster(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    webserver_stamp = stack.restarted_at(WEBSERVER)
    stack.git("commit", "-q", "--allow-empty", "-m", "second")
    stack.ok("deployment", "deploy")

    assert stack.tags(NAME) == ["1.8.4-0", "1.8.4-1"]
    assert stack.entry(NAME)["image"]["tag"] == "1.8.4-1"  # type: ignore[index]
    assert stack.restarted_at(WEBSERVER) == webserver_stamp
    assert stack.deployment(NAME)["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.8.4-1")  # type: ignore[index]
    history = stack.history()["deployments"][NAME]
    assert history["tags"] == ["1.8.4-0", "1.8.4-1"]
    assert [r["commit"] for r in history["records"]] == [
        stack.git("rev-parse", "HEAD~1"),
        stack.git("rev-parse", "HEAD"),
    ]


def test_dry_run_prints_the_plan_and_changes_nothing(stack: Stack) -> None:
    result = stack.ok("deployment", "deploy", "--dry-run")

    assert f"{stack.prefix}/{NAME}:1.8.4-0" in result.stdout
    assert "+  location_name: demo-project:feat-hello" in result.stdout.replace("+    ", "+  ")
    assert stack.configmap("dagster-user-deployments-values-yaml") is None
    assert stack.tags(NAME) == []
    assert stack.emulator.get("coordination.k8s.io/v1", "leases", stack.namespace, "dagster-uc-semaphore") is None
