"""`deployment deploy` under concurrency, kills, interrupts, API faults and failed rollouts.

Real podman, registry, Helm and kubectl; only the Kubernetes API server is emulated. Every
test ends by checking that the values ConfigMap, the workspace, the Helm release and the
deploy lock agree (`assert_consistent`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.emulator.emulator import CONFLICT_ANNOTATION
from stack.pytest_plugin import default_signals
from tests.e2e.conftest import (
    DAGSTER_UC,
    VALUES_CM,
    WORKSPACE_CM,
    Result,
    Stack,
    wait_helm_rolled_out,
    wait_until,  # imported from here by other e2e modules
)

pytestmark = pytest.mark.e2e

NAME = "demo-project--feat-hello"
LEASE = "dagster-uc-semaphore"
RELEASE = "dagster-user-code"
LEASES = ("coordination.k8s.io/v1", "leases")
BOTH_HELMS = pytest.mark.parametrize("helm_major", [3, 4], indirect=True, ids=["helm3", "helm4"])


# ------------------------------------------------------------------------------- helpers


class Proc:
    """The installed dagster-uc running in the background (own process group), its stderr
    collected line by line so a test can wait for a step."""

    def __init__(self, stack: Stack, *args: str, cwd: Path | None = None) -> None:
        self.popen = subprocess.Popen(
            [str(DAGSTER_UC), *args],
            cwd=cwd or stack.project,
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=default_signals,  # the tests send SIGINT/SIGTERM
        )
        self.lines: list[str] = []
        self._stdout: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # Drain stdout as it comes: a pipe nobody reads fills up (it may hold as little as
        # one page) and then blocks the command.
        self._stdout_reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._stdout_reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._stdout.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self._stdout)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in line for line in self.lines):
                if self.popen.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        f"dagster-uc ended before printing {text!r}:\n{self.stderr}"
                    )
                if time.monotonic() > deadline:
                    raise AssertionError(f"dagster-uc never printed {text!r}:\n{self.stderr}")
                self._changed.wait(0.1)

    def finish(self, timeout: float = 300) -> Result:
        code = self.popen.wait(timeout=timeout)
        self._reader.join(timeout=10)
        self._stdout_reader.join(timeout=10)
        return Result(code, self.stdout, self.stderr)

    def kill_group(self) -> None:
        """SIGKILL the command and every process it started (a crash or a lost machine)."""
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)


def lease_holder(stack: Stack) -> str | None:
    lease = stack.emulator.get(*LEASES, stack.namespace, LEASE)
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or None


def image_tag_of(stack: Stack, name: str) -> str:
    deployment = stack.deployment(name)
    assert deployment is not None, f"no Deployment for {name}"
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"]).rsplit(":", 1)[1]


def entry_tag(stack: Stack, name: str) -> str:
    entry = stack.entry(name)
    assert entry is not None, f"no entry {name} in the values ConfigMap"
    return str(entry["image"]["tag"])


def helm_json(stack: Stack, *args: str) -> Any:
    return json.loads(stack.helm(*args, "-o", "json"))


def workspace_text(stack: Stack) -> str:
    cm = stack.configmap(WORKSPACE_CM)
    assert cm is not None
    return str(cm["data"]["workspace.yaml"])


def assert_consistent(stack: Stack) -> None:
    """The values ConfigMap, the workspace, the Helm release and the lock agree."""
    values = stack.values()
    tags = {e["name"]: e["image"]["tag"] for e in values["deployments"]}
    assert stack.locations() == [n.replace("--", ":") for n in tags]
    released = helm_json(stack, "get", "values", RELEASE)
    assert {e["name"]: e["image"]["tag"] for e in released["deployments"]} == tags
    history = helm_json(stack, "history", RELEASE)
    assert history[-1]["status"] == "deployed", history
    recorded = stack.history().get("deployments") or {}
    for name, tag in tags.items():
        assert image_tag_of(stack, name) == tag
        if name in recorded:  # entries written by the original tool have no history
            assert tag in recorded[name]["tags"]
    assert lease_holder(stack) is None


def one_error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    assert "Traceback" not in output
    return errors[0]


def current_pod_hash(stack: Stack, name: str) -> str:
    pods = stack.emulator.list("v1", "pods", stack.namespace, label_selector=f"deployment={name}")
    hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in pods}
    assert len(hashes) == 1, hashes
    return hashes.pop()


def hold_new_pods(stack: Stack, name: str) -> str:
    """Make every pod of `name` started from now on crash-loop; the serving ones stay ready."""
    selector = f"deployment={name},pod-template-hash!={current_pod_hash(stack, name)}"
    stack.emulator.hold_unready(stack.namespace, selector)
    return selector


def requests_in(stack: Stack) -> Counter[tuple[str, str]]:
    marker = f"/namespaces/{stack.namespace}/"
    return Counter({key: n for key, n in stack.emulator.request_counts.items() if marker in key[1]})


def answers(stack: Stack, method: str, path_end: str) -> Counter[int]:
    """How the emulator answered `method` requests on a path of this test's namespace ending
    in `path_end`, by status code."""
    marker = f"/namespaces/{stack.namespace}/"
    return Counter(
        {
            status: n
            for (m, path, status), n in stack.emulator.response_counts.items()
            if m == method and marker in path and path.endswith(path_end)
        }
    )


def new_commit(stack: Stack, message: str = "change") -> None:
    stack.git("commit", "-q", "--allow-empty", "-m", message)


def micro_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ------------------------------------------------------------------------------- concurrency


def test_two_branches_deployed_at_the_same_time_both_end_up_registered(stack: Stack) -> None:
    other = stack.project.parent / "other-checkout"
    stack.git("worktree", "add", "-q", "-b", "feat/other", str(other))
    first = Proc(stack, "deployment", "deploy", "--timeout", "60")
    second = Proc(stack, "deployment", "deploy", "--timeout", "60", cwd=other)
    try:
        results = [first.finish(), second.finish()]
    finally:
        first.stop()
        second.stop()

    for result in results:
        assert result.returncode == 0, result.output
    # Both gave the lock back (a failed release would be a warning in their output).
    assert lease_holder(stack) is None, "\n".join(r.output for r in results)
    assert entry_tag(stack, NAME) == "1.8.4-0"
    assert entry_tag(stack, "demo-project--feat-other") == "1.8.4-0"
    assert sorted(stack.locations()) == ["demo-project:feat-hello", "demo-project:feat-other"]
    assert stack.tags("demo-project--feat-other") == ["1.8.4-0"]
    assert_consistent(stack)


def test_the_same_branch_deployed_twice_at_once_gets_two_tags(stack: Stack) -> None:
    """Both deploys read the state before either writes its tag reservation: the emulator
    holds the first two writes of the values ConfigMap until both have arrived, so one of
    them is stale and must be refused and retried (409), never handing out one tag twice."""
    stack.emulator.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": VALUES_CM, "namespace": stack.namespace},
            "data": {"yaml": yaml.safe_dump({"deployments": []})},
        }
    )
    gate = stack.emulator.hold_requests(
        "PUT", f"/namespaces/{stack.namespace}/configmaps/{VALUES_CM}$", count=2
    )
    first = Proc(stack, "deployment", "deploy", "--timeout", "60")
    second = Proc(stack, "deployment", "deploy", "--timeout", "60")
    try:
        gate.wait_caught(2)  # both reservations are written from what both read
        gate.release()
        results = [first.finish(), second.finish()]
    finally:
        gate.release()
        first.stop()
        second.stop()

    # The build that finishes last wins the lock last: if that is the older tag, it stops
    # without changing anything rather than replace the newer one.
    refused = [r for r in results if r.returncode != 0]
    assert len(refused) <= 1, [r.output for r in results]
    for result in refused:
        assert result.returncode == 1, result.output
        assert "already runs the newer tag 1.8.4-1" in one_error_line(result.stderr)
    assert answers(stack, "PUT", f"/configmaps/{VALUES_CM}")[409] >= 1, "no write was stale"
    assert stack.tags(NAME) == ["1.8.4-0", "1.8.4-1"]
    # The compacted history keeps the highest tag (what keeps tags from being reused); a
    # reservation below it of a name not yet deployed is not kept (docs/state-and-locking.md).
    assert max(stack.history()["deployments"][NAME]["tags"]) == "1.8.4-1"
    assert entry_tag(stack, NAME) in {"1.8.4-0", "1.8.4-1"}
    assert [e["name"] for e in stack.values()["deployments"]] == [NAME]
    assert_consistent(stack)


# ------------------------------------------------------------------------------- the lock


def test_a_killed_deploy_blocks_the_next_one_only_until_its_lease_expires(stack: Stack) -> None:
    stack.write_config(deploy_lock_lease_seconds=5)
    killed = Proc(stack, "deployment", "deploy", "--timeout", "60")
    try:
        holder = wait_until(lambda: lease_holder(stack), "the first deploy to take the lock")
        killed.kill_group()
    finally:
        killed.stop()
    assert lease_holder(stack) == holder, "a SIGKILLed deploy cannot release its lock"

    result = stack.ok("deployment", "deploy", "--timeout", "60")

    assert f"held by {holder}" in result.stderr
    assert f"pid={killed.pid}" in result.stderr
    assert entry_tag(stack, NAME) == "1.8.4-1", "the killed deploy's tag is never reused"
    assert_consistent(stack)


@BOTH_HELMS
def test_a_deploy_killed_inside_helm_leaves_a_release_the_next_deploy_unlocks(
    stack: Stack,
) -> None:
    stack.write_config(deploy_lock_lease_seconds=5)
    stack.ok("deployment", "deploy", "--timeout", "60")
    new_commit(stack)
    # Slow down Helm's update of the Deployment so the kill lands while the release is pending.
    stack.emulator.inject_fault(
        "PATCH", f"/namespaces/{stack.namespace}/deployments/", status=None, delay=3, times=1
    )
    killed = Proc(stack, "deployment", "deploy", "--timeout", "60")
    try:
        wait_until(
            lambda: stack.emulator.list(
                "v1", "secrets", stack.namespace, label_selector="owner=helm,status=pending-upgrade"
            ),
            "Helm to mark the release pending-upgrade",
        )
        killed.kill_group()
    finally:
        killed.stop()

    result = stack.ok("deployment", "deploy", "--timeout", "60")

    assert "pending-upgrade" in result.stderr
    assert entry_tag(stack, NAME) == "1.8.4-2"
    assert_consistent(stack)


def test_reset_lock_takes_over_a_foreign_lease_at_once(stack: Stack) -> None:
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
    waiting = Proc(stack, "deployment", "deploy", "--timeout", "60")
    try:
        waiting.wait_for_line("held by alice@laptop pid=42 id=feedbeef since")
        os.kill(waiting.pid, signal.SIGINT)
        interrupted = waiting.finish()
    finally:
        waiting.stop()
    assert interrupted.returncode == 130, interrupted.output
    assert lease_holder(stack) == "alice@laptop pid=42 id=feedbeef"

    stack.ok("deployment", "deploy", "--reset-lock", "--timeout", "60")

    assert entry_tag(stack, NAME) == "1.8.4-1"
    assert_consistent(stack)


# ------------------------------------------------------------------------------- failed rollouts


@BOTH_HELMS
def test_a_failed_rollout_keeps_the_previous_release_serving_and_the_state(stack: Stack) -> None:
    stack.ok("deployment", "deploy", "--timeout", "60")
    entry_before = stack.entry(NAME)
    workspace_before = workspace_text(stack)
    selector = hold_new_pods(stack, NAME)
    new_commit(stack)

    result = stack.run("deployment", "deploy", "--timeout", "3")

    assert result.returncode == 1, result.output
    assert "did not become ready" in one_error_line(result.stderr)
    assert "Pods:" in result.stdout and "CrashLoopBackOff" in result.stdout
    assert "Recent events:" in result.stdout
    assert "Last log lines of" in result.stdout
    assert stack.entry(NAME) == entry_before
    assert workspace_text(stack) == workspace_before
    assert image_tag_of(stack, NAME) == "1.8.4-0"
    assert stack.history()["deployments"][NAME]["tags"] == ["1.8.4-0", "1.8.4-1"]
    assert [r["tag"] for r in stack.history()["deployments"][NAME]["records"]] == ["1.8.4-0"]
    assert_consistent(stack)

    stack.emulator.release_unready(stack.namespace, selector)
    stack.ok("deployment", "deploy", "--timeout", "60")
    assert entry_tag(stack, NAME) == "1.8.4-2", "a tag that failed is never handed out again"
    assert_consistent(stack)


def test_a_deploy_next_to_a_location_that_never_gets_ready_succeeds(stack: Stack) -> None:
    broken = "demo-project--feat-broken"
    stack.emulator.hold_unready(stack.namespace, f"deployment={broken}")
    stack.checkout("feat/broken")
    stack.ok("deployment", "deploy", "--no-wait")
    stack.checkout("feat/hello")

    stack.ok("deployment", "deploy", "--timeout", "30")

    assert entry_tag(stack, NAME) == "1.8.4-0"
    assert entry_tag(stack, broken) == "1.8.4-0"
    assert (stack.deployment(NAME) or {})["status"].get("readyReplicas") == 1
    assert not (stack.deployment(broken) or {})["status"].get("readyReplicas")
    assert_consistent(stack)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_while_waiting_restores_the_state_the_release_and_the_lock(
    stack: Stack, signum: int
) -> None:
    stack.ok("deployment", "deploy", "--timeout", "60")
    entry_before = stack.entry(NAME)
    workspace_before = workspace_text(stack)
    hold_new_pods(stack, NAME)
    new_commit(stack)
    deploying = Proc(stack, "deployment", "deploy", "--timeout", "120")
    try:
        wait_helm_rolled_out(stack, NAME, "1.8.4-1")  # it waits for pods that never get ready
        os.kill(deploying.pid, signum)
        result = deploying.finish()
    finally:
        deploying.stop()

    assert result.returncode == 130, result.output
    assert "Rolling back to the previous state" in result.stderr
    assert stack.entry(NAME) == entry_before
    assert workspace_text(stack) == workspace_before
    assert image_tag_of(stack, NAME) == "1.8.4-0"
    assert_consistent(stack)


# ------------------------------------------------------------------------------- API faults


def test_conflicting_writes_are_retried_and_nothing_is_lost(stack: Stack) -> None:
    values = {
        "deployments": [
            {"name": "teammate--main", "image": {"repository": "r/teammate", "tag": "1.8.4-7"}}
        ],
        "customKey": "keep me",
    }
    stack.emulator.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": VALUES_CM, "namespace": stack.namespace},
            "data": {"yaml": yaml.safe_dump(values), "notes": "unrelated key"},
        }
    )
    ns = stack.namespace
    stack.emulator.inject_conflict(f"/namespaces/{ns}/configmaps/{VALUES_CM}$", times=3)
    stack.emulator.inject_conflict(f"/namespaces/{ns}/configmaps/{WORKSPACE_CM}$", times=2)

    stack.ok("deployment", "deploy", "--timeout", "60")

    # Every injected conflict was consumed (the emulator changed each ConfigMap behind the
    # command's back that often) and refused a stale write of the command: three times for the
    # values; at least once for the workspace, whose first change lands after a read that
    # writes nothing.
    for name, times, refused in ((VALUES_CM, 3, 3), (WORKSPACE_CM, 2, 1)):
        cm = stack.configmap(name)
        assert cm is not None
        assert cm["metadata"]["annotations"][CONFLICT_ANNOTATION] == str(times), name
        assert answers(stack, "PUT", f"/configmaps/{name}")[409] >= refused, name
    cm = stack.configmap(VALUES_CM)
    assert cm is not None
    assert cm["data"]["notes"] == "unrelated key"
    document = stack.values()
    assert document["customKey"] == "keep me"
    assert [e["name"] for e in document["deployments"]] == ["teammate--main", NAME]
    assert stack.locations() == ["teammate:main", "demo-project:feat-hello"]
    assert_consistent(stack)


def test_transient_api_errors_on_reads_are_retried(stack: Stack) -> None:
    ns = stack.namespace
    stack.emulator.inject_fault(
        "GET", f"/namespaces/{ns}/configmaps/{VALUES_CM}$", status=503, times=2
    )
    stack.emulator.inject_fault("GET", f"/namespaces/{ns}/leases/{LEASE}$", status=500, times=1)

    stack.ok("deployment", "deploy", "--timeout", "60")

    # The faults were consumed (the command really met them) and the reads were retried
    # until answered (404: the ConfigMap and the Lease do not exist before the first deploy).
    for path, status, times in ((f"configmaps/{VALUES_CM}", 503, 2), (f"leases/{LEASE}", 500, 1)):
        reads = answers(stack, "GET", f"/{path}")
        assert reads[status] == times, (path, reads)
        assert reads[200] + reads[404] >= 1, (path, reads)
    assert entry_tag(stack, NAME) == "1.8.4-0"
    assert_consistent(stack)


@pytest.mark.parametrize(
    ("method", "path", "status", "expected"),
    [
        ("PUT", f"configmaps/{VALUES_CM}$", 500, f"Could not write ConfigMap {VALUES_CM}"),
        ("PUT", f"configmaps/{WORKSPACE_CM}$", 503, f"Could not write ConfigMap {WORKSPACE_CM}"),
        (
            "*",  # Helm 3 creates with POST, Helm 4 with a server-side apply PATCH
            "deployments(/dagster-user-code-dagster-user-deployments-demo-project--feat-second)?$",
            500,
            f"helm upgrade of release {RELEASE} failed",
        ),
        ("PUT", f"leases/{LEASE}$", 500, f"Could not take the deploy lock {LEASE}"),
    ],
    ids=["values-write", "workspace-write", "helm-apply", "lock-take"],
)
def test_an_api_error_on_a_write_is_one_sentence_and_changes_nothing(
    stack: Stack, method: str, path: str, status: int, expected: str
) -> None:
    stack.ok("deployment", "deploy", "--timeout", "60")
    values_before = stack.values()
    workspace_before = workspace_text(stack)
    stack.checkout("feat/second")
    stack.emulator.inject_fault(method, f"/namespaces/{stack.namespace}/{path}", status=status)

    result = stack.run("deployment", "deploy", "--timeout", "60")

    assert result.returncode == 1, result.output
    assert expected in one_error_line(result.stderr)
    assert stack.values() == values_before
    assert workspace_text(stack) == workspace_before
    assert_consistent(stack)

    stack.ok("deployment", "deploy", "--timeout", "60")
    assert stack.locations() == ["demo-project:feat-hello", "demo-project:feat-second"]
    assert_consistent(stack)


# ------------------------------------------------------------------------------- refusals


def test_a_dagster_version_mismatch_stops_before_anything_changes(stack: Stack) -> None:
    stack.write_config(dagster_version="1.9.0")
    workspace_before = workspace_text(stack)

    result = stack.run("deployment", "deploy")

    assert result.returncode == 2, result.output
    line = one_error_line(result.stderr)
    assert "1.9.0" in line and "1.8.4" in line
    assert stack.configmap(VALUES_CM) is None
    assert workspace_text(stack) == workspace_before
    assert stack.tags(NAME) == []
    assert stack.emulator.get(*LEASES, stack.namespace, LEASE) is None
    assert stack.emulator.list("v1", "secrets", stack.namespace, label_selector="owner=helm") == []


def test_a_missing_build_variable_stops_before_any_request(stack: Stack) -> None:
    stack.write_config(docker_env_vars=["DUC_E2E_UNSET_VARIABLE"])
    before = requests_in(stack)

    result = stack.run("deployment", "deploy")

    assert result.returncode == 2, result.output
    assert "DUC_E2E_UNSET_VARIABLE" in one_error_line(result.stderr)
    assert requests_in(stack) == before
    assert stack.tags(NAME) == []


# ------------------------------------------------------------------------------- the original tool


@pytest.fixture(scope="session")
def original_dagster_uc() -> Path:
    """The original dagster-uc from PyPI, in a virtualenv of its own (made once)."""
    from stack.original import ensure_original

    return ensure_original()


def original_config(stack: Stack, chart_path: str) -> dict[str, Any]:
    """A config in the original tool's format (every field it requires, a `defaults` block)."""
    from stack.original import original_config as config_for

    return config_for(
        registry=stack.registry.host,
        image_prefix=stack.prefix,
        namespace=stack.namespace,
        kubernetes_context=stack.kube.context,
        chart_path=chart_path,
    )


@pytest.mark.parametrize("helm_major", [3], indirect=True, ids=["helm3"])
def test_a_cluster_set_up_by_the_original_dagster_uc_keeps_its_state(
    stack: Stack, original_dagster_uc: Path, tmp_path: Path
) -> None:
    from stack.original import publish_chart, write_registries_conf

    # The original fetches its chart from oci://<registry>/<container_registry_chart_path>
    # and talks to the registry through podman, which must be told it is plain HTTP.
    chart_path = publish_chart(tmp_path / "chart", stack.registry.host, f"{stack.prefix}-charts")
    registries_conf = write_registries_conf(tmp_path / "registries.conf", stack.registry.host)
    config_file = tmp_path / "original-config.yaml"
    config_file.write_text(yaml.safe_dump(original_config(stack, chart_path)))
    env = {**stack.env, "CONTAINERS_REGISTRIES_CONF": str(registries_conf)}
    original_name = "demo-project--feat-original"
    # Its tag lookup (`podman search --list-tags`) fails on a repository that does not exist
    # yet with this podman, so the repository gets a first, unrelated tag.
    subprocess.run(
        [
            "podman",
            "push",
            "-q",
            "--tls-verify=false",
            "localhost/dagster-uc-base:latest",
            f"{stack.registry.host}/{stack.prefix}/{original_name}:seed",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    stack.checkout("feat/original")

    def original(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(original_dagster_uc), "-c", str(config_file), *args],
            cwd=stack.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, (
            f"original dagster-uc {args} failed:\n{done.stdout}{done.stderr}"
        )
        return done

    original("deployment", "deploy")

    written = stack.values()
    original_entry = stack.entry(original_name)
    assert original_entry is not None and original_entry["image"]["tag"] == "1.8.4-0"
    assert stack.locations() == ["demo-project:feat-original"]
    unrelated = {k: v for k, v in written.items() if k != "deployments"}
    assert {"global", "dagsterHome", "serviceAccount", "rbacEnabled"} <= set(unrelated)

    # Our deploy of another branch keeps the original's entry and every other key.
    stack.checkout("feat/hello")
    stack.ok("deployment", "deploy", "--timeout", "60")
    document = stack.values()
    assert {k: v for k, v in document.items() if k != "deployments"} == unrelated
    assert [e["name"] for e in document["deployments"]] == [original_name, NAME]
    assert stack.entry(original_name) == original_entry
    assert stack.locations() == ["demo-project:feat-original", "demo-project:feat-hello"]
    listed = stack.ok("deployment", "list").stdout
    assert original_name in listed and NAME in listed
    assert_consistent(stack)

    # Our redeploy of the original's location continues its tags and keeps its place.
    stack.checkout("feat/original")
    stack.ok("deployment", "deploy", "--timeout", "60")
    assert [e["name"] for e in stack.values()["deployments"]] == [original_name, NAME]
    assert entry_tag(stack, original_name) == "1.8.4-1"
    assert_consistent(stack)

    # And the original still reads what we wrote.
    listed = original("deployment", "list").stdout
    assert original_name in listed and NAME in listed
