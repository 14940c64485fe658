"""During a migration both tools deploy to one cluster: the original dagster-uc 0.5.6 from
PyPI (its lock is the ConfigMap `dagster-uc-semaphore` with `locked: "true"`) and ours (a
Lease of the same name). Run at the same time, each waits for the other and nothing is lost.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import VALUES_CM, Result, Stack, wait_helm_rolled_out
from tests.e2e.test_reliability import (
    LEASE,
    NAME,
    RELEASE,
    Proc,
    assert_consistent,
    helm_json,
    lease_holder,
    wait_until,
)

pytestmark = pytest.mark.e2e

ORIGINAL_NAME = "demo-project--feat-original"
# The original fetches its chart over OCI with the `helm` on PATH, which must be Helm 3 to
# reach the plain-HTTP local registry.
HELM3 = pytest.mark.parametrize("helm_major", [3], indirect=True, ids=["helm3"])


@dataclass
class Original:
    """The original tool, set up to deploy branch feat/original from its own checkout."""

    binary: Path
    config_file: Path
    checkout: Path
    env: dict[str, str]

    def start(self, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as sink:
            return subprocess.Popen(
                [str(self.binary), "-c", str(self.config_file), "deployment", "deploy"],
                cwd=self.checkout,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


@pytest.fixture(scope="session")
def original_binary() -> Path:
    from stack.original import ensure_original

    return ensure_original()


@pytest.fixture
def original(stack: Stack, original_binary: Path, tmp_path: Path) -> Original:
    from stack.original import (
        original_config,
        publish_chart,
        write_registries_conf,
    )

    chart_path = publish_chart(tmp_path / "chart", stack.registry.host, f"{stack.prefix}-charts")
    registries_conf = write_registries_conf(tmp_path / "registries.conf", stack.registry.host)
    config_file = tmp_path / "original-config.yaml"
    config = original_config(
        registry=stack.registry.host,
        image_prefix=stack.prefix,
        namespace=stack.namespace,
        kubernetes_context=stack.kube.context,
        chart_path=chart_path,
    )
    config_file.write_text(yaml.safe_dump(config))
    env = {**stack.env, "CONTAINERS_REGISTRIES_CONF": str(registries_conf)}
    # Its tag lookup fails on a repository that does not exist yet: give it a first tag.
    subprocess.run(
        [
            "podman",
            "push",
            "-q",
            "--tls-verify=false",
            "localhost/dagster-uc-base:latest",
            f"{stack.registry.host}/{stack.prefix}/{ORIGINAL_NAME}:seed",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    checkout = stack.project.parent / "original-checkout"
    stack.git("worktree", "add", "-q", "-b", "feat/original", str(checkout))
    return Original(original_binary, config_file, checkout, env)


def finish(popen: subprocess.Popen[bytes], log: Path) -> str:
    try:
        code = popen.wait(timeout=300)
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert code == 0, f"the original dagster-uc failed:\n{text}"
    return text


def original_flag(stack: Stack) -> dict[str, str]:
    configmap = stack.configmap(LEASE)
    assert configmap is not None
    return dict(configmap.get("data") or {})


def both_done(stack: Stack, ours: Result, original_output: str) -> None:
    """Both deploys succeeded, both locations are registered, both locks are free."""
    assert ours.returncode == 0, ours.output
    assert "Traceback" not in original_output
    names = sorted(e["name"] for e in stack.values()["deployments"])
    assert names == sorted([ORIGINAL_NAME, NAME])
    released = helm_json(stack, "get", "values", RELEASE)
    assert sorted(e["name"] for e in released["deployments"]) == sorted([ORIGINAL_NAME, NAME])
    assert sorted(stack.locations()) == ["demo-project:feat-hello", "demo-project:feat-original"]
    assert original_flag(stack) == {"locked": "false"}
    assert_consistent(stack)


@HELM3
def test_we_wait_while_the_original_dagster_uc_holds_its_lock(
    stack: Stack, original: Original, tmp_path: Path
) -> None:
    """The original is held just before it writes the values ConfigMap (its write is not a
    compare-and-swap: a deploy of ours in between would be overwritten)."""
    log = tmp_path / "original.log"
    gate = stack.emulator.hold_requests(
        "PATCH", f"/namespaces/{stack.namespace}/configmaps/{VALUES_CM}$"
    )
    theirs = original.start(log)
    ours: Proc | None = None
    try:
        gate.wait_caught(1, timeout=300)
        assert original_flag(stack) == {"locked": "true"}
        ours = Proc(stack, "deployment", "deploy", "--timeout", "120")
        ours.wait_for_line("set by the original dagster-uc")
        gate.release()
        original_output = finish(theirs, log)
        result = ours.finish()
    finally:
        gate.release()
        if ours is not None:
            ours.stop()
        if theirs.poll() is None:
            theirs.kill()

    both_done(stack, result, original_output)


@HELM3
def test_the_original_dagster_uc_waits_while_we_hold_the_lock(
    stack: Stack, original: Original, tmp_path: Path
) -> None:
    log = tmp_path / "original.log"
    stack.emulator.hold_unready(stack.namespace, f"deployment={NAME}")
    ours = Proc(stack, "deployment", "deploy", "--timeout", "300")
    theirs: subprocess.Popen[bytes] | None = None
    try:
        wait_helm_rolled_out(stack, NAME, "1.8.4-0")
        assert original_flag(stack) == {"locked": "true", "holder": str(lease_holder(stack))}
        theirs = original.start(log)
        wait_until(
            lambda: "Another deployment is in progress" in log.read_text(errors="replace"),
            "the original dagster-uc to wait for our lock",
            timeout=300,
        )
        stack.emulator.release_unready(stack.namespace, f"deployment={NAME}")
        result = ours.finish()
        original_output = finish(theirs, log)
    finally:
        ours.stop()
        if theirs is not None and theirs.poll() is None:
            theirs.kill()

    both_done(stack, result, original_output)
