"""`dagster-uc doctor` without a cluster: the results model, the permissions derived from the
Role, and the command on a checkout whose configuration fails or points nowhere."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from dagster_uc.doctor import CHECKS, exit_code, render_text, summary, to_json
from dagster_uc.doctor.model import CheckResult, failed, ok, skipped, split_fix, warning
from dagster_uc.doctor.permissions import (
    ROLE_FILE,
    Permission,
    required_permissions,
    review_body,
    rules_from_role,
)
from tests.cli.conftest import Runner

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "docs" / "rbac" / "dagster-uc-role.yaml"


@pytest.mark.parametrize(
    ("sentence", "message", "fix"),
    [
        (
            "namespace x does not exist; fix namespace in the config.",
            "namespace x does not exist",
            "Fix namespace in the config.",
        ),
        (
            "HEAD is detached in /r (no branch checked out); check out a branch, pass --branch.",
            "HEAD is detached in /r (no branch checked out)",
            "Check out a branch, pass --branch.",
        ),
        ("cannot reach registry h: refused.", "cannot reach registry h: refused", None),
        ("log in; `podman login h`.", "log in", "`podman login h`."),
    ],
)
def test_split_fix(sentence: str, message: str, fix: str | None) -> None:
    assert split_fix(sentence) == (message, fix)


def test_render_one_line_per_check_with_fixes_under_failures() -> None:
    results = [
        ok("config", "fine"),
        warning("lock", "held by ann", "wait"),
        failed("namespace", "missing", "Fix it.\nOr this."),
        skipped("permissions", "no such namespace"),
    ]
    assert render_text(results) == [
        "ok       config       fine",
        "warning  lock         held by ann",
        "                      fix: wait",
        "failed   namespace    missing",
        "                      fix: Fix it.",
        "                           Or this.",
        "skipped  permissions  not checked: no such namespace",
    ]
    assert exit_code(results) == 1
    assert summary(results) == "1 check(s) failed (namespace): fix them before deploying."
    document = to_json(results, environment="dev")
    assert document["ok"] is False and document["environment"] == "dev"
    assert document["counts"] == {"ok": 1, "warning": 1, "failed": 1, "skipped": 1}
    assert document["checks"][2] == {
        "name": "namespace",
        "status": "failed",
        "message": "missing",
        "fix": "Fix it.\nOr this.",
    }


def test_warnings_do_not_fail() -> None:
    results = [ok("a", "x"), warning("lock", "held", "wait")]
    assert exit_code(results) == 0
    assert summary(results) == "Ready to deploy, with 1 warning(s) (lock)."
    assert summary([ok("a", "x")]) == "All checks passed: ready to deploy."
    assert CheckResult("a", "ok", "x").to_json() == {
        "name": "a",
        "status": "ok",
        "message": "x",
        "fix": None,
    }


def test_role_rules_expand_per_group_resource_and_verb() -> None:
    role = {
        "kind": "Role",
        "rules": [
            {"apiGroups": ["", "apps"], "resources": ["pods", "deployments"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["x"], "verbs": ["get"]},
        ],
    }
    assert rules_from_role(role) == {
        Permission("", "pods", "get"),
        Permission("", "deployments", "get"),
        Permission("apps", "pods", "get"),
        Permission("apps", "deployments", "get"),
        Permission("", "pods/log", "*"),
    }
    assert Permission("apps", "deployments", "patch").describe() == "patch deployments.apps"
    assert Permission("batch", "jobs/status", "*").describe() == "* jobs.batch/status"


def test_checks_are_derived_from_the_role_in_docs() -> None:
    """The packaged Role is the docs' Role (a link), and the checks are exactly its rules."""
    packaged = ROOT / "src" / "dagster_uc" / "doctor" / ROLE_FILE
    assert packaged.resolve() == ROLE.resolve()
    role = next(d for d in yaml.safe_load_all(ROLE.read_text()) if d and d["kind"] == "Role")
    assert required_permissions() == rules_from_role(role)
    assert Permission("coordination.k8s.io", "leases", "update") in required_permissions()
    assert Permission("", "configmaps", "update") in required_permissions()


def test_review_body_names_subresources() -> None:
    body = review_body(Permission("", "pods/log", "get"), "ns")
    assert body["kind"] == "SelfSubjectAccessReview"
    assert body["spec"]["resourceAttributes"] == {
        "namespace": "ns",
        "verb": "get",
        "group": "",
        "resource": "pods",
        "subresource": "log",
    }


def test_bad_config_fails_one_check_and_skips_the_rest(
    dagster_uc: Runner, make_repo: Callable[..., Path]
) -> None:
    repo = make_repo(config="dev:\n  namspace: x\n")
    result = dagster_uc("doctor", cwd=repo)
    assert result.returncode == 1, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("failed   config")
    assert "did you mean 'namespace'" in result.stdout
    assert "Traceback" not in result.stderr
    result = dagster_uc("doctor", "-o", "json", cwd=repo)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert [c["name"] for c in document["checks"]] == list(CHECKS)
    assert {c["status"] for c in document["checks"][1:]} == {"skipped"}
    assert result.stderr == ""


def test_unknown_context_without_any_cluster(
    dagster_uc: Runner, make_repo: Callable[..., Path], home: Path
) -> None:
    """No kubeconfig at all: the context check fails with the fix, cluster checks are skipped,
    the checkout checks still run; no escape codes when not on a terminal."""
    repo = make_repo()
    result = dagster_uc("doctor", cwd=repo, env={"KUBECONFIG": str(home / "none")})
    assert result.returncode == 1
    assert "\x1b[" not in result.stdout + result.stderr
    lines = {
        line.split()[1]: line
        for line in result.stdout.splitlines()
        if line[:1].isalpha() and len(line.split()) > 1
    }
    assert lines["git"].startswith("ok") and "feat/X" in lines["git"]
    assert lines["deployment-name"].startswith("ok")
    assert "my-dummy-project--feat-x" in lines["deployment-name"]
    assert lines["kube-context"].startswith("failed")
    assert lines["namespace"].startswith("skipped")
