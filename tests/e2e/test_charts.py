"""Deploys against charts that behave like Dagster's published ones: a values schema that refers
to an unreachable host, the Role and RoleBinding the chart creates, pull secrets read only from
the top-level key, and a workspace ConfigMap owned by the main Dagster release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.chart import UNREACHABLE_SCHEMA_DEFS, copy_chart
from tests.e2e.conftest import VALUES_CM, WORKSPACE_CM, Stack

NAME = "demo-project--feat-hello"
FULLNAME = "dagster-user-code-dagster-user-deployments"


def pod_spec(stack: Stack, name: str = NAME) -> dict[str, Any]:
    deployment = stack.deployment(name)
    assert deployment is not None
    return dict(deployment["spec"]["template"]["spec"])


def warning_lines(stderr: str, *words: str) -> list[str]:
    return [
        line for line in stderr.splitlines() if "Warning" in line and all(w in line for w in words)
    ]


def seed_values(stack: Stack, document: dict[str, Any]) -> None:
    stack.emulator.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": VALUES_CM, "namespace": stack.namespace},
            "data": {"yaml": yaml.safe_dump(document)},
        }
    )


@pytest.fixture
def schema_chart(stack: Stack, tmp_path: Path) -> Path:
    """The stack's config uses a copy of the chart whose schema refers to an unreachable host."""
    chart = copy_chart(tmp_path / "charts", schema_defs_url=UNREACHABLE_SCHEMA_DEFS)
    stack.write_config(helm_chart_path=str(chart))
    return chart


@pytest.mark.parametrize("helm_major", [3, 4], indirect=True, ids=["helm3", "helm4"])
@pytest.mark.usefixtures("schema_chart")
def test_a_chart_whose_schema_host_is_unreachable_deploys_with_one_warning(stack: Stack) -> None:
    result = stack.ok("deployment", "deploy", "--timeout", "60")

    warnings = warning_lines(result.stderr, "--skip-schema-validation")
    assert len(warnings) == 1, result.stderr
    assert "kubernetesjsonschema.invalid" in warnings[0]
    assert pod_spec(stack)["containers"][0]["image"].endswith(":1.8.4-0")
    assert stack.deployment(NAME)["status"].get("readyReplicas") == 1  # type: ignore[index]

    # A command whose first Helm call is the upgrade itself (no render check before it).
    deleted = stack.ok("deployment", "delete", "-n", NAME)
    assert len(warning_lines(deleted.stderr, "--skip-schema-validation")) == 1, deleted.stderr
    assert stack.deployment(NAME) is None


@pytest.mark.parametrize("helm_major", [3, 4], indirect=True, ids=["helm3", "helm4"])
@pytest.mark.usefixtures("schema_chart")
def test_values_that_violate_the_rest_of_the_schema_still_fail(stack: Stack) -> None:
    seed_values(stack, {"deployments": [], "imagePullSecrets": [], "rbacEnabled": "yes"})
    before = stack.configmap(VALUES_CM)

    result = stack.run("deployment", "deploy", "--timeout", "60")

    assert result.returncode == 1, result.output
    assert "rbacEnabled" in result.stderr and "Traceback" not in result.stderr
    assert stack.tags(NAME) == [], "nothing was built or pushed"
    assert stack.configmap(VALUES_CM) == before
    assert "dagster-user-code" not in stack.helm("list", "-q")


def test_a_pull_secret_added_to_the_config_later_reaches_the_pods(stack: Stack) -> None:
    stack.ok("deployment", "deploy", "--timeout", "60")
    assert "imagePullSecrets" not in pod_spec(stack)
    role = stack.emulator.get(
        "rbac.authorization.k8s.io/v1", "roles", stack.namespace, f"{FULLNAME}-role"
    )
    binding = stack.emulator.get(
        "rbac.authorization.k8s.io/v1", "rolebindings", stack.namespace, f"{FULLNAME}-rolebinding"
    )
    assert role is not None and binding is not None, "the chart's RBAC objects were installed"

    # A teammate lists a pull secret of their own in the document, by hand.
    document = stack.values()
    document["imagePullSecrets"] = [{"name": "team-cred"}]
    document["serviceAccount"] = {"create": True, "name": "", "annotations": {"team": "data"}}
    stack.emulator.patch(
        "v1", "configmaps", stack.namespace, VALUES_CM, {"data": {"yaml": yaml.safe_dump(document)}}
    )
    stack.write_config(image_pull_secrets=[{"name": "regcred"}])

    stack.ok("deployment", "deploy", "--skip-build", "--timeout", "60")

    expected = [{"name": "team-cred"}, {"name": "regcred"}]
    assert pod_spec(stack)["imagePullSecrets"] == expected
    assert stack.values()["imagePullSecrets"] == expected
    assert stack.values()["serviceAccount"]["annotations"] == {"team": "data"}


def set_workspace_owner(stack: Stack, release: str | None) -> None:
    """Helm's ownership annotations on the workspace ConfigMap (the seed, like Dagster's main
    chart without `workspace.externalConfigmap`, renders it in release `dagster`)."""
    annotations = {
        "meta.helm.sh/release-name": release,
        "meta.helm.sh/release-namespace": stack.namespace if release else None,
    }
    patch = {"metadata": {"annotations": annotations}}
    stack.emulator.patch("v1", "configmaps", stack.namespace, WORKSPACE_CM, patch)


def test_deploy_warns_when_the_main_release_renders_the_workspace(stack: Stack) -> None:
    set_workspace_owner(stack, "dagster")

    result = stack.ok("deployment", "deploy", "--timeout", "60")

    warnings = warning_lines(result.stderr, WORKSPACE_CM)
    assert len(warnings) == 1, result.stderr
    assert "release dagster" in warnings[0] and "externalConfigmap" in warnings[0]
    assert stack.locations() == ["demo-project:feat-hello"]


def test_no_workspace_warning_when_no_release_owns_the_workspace(stack: Stack) -> None:
    set_workspace_owner(stack, None)

    result = stack.ok("deployment", "deploy", "--timeout", "60")

    assert warning_lines(result.stderr, WORKSPACE_CM) == []
