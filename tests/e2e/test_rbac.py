"""dagster-uc under the documented RBAC Role, on the real control plane (the emulator has no
authorization): a ServiceAccount bound to docs/rbac/dagster-uc-role.yaml deploys, lists,
checks, deletes and works the lock; one permission less and the error names it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.controlplane.fixtures import e2e_backend
from tests.e2e.conftest import ROOT, Stack

ROLE_FILE = ROOT / "docs" / "rbac" / "dagster-uc-role.yaml"
ACCOUNT = "deployer"

pytestmark = pytest.mark.skipif(
    e2e_backend() != "real",
    reason="RBAC needs a real API server (the emulator authorizes everything)",
)


def documented_role() -> tuple[dict[str, Any], dict[str, Any]]:
    role, binding = yaml.safe_load_all(ROLE_FILE.read_text())
    return role, binding


def bind_account(stack: Stack, role: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """Apply `role` in the test's namespace, bind it to a ServiceAccount and return the env of
    a dagster-uc that authenticates with that account's token."""
    cluster, ns = stack.emulator, stack.namespace
    _, binding = documented_role()
    role = {**copy.deepcopy(role), "metadata": {"name": "dagster-uc", "namespace": ns}}
    binding = copy.deepcopy(binding)
    binding["metadata"] = {"name": "dagster-uc", "namespace": ns}
    binding["subjects"] = [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": ns}]
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": ACCOUNT, "namespace": ns},
        }
    )
    cluster.create(role)
    cluster.create(binding)
    token = cluster.service_account_token(ns, ACCOUNT)
    kubeconfig = cluster.write_token_kubeconfig(
        tmp_path / "deployer.kubeconfig", token, context=stack.kube.context, namespace=ns
    )
    return {"KUBECONFIG": str(kubeconfig)}


def test_the_documented_role_is_enough_for_a_whole_cycle(stack: Stack, tmp_path: Path) -> None:
    role, _ = documented_role()
    env = bind_account(stack, role, tmp_path)
    whoami = stack.run("lock", "status", env=env)
    assert whoami.returncode == 0, whoami.output

    deployed = stack.run("deployment", "deploy", env=env)
    assert deployed.returncode == 0, deployed.output
    name = "demo-project--feat-hello"
    assert stack.entry(name) is not None

    listed = stack.run("deployment", "list", env=env)
    assert listed.returncode == 0 and name in listed.stdout, listed.output
    checked = stack.run("deployment", "check", "-n", name, "-t", "60", env=env)
    assert checked.returncode == 0, checked.output
    assert "Started Dagster code server" in checked.stdout

    status = stack.run("lock", "status", env=env)
    assert status.returncode == 0 and "free" in status.output.lower(), status.output
    deleted = stack.run("deployment", "delete", "-n", name, env=env)
    assert deleted.returncode == 0, deleted.output
    assert stack.entry(name) is None


def test_a_missing_permission_is_named(stack: Stack, tmp_path: Path) -> None:
    role, _ = documented_role()
    role = copy.deepcopy(role)
    role["rules"] = [r for r in role["rules"] if "leases" not in r.get("resources", [])]
    env = bind_account(stack, role, tmp_path)

    result = stack.run("deployment", "deploy", env=env)

    assert result.returncode == 1, result.output
    assert "missing permission" in result.stderr and "leases" in result.stderr, result.stderr
    assert "Traceback" not in result.output
    # The tag was reserved before the lock (builds run outside it); nothing was rolled out.
    assert stack.entry("demo-project--feat-hello") is None
    assert stack.deployment("demo-project--feat-hello") is None
