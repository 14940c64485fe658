"""The lifecycle commands end to end: list, delete, revive, check, rollback, prune, image prune
and the lock, against real podman, registry, Helm and kubectl and the emulated API server."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from stack.registry import push_many_tags
from tests.e2e.conftest import VALUES_CM, Result, Stack
from tests.e2e.test_reliability import Proc

NAME = "demo-project--feat-hello"
UI = "demo-project:feat-hello"
WEBSERVER = "dagster-dagster-webserver"
DAEMON = "dagster-daemon"
RELEASE = "dagster-user-code"
LEASE = "dagster-uc-semaphore"
RESTARTED = "kubectl.kubernetes.io/restartedAt"
OLD_STAMP = "2000-01-01T00:00:00Z"


# --- helpers ----------------------------------------------------------------------------------


def deploy_branch(stack: Stack, branch: str, *args: str, **kwargs: Any) -> str:
    """Check out `branch` (created when missing) and deploy it; returns the deployment name."""
    stack.checkout(branch)
    stack.ok("deployment", "deploy", *args, **kwargs)
    return "demo-project--" + branch.replace("/", "-").replace("_", "-").lower()


def names(stack: Stack) -> list[str]:
    return sorted(e["name"] for e in stack.values()["deployments"])


def values_version(stack: Stack) -> str | None:
    cm = stack.configmap(VALUES_CM)
    return None if cm is None else cm["metadata"]["resourceVersion"]


def revisions(stack: Stack) -> int:
    return len(json.loads(stack.helm("history", RELEASE, "-o", "json")))


def services(stack: Stack, name: str) -> list[dict[str, Any]]:
    return stack.emulator.list(
        "v1", "services", stack.namespace, label_selector=f"deployment={name}"
    )


def assert_one_sentence_error(result: Result, code: int, *fragments: str) -> None:
    """Exit `code`, nothing on stdout but progress, one line on stderr naming `fragments`."""
    assert result.returncode == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def unchanged(stack: Stack) -> tuple[Any, ...]:
    """What a refused command must leave as it was: values, Helm revisions, the lock."""
    lease = stack.emulator.get("coordination.k8s.io/v1", "leases", stack.namespace, LEASE)
    holder = (lease or {}).get("spec", {}).get("holderIdentity")
    return values_version(stack), revisions_or_zero(stack), holder


def revisions_or_zero(stack: Stack) -> int:
    try:
        return revisions(stack)
    except subprocess.CalledProcessError:
        return 0


def set_entry_annotation(stack: Stack, name: str, key: str, value: str) -> None:
    """Edit one entry of the values ConfigMap in place (as an operator with kubectl would)."""
    document = stack.values()
    for entry in document["deployments"]:
        if entry["name"] == name:
            entry.setdefault("annotations", {})[key] = value
    stack.emulator.patch(
        "v1", "configmaps", stack.namespace, VALUES_CM, {"data": {"yaml": yaml.safe_dump(document)}}
    )


def mark_reloads(stack: Stack) -> None:
    """Give the webserver and daemon an old restart stamp, so a reload shows as a change even
    within the second of the previous one (the stamp has one-second resolution)."""
    for deployment in (WEBSERVER, DAEMON):
        stack.emulator.patch(
            "apps/v1",
            "deployments",
            stack.namespace,
            deployment,
            {"spec": {"template": {"metadata": {"annotations": {RESTARTED: OLD_STAMP}}}}},
        )


def reloaded(stack: Stack) -> bool:
    return stack.restarted_at(WEBSERVER) != OLD_STAMP and stack.restarted_at(DAEMON) != OLD_STAMP


def original_entry(stack: Stack, name: str, tag: str) -> dict[str, Any]:
    """A deployments[] entry as the original dagster-uc writes it (no dagster-uc.io records)."""
    return {
        "name": name,
        "image": {
            "repository": f"{stack.registry.host}/{stack.prefix}/{name}",
            "tag": tag,
            "pullPolicy": "Always",
        },
        "dagsterApiGrpcArgs": ["-f", "/app/demo_project/definitions.py"],
        "port": 3030,
        "includeConfigInLaunchedRuns": {"enabled": True},
        "env": [],
        "envConfigMaps": [],
        "envSecrets": [],
        "annotations": {},
        "nodeSelector": {},
        "affinity": {},
        "resources": {},
        "tolerations": [],
        "imagePullSecrets": [],
        "podSecurityContext": {},
        "securityContext": {},
        "labels": {},
        "readinessProbe": {"enabled": True, "periodSeconds": 20, "timeoutSeconds": 10},
        "livenessProbe": {},
        "startupProbe": {"enabled": False},
        "service": {"annotations": {}},
    }


def write_original_state(stack: Stack, entries: list[dict[str, Any]]) -> None:
    stack.emulator.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": VALUES_CM, "namespace": stack.namespace},
            "data": {"yaml": yaml.safe_dump({"deployments": entries, "imagePullSecrets": []})},
        }
    )


def create_lease(stack: Stack, holder: str, *, seconds: int = 300) -> None:
    """Someone else holds the deploy lock (created, or taken over when it exists)."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    spec = {
        "holderIdentity": holder,
        "acquireTime": now,
        "renewTime": now,
        "leaseDurationSeconds": seconds,
    }
    if stack.emulator.get("coordination.k8s.io/v1", "leases", stack.namespace, LEASE):
        stack.emulator.patch(
            "coordination.k8s.io/v1", "leases", stack.namespace, LEASE, {"spec": spec}
        )
        return
    stack.emulator.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE, "namespace": stack.namespace},
            "spec": spec,
        }
    )


def add_origin(stack: Stack, tmp_path: Path) -> Path:
    """A bare repository as `origin`, with the current branch pushed."""
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], env=stack.env, check=True)
    stack.git("remote", "add", "origin", str(bare))
    return bare


# --- deployment list --------------------------------------------------------------------------


def test_list_on_an_empty_cluster_says_so(stack: Stack) -> None:
    result = stack.ok("deployment", "list")
    assert "No deployments are registered on the cluster." in result.stdout
    assert json.loads(stack.ok("deployment", "list", "-o", "json").stdout) == []


def test_list_shows_every_deployment_as_table_and_json(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    other = deploy_branch(stack, "feat/other")
    commit = stack.git("rev-parse", "HEAD")

    table = stack.ok("deployment", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "UI", "NAME", "TAG", "DEPLOYED", "BY", "COMMIT", "READY"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == {NAME, other}
    assert rows[NAME][1] == UI
    assert rows[NAME][2] == "1.8.4-0"
    assert rows[other][5] == commit[:10]
    assert rows[other][-1] == "1/1"

    data = json.loads(stack.ok("deployment", "list", "-o", "json").stdout)
    by_name = {row["name"]: row for row in data}
    assert set(by_name) == {NAME, other}
    row = by_name[other]
    assert row["ui_name"] == "demo-project:feat-other"
    assert row["tag"] == "1.8.4-0"
    assert row["image"] == f"{stack.registry.host}/{stack.prefix}/{other}:1.8.4-0"
    assert row["commit"] == commit
    assert row["branch"] == "feat/other"
    assert row["action"] == "deploy"
    assert row["deployed_by"] and "@" in row["deployed_by"]
    dt.datetime.fromisoformat(row["deployed_at"].replace("Z", "+00:00"))
    assert (row["ready"], row["pods"]) == (1, 1)


def test_list_and_delete_work_on_state_written_by_the_original_tool(stack: Stack) -> None:
    write_original_state(
        stack,
        [
            original_entry(stack, "demo-project--old-one", "1.8.4-3"),
            original_entry(stack, "legacy", "1.8.4-0"),
        ],
    )

    table = stack.ok("deployment", "list").stdout
    assert "demo-project--old-one" in table and "demo-project:old-one" in table
    assert "1.8.4-3" in table
    data = json.loads(stack.ok("deployment", "list", "-o", "json").stdout)
    assert [r["name"] for r in data] == ["demo-project--old-one", "legacy"]
    assert data[0]["deployed_at"] is None and data[0]["deployed_by"] is None
    assert data[0]["commit"] is None and (data[0]["ready"], data[0]["pods"]) == (0, 0)

    stack.ok("deployment", "delete", "-n", "legacy")
    assert names(stack) == ["demo-project--old-one"]
    assert stack.history()["deployments"]["legacy"]["records"][-1]["action"] == "delete"


# --- deployment delete ------------------------------------------------------------------------


def test_delete_defaults_to_the_current_branch_and_cleans_up(stack: Stack) -> None:
    stack.write_config(dagster_reload="restart")  # reload mode: tests/e2e/test_reload.py
    stack.ok("deployment", "deploy")
    other = deploy_branch(stack, "feat/other")
    stack.checkout("feat/hello")
    mark_reloads(stack)
    assert stack.deployment(NAME) is not None and services(stack, NAME)

    result = stack.ok("deployment", "delete")

    assert NAME in result.output
    assert names(stack) == [other]
    assert stack.locations() == ["demo-project:feat-other"]
    assert stack.deployment(NAME) is None
    assert services(stack, NAME) == []
    assert stack.deployment(other) is not None
    assert reloaded(stack)
    record = stack.history()["deployments"][NAME]["records"][-1]
    assert record["action"] == "delete" and record["tag"] == "1.8.4-0"


def test_delete_by_ui_name_internal_name_and_branch(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    a = deploy_branch(stack, "feat/a")
    b = deploy_branch(stack, "feat/b")
    stack.checkout("feat/hello")

    stack.ok("deployment", "delete", "-n", "demo-project:feat-a")
    assert names(stack) == sorted([NAME, b])
    stack.ok("deployment", "delete", "--name", b)
    assert names(stack) == [NAME]
    stack.ok("deployment", "delete", "-b", "feat/hello")
    assert names(stack) == []
    assert stack.locations() == []
    assert stack.deployment(a) is None and stack.deployment(NAME) is None


def test_delete_several_names_at_once_is_one_rollout(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    a = deploy_branch(stack, "feat/a")
    b = deploy_branch(stack, "feat/b")
    before = revisions(stack)

    stack.ok("deployment", "delete", "-n", a, "-n", "demo-project:feat-b")

    assert names(stack) == [NAME]
    assert revisions(stack) == before + 1
    assert stack.deployment(a) is None and stack.deployment(b) is None


def test_delete_all_asks_first_and_no_keeps_everything(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    deploy_branch(stack, "feat/a")
    state = unchanged(stack)

    result = stack.run("deployment", "delete", "--all", input="n\n")

    assert result.returncode == 1, result.output
    assert "Delete all 2 deployments" in result.output
    assert "Nothing was deleted" in result.stderr and "Traceback" not in result.output
    assert unchanged(stack) == state


def test_delete_all_confirmed_on_stdin_removes_everything_in_one_rollout(stack: Stack) -> None:
    stack.write_config(dagster_reload="restart")  # reload mode: tests/e2e/test_reload.py
    stack.ok("deployment", "deploy")
    a = deploy_branch(stack, "feat/a")
    b = deploy_branch(stack, "feat/b")
    before = revisions(stack)
    mark_reloads(stack)

    stack.ok("deployment", "delete", "-a", input="y\n")

    assert names(stack) == []
    assert stack.locations() == []
    assert revisions(stack) == before + 1
    assert all(stack.deployment(n) is None for n in (NAME, a, b))
    assert reloaded(stack)


def test_delete_all_with_yes_does_not_ask(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    deploy_branch(stack, "feat/a")

    result = stack.ok("deployment", "delete", "--all", "--yes", input="")

    assert "Delete all" not in result.stderr and "?" not in result.stderr  # the prompt's stream
    assert names(stack) == []
    again = stack.ok("deployment", "delete", "--all", "--yes")
    assert "nothing to delete" in again.output


def test_delete_unknown_or_invalid_names_change_nothing(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    state = unchanged(stack)

    for args, fragment in [
        (["-n", "demo-project:nope"], "demo-project--nope"),
        (["-n", "Not A Name!"], "not a valid deployment name"),
        (["-b", "feat/never-deployed"], "demo-project--feat-never-deployed"),
        (["-n", NAME, "-n", "ghost"], "ghost"),
        (["-n", NAME, "--all"], "only one of"),
    ]:
        result = stack.run("deployment", "delete", *args)
        assert_one_sentence_error(result, 2, fragment)
        assert unchanged(stack) == state
    assert names(stack) == [NAME]


def test_delete_without_any_deployment_is_an_error(stack: Stack) -> None:
    result = stack.run("deployment", "delete")
    assert_one_sentence_error(result, 2, NAME, "deployment list")
    assert stack.configmap(VALUES_CM) is None


# --- deployment revive ------------------------------------------------------------------------


def test_revive_puts_a_deleted_deployment_back_without_building(stack: Stack) -> None:
    stack.write_config(dagster_reload="restart")  # reload mode: tests/e2e/test_reload.py
    stack.ok("deployment", "deploy")
    stack.git("commit", "-q", "--allow-empty", "-m", "second")
    stack.ok("deployment", "deploy")
    stack.ok("deployment", "delete")
    tags = stack.tags(NAME)
    mark_reloads(stack)

    # The last deploy's tag: a deleted name keeps that record (docs/state-and-locking.md), so
    # the revived entry still says which commit it runs.
    result = stack.ok("deployment", "revive", "-n", UI, "-t", "1.8.4-1")

    assert "1.8.4-1" in result.output
    assert stack.tags(NAME) == tags  # nothing built or pushed
    entry = stack.entry(NAME)
    assert entry is not None and entry["image"]["tag"] == "1.8.4-1"
    assert entry["annotations"]["dagster-uc.io/action"] == "revive"
    assert entry["annotations"]["dagster-uc.io/commit"] == stack.git("rev-parse", "HEAD")
    deployment = stack.deployment(NAME)
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.8.4-1")
    assert deployment["status"].get("readyReplicas") == 1
    assert stack.locations() == [UI]
    assert reloaded(stack)


def test_revive_refuses_unknown_tags_and_deployed_names(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    state = unchanged(stack)

    deployed = stack.run("deployment", "revive", "-n", NAME, "-t", "1.8.4-0")
    assert_one_sentence_error(deployed, 2, "already deployed")
    assert unchanged(stack) == state

    stack.ok("deployment", "delete")
    state = unchanged(stack)
    missing = stack.run("deployment", "revive", "-n", NAME, "-t", "1.8.4-7")
    assert_one_sentence_error(missing, 2, "1.8.4-7", "does not exist in the registry")
    unknown_repo = stack.run("deployment", "revive", "-n", "demo-project:ghost", "-t", "1.8.4-0")
    assert_one_sentence_error(unknown_repo, 2, "does not exist in the registry")
    bad_tag = stack.run("deployment", "revive", "-n", NAME, "-t", "no such tag!")
    assert_one_sentence_error(bad_tag, 2, "no such tag!")
    invalid = stack.run("deployment", "revive", "-n", "Bad Name", "-t", "1.8.4-0")
    assert_one_sentence_error(invalid, 2, "not a valid deployment name")
    assert unchanged(stack) == state
    assert names(stack) == []


# --- deployment check -------------------------------------------------------------------------


def test_check_reports_a_started_code_server(stack: Stack) -> None:
    stack.ok("deployment", "deploy")

    result = stack.ok("deployment", "check", "-t", "20")

    assert "Started Dagster code server" in result.stdout
    assert f"Location {NAME}" in result.stdout
    assert "Recent events" in result.stdout
    assert "has started" in result.output
    by_ui = stack.ok("deployment", "check", "-n", UI, "-t", "20")
    assert "Started Dagster code server" in by_ui.stdout


def test_check_fails_for_a_code_server_that_never_starts(stack: Stack) -> None:
    stack.emulator.hold_unready(stack.namespace, f"deployment={NAME}")
    stack.ok("deployment", "deploy", "--no-wait")

    result = stack.run("deployment", "check", "-n", NAME, "-t", "3")

    assert result.returncode == 1, result.output
    assert "Traceback (most recent call last)" in result.stdout  # the pod's own log
    assert "Recent events" in result.stdout
    assert "0/1 ready" in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "did not report that it started within 3 s" in lines[0]


def test_check_of_an_unknown_name_is_a_usage_error(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    result = stack.run("deployment", "check", "-n", "demo-project:ghost", "-t", "2")
    assert_one_sentence_error(result, 2, "demo-project--ghost")


# --- deployment rollback ----------------------------------------------------------------------


def test_rollback_goes_to_the_previous_tag_and_to_a_given_one(stack: Stack) -> None:
    for _ in range(3):
        stack.ok("deployment", "deploy")
        stack.git("commit", "-q", "--allow-empty", "-m", "next")
    assert stack.entry(NAME)["image"]["tag"] == "1.8.4-2"  # type: ignore[index]
    mark_reloads(stack)

    result = stack.ok("deployment", "rollback", "-n", UI)

    assert "1.8.4-2" in result.output and "1.8.4-1" in result.output
    entry = stack.entry(NAME)
    assert entry is not None and entry["image"]["tag"] == "1.8.4-1"
    assert entry["annotations"]["dagster-uc.io/action"] == "rollback"
    image = stack.deployment(NAME)["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
    assert image.endswith(":1.8.4-1")
    assert stack.restarted_at(WEBSERVER) == OLD_STAMP  # same set of locations: no reload
    assert stack.tags(NAME) == ["1.8.4-0", "1.8.4-1", "1.8.4-2"]

    stack.ok("deployment", "rollback", "-n", NAME, "--to", "1.8.4-0")
    assert stack.entry(NAME)["image"]["tag"] == "1.8.4-0"  # type: ignore[index]
    records = stack.history()["deployments"][NAME]["records"]
    assert [r["action"] for r in records][-2:] == ["rollback", "rollback"]


def test_rollback_refusals_change_nothing(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    state = unchanged(stack)

    nothing = stack.run("deployment", "rollback", "-n", NAME)
    assert_one_sentence_error(nothing, 2, "no earlier tag")
    unknown_tag = stack.run("deployment", "rollback", "-n", NAME, "--to", "1.8.4-9")
    assert_one_sentence_error(unknown_tag, 2, "1.8.4-9", "does not exist in the registry")
    same = stack.run("deployment", "rollback", "-n", NAME, "--to", "1.8.4-0")
    assert_one_sentence_error(same, 2, "already runs")
    unknown_name = stack.run("deployment", "rollback", "-n", "ghost")
    assert_one_sentence_error(unknown_name, 2, "ghost")
    assert unchanged(stack) == state


# --- deployment prune -------------------------------------------------------------------------


def test_prune_removes_deployments_whose_branch_is_gone(stack: Stack, tmp_path: Path) -> None:
    add_origin(stack, tmp_path)
    stack.ok("deployment", "deploy")
    stack.git("push", "-q", "origin", "feat/hello")
    deployed = {}
    for branch in ("feat/a", "feat/b", "feat/c"):
        deployed[branch] = deploy_branch(stack, branch)
        stack.git("push", "-q", "origin", branch)
    stack.checkout("feat/hello")
    stack.ok("deployment", "deploy", env={"CICD": "true"})
    cicd = "demo-project--dev"  # named after the environment, not the branch
    assert cicd in names(stack)
    stack.git("push", "-q", "origin", "--delete", "feat/a")
    stack.git("push", "-q", "origin", "--delete", "feat/b")
    state = unchanged(stack)

    dry = stack.ok("deployment", "prune", "--dry-run")
    assert deployed["feat/a"] in dry.stdout and deployed["feat/b"] in dry.stdout
    assert "would remove" in dry.stdout
    assert (
        deployed["feat/c"] not in dry.stdout and NAME not in dry.stdout and cicd not in dry.stdout
    )
    dry_json = json.loads(stack.ok("deployment", "prune", "--dry-run", "-o", "json").stdout)
    assert dry_json["dry_run"] is True
    assert sorted(r["name"] for r in dry_json["removed"]) == sorted(
        [deployed["feat/a"], deployed["feat/b"]]
    )
    assert all("feat/" in r["reason"] for r in dry_json["removed"])
    assert unchanged(stack) == state

    before = revisions(stack)
    done = json.loads(stack.ok("deployment", "prune", "-o", "json").stdout)
    assert done["dry_run"] is False
    assert sorted(r["name"] for r in done["removed"]) == sorted(
        [deployed["feat/a"], deployed["feat/b"]]
    )
    assert revisions(stack) == before + 1
    assert names(stack) == sorted([NAME, deployed["feat/c"], cicd])
    assert stack.deployment(deployed["feat/a"]) is None

    assert "Nothing to prune" in stack.ok("deployment", "prune").stdout


def test_prune_older_than_and_cicd(stack: Stack, tmp_path: Path) -> None:
    add_origin(stack, tmp_path)
    stack.ok("deployment", "deploy")
    stack.git("push", "-q", "origin", "feat/hello")
    old = deploy_branch(stack, "feat/old")
    stack.git("push", "-q", "origin", "feat/old")
    stack.ok("deployment", "deploy", env={"CICD": "true"})
    cicd = "demo-project--dev"
    assert cicd in names(stack)
    for name in (old, cicd):
        set_entry_annotation(stack, name, "dagster-uc.io/deployed-at", "2020-01-01T00:00:00Z")

    plain = stack.ok("deployment", "prune", "--older-than", "7d").stdout
    assert f"removed {old}" in plain and cicd not in plain
    assert names(stack) == sorted([NAME, cicd])

    with_cicd = stack.ok("deployment", "prune", "--older-than", "2w", "--include-cicd").stdout
    assert f"removed {cicd}" in with_cicd
    assert names(stack) == [NAME]


def test_prune_refusals_change_nothing(stack: Stack, tmp_path: Path) -> None:
    stack.ok("deployment", "deploy")
    state = unchanged(stack)

    no_remote = stack.run("deployment", "prune", "--dry-run")
    assert_one_sentence_error(no_remote, 2, "no remote 'origin'")
    assert_one_sentence_error(stack.run("deployment", "prune"), 2, "no remote 'origin'")
    bad_age = stack.run("deployment", "prune", "--older-than", "soon")
    assert_one_sentence_error(bad_age, 2, "not a duration")
    stack.git("remote", "add", "origin", str(tmp_path / "missing.git"))
    unreachable = stack.run("deployment", "prune")
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.output
    assert "Cannot list the branches of remote 'origin'" in unreachable.stderr
    assert unchanged(stack) == state
    assert names(stack) == [NAME]


# --- image prune ------------------------------------------------------------------------------


def registry_tags(stack: Stack, name: str) -> list[str]:
    return stack.tags(name)


def test_image_prune_keeps_newest_deployed_history_and_shared_digests(stack: Stack) -> None:
    stack.ok("deployment", "deploy")  # 1.8.4-0
    stack.git("commit", "-q", "--allow-empty", "-m", "second")
    stack.ok("deployment", "deploy")  # 1.8.4-1 (deployed), 1.8.4-0 in the history
    repository = f"{stack.prefix}/{NAME}"
    many = [f"1.8.4-{n}" for n in range(2, 30)]
    push_many_tags(stack.registry, repository, many, distinct_digests=True)
    # 1.8.4-5 shares its manifest with the newest tag, which stays.
    push_many_tags(stack.registry, repository, ["1.8.4-29", "1.8.4-5"])
    push_many_tags(stack.registry, repository, ["latest"], distinct_digests=True)
    before = stack.tags(NAME)
    assert len(before) == 31

    dry = json.loads(stack.ok("image", "prune", "--keep", "3", "--dry-run", "-o", "json").stdout)
    assert stack.tags(NAME) == before
    assert dry["dry_run"] is True and dry["keep"] == 3
    (repo,) = [r for r in dry["repositories"] if r["repository"].endswith(f"/{NAME}")]
    assert repo["repository"] == f"{stack.registry.host}/{repository}"
    assert repo["kept"] == ["1.8.4-29", "1.8.4-28", "1.8.4-27"]
    skipped = {s["tag"]: s["reason"] for s in repo["skipped"]}
    assert set(skipped) == {"1.8.4-0", "1.8.4-1", "1.8.4-5"}
    doomed = sorted(t for d in repo["delete"] for t in d["tags"])
    expected = sorted(f"1.8.4-{n}" for n in range(2, 27) if n != 5)
    assert doomed == expected
    assert all(d["digest"].startswith("sha256:") for d in repo["delete"])
    assert repo["deleted_manifests"] == []
    assert repo["untouched"] == ["latest"]
    assert dry["manifests"] == len(repo["delete"]) and dry["tags"] == len(expected)

    text = stack.ok("image", "prune", "--keep", "3").stdout
    assert f"{len(expected)} image manifest(s) with {len(expected)} tag(s) deleted" in text
    after = stack.tags(NAME)
    assert sorted(after) == sorted(
        ["latest", "1.8.4-0", "1.8.4-1", "1.8.4-5", "1.8.4-27", "1.8.4-28", "1.8.4-29"]
    )
    # the deployed image still pulls
    response = httpx.head(
        f"http://{stack.registry.host}/v2/{repository}/manifests/1.8.4-1",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
        },
        trust_env=False,
    )
    assert response.status_code == 200

    again = json.loads(stack.ok("image", "prune", "--keep", "3", "-o", "json").stdout)
    assert all(r["delete"] == [] for r in again["repositories"])


def test_image_prune_also_cleans_repositories_of_deleted_deployments(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    other = deploy_branch(stack, "feat/other")
    stack.ok("deployment", "delete", "-n", other)
    push_many_tags(
        stack.registry,
        f"{stack.prefix}/{other}",
        [f"1.8.4-{n}" for n in range(1, 6)],
        distinct_digests=True,
    )

    stack.ok("image", "prune", "--keep", "1")

    # 1.8.4-0 is in the deleted deployment's recorded history (revive needs it)
    assert stack.tags(other) == ["1.8.4-0", "1.8.4-5"]
    assert stack.tags(NAME) == ["1.8.4-0"]


def test_image_prune_bad_keep_is_a_usage_error(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    for keep in ("0", "-1"):
        result = stack.run("image", "prune", "--keep", keep)
        assert_one_sentence_error(result, 2, "--keep must be at least 1")
    assert stack.tags(NAME) == ["1.8.4-0"]
    missing = stack.run("image", "prune")
    assert missing.returncode == 2 and "--keep" in missing.stderr


# --- lock -------------------------------------------------------------------------------------


def test_lock_status_free_and_held(stack: Stack) -> None:
    free = stack.ok("lock", "status")
    assert "is free" in free.stdout
    data = json.loads(stack.ok("lock", "status", "-o", "json").stdout)
    assert data["held"] is False and data["holder"] is None and data["name"] == LEASE

    create_lease(stack, "alice@laptop pid=1 id=x")
    held = stack.ok("lock", "status")
    assert "alice@laptop pid=1 id=x" in held.stdout and "since" in held.stdout
    data = json.loads(stack.ok("lock", "status", "-o", "json").stdout)
    assert data["held"] is True
    assert data["holder"] == "alice@laptop pid=1 id=x"
    assert data["lease_seconds"] == 300
    acquired = dt.datetime.fromisoformat(data["acquired_at"].replace("Z", "+00:00"))
    expires = dt.datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
    assert dt.timedelta(seconds=299) <= expires - acquired <= dt.timedelta(seconds=301)


def test_lock_release_refuses_someone_elses_lock_without_force(stack: Stack) -> None:
    create_lease(stack, "alice@laptop pid=1 id=x")
    lease = stack.emulator.get("coordination.k8s.io/v1", "leases", stack.namespace, LEASE)

    refused = stack.run("lock", "release")
    assert_one_sentence_error(refused, 2, "alice@laptop", "--force")
    assert stack.emulator.get("coordination.k8s.io/v1", "leases", stack.namespace, LEASE) == lease

    released = stack.ok("lock", "release", "--force")
    assert "alice@laptop" in released.output
    assert "is free" in stack.ok("lock", "status").stdout
    spec = stack.emulator.get("coordination.k8s.io/v1", "leases", stack.namespace, LEASE)["spec"]
    assert not spec.get("holderIdentity")

    again = stack.ok("lock", "release")
    assert "not held" in again.output


def test_lock_held_by_someone_else_blocks_changes_until_released(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    create_lease(stack, "alice@laptop pid=1 id=x")
    state = unchanged(stack)
    waiting = Proc(stack, "deployment", "delete", "-n", NAME)
    try:
        waiting.wait_for_line("held by alice@laptop pid=1 id=x")  # it waits for the lock
        assert waiting.popen.poll() is None, waiting.stderr
        assert unchanged(stack) == state
        stack.ok("lock", "release", "--force")
        deleted = waiting.finish()
    finally:
        waiting.stop()
    assert deleted.returncode == 0, deleted.output
    assert names(stack) == []


def test_lock_release_of_my_own_lock_needs_no_force_and_expired_locks_are_free(
    stack: Stack,
) -> None:
    create_lease(stack, f"{getpass.getuser()}@{socket.gethostname()} pid=1 id=mine")
    released = stack.ok("lock", "release")
    assert "Released" in released.output
    assert json.loads(stack.ok("lock", "status", "-o", "json").stdout)["held"] is False

    create_lease(stack, "alice@laptop pid=1 id=x", seconds=1)
    time.sleep(1.5)  # the lease runs out (no timing assertion: only its expiry matters)
    assert json.loads(stack.ok("lock", "status", "-o", "json").stdout)["held"] is False
    assert "not held" in stack.ok("lock", "release").output


def test_prune_handles_entries_of_the_original_tool_and_other_projects(
    stack: Stack, tmp_path: Path
) -> None:
    add_origin(stack, tmp_path)
    stack.git("push", "-q", "origin", "feat/hello", "feat/hello:legacy/live")
    stack.ok("deployment", "deploy")
    document = stack.values()
    document["deployments"] += [
        original_entry(stack, "demo-project--legacy-live", "1.8.4-0"),
        original_entry(stack, "demo-project--legacy-gone", "1.8.4-0"),
        original_entry(stack, "other-project--feat-gone", "1.8.4-0"),
    ]
    stack.emulator.patch(
        "v1", "configmaps", stack.namespace, VALUES_CM, {"data": {"yaml": yaml.safe_dump(document)}}
    )

    data = json.loads(stack.ok("deployment", "prune", "-o", "json").stdout)

    assert data["removed"] == [
        {"name": "demo-project--legacy-gone", "reason": "no branch on the remote maps to this name"}
    ]
    assert names(stack) == sorted([NAME, "demo-project--legacy-live", "other-project--feat-gone"])


def test_check_waits_for_a_pod_that_never_comes(stack: Stack) -> None:
    write_original_state(stack, [original_entry(stack, "demo-project--no-pods", "1.8.4-0")])

    result = stack.run("deployment", "check", "-n", "demo-project:no-pods", "-t", "1")

    assert result.returncode == 1, result.output
    assert "Pods: none" in result.stdout
    assert "No pod of demo-project--no-pods appeared within 1 s." in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "did not report that it started" in lines[0]


def test_image_prune_without_an_image_prefix_touches_only_deployment_repositories(
    stack: Stack,
) -> None:
    stack.write_config(image_prefix="")
    stack.checkout(f"feat/{stack.prefix}")  # a repository name no other test uses
    stack.ok("deployment", "deploy")
    name = f"demo-project--feat-{stack.prefix}"
    push_many_tags(stack.registry, name, [f"1.8.4-{n}" for n in range(1, 5)], distinct_digests=True)
    unrelated = f"{stack.prefix}-other/app"
    push_many_tags(
        stack.registry, unrelated, [f"1.8.4-{n}" for n in range(6)], distinct_digests=True
    )

    stack.ok("image", "prune", "--keep", "1")

    def tags(repository: str) -> list[str]:
        url = f"http://{stack.registry.host}/v2/{repository}/tags/list"
        return sorted(httpx.get(url, trust_env=False).json().get("tags") or [])

    assert tags(name) == ["1.8.4-0", "1.8.4-4"], "the newest and the deployed tag stay"
    assert len(tags(unrelated)) == 6, "a repository that is not a deployment's is untouched"
