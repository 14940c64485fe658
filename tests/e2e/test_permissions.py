"""A 403 from the Kubernetes API names the missing permission in the command's one sentence."""

from __future__ import annotations

from tests.e2e.conftest import VALUES_CM, Stack


def test_a_refused_read_names_the_missing_permission(stack: Stack) -> None:
    stack.emulator.inject_fault(
        "GET", f"/api/v1/namespaces/{stack.namespace}/configmaps/{VALUES_CM}$", status=403
    )

    result = stack.run("deployment", "list")

    assert result.returncode == 1, result.output
    assert f'get configmaps in namespace "{stack.namespace}"' in result.stderr
    assert "Traceback" not in result.stderr


def test_a_refused_lock_names_the_missing_permission(stack: Stack) -> None:
    stack.emulator.inject_fault(
        "POST", f"/apis/coordination.k8s.io/v1/namespaces/{stack.namespace}/leases$", status=403
    )

    result = stack.run("deployment", "deploy", "--timeout", "60")

    assert result.returncode == 1, result.output
    assert f'create leases.coordination.k8s.io in namespace "{stack.namespace}"' in result.stderr
    assert "Traceback" not in result.stderr
