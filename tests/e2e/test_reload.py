"""`dagster_reload`: a new, deleted or revived location reaches Dagster's webserver through a
workspace reload (exec into the webserver pod), without restarting the webserver or daemon
Deployment; `restart` mode, `--force` and a reload that does not show the change in time
restart them. The emulator's webserver answers the exec as Dagster's does
(stack/emulator/dagster.py `Webservers`); the same probe runs against real Dagster in
tests/dagster_real/test_workspace_reload.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stack.controlplane.fixtures import e2e_backend
from stack.emulator.dagster import Webservers, webservers
from stack.real_cluster import real_context
from tests.e2e.conftest import Stack

NAME = "demo-project--feat-hello"
UI = "demo-project:feat-hello"
WEBSERVER = "dagster-dagster-webserver"
DAEMON = "dagster-daemon"

pytestmark = pytest.mark.skipif(
    real_context() is not None or e2e_backend() != "emulator",
    reason="uses the emulator's webserver model (its reload count and kubelet delay)",
)


@pytest.fixture
def model(stack: Stack) -> Iterator[Webservers]:
    """The emulator's webservers; the kubelet delay is put back after the test."""
    found = webservers(stack.emulator)
    delay = found.mount_delay
    yield found
    found.mount_delay = delay


def not_restarted(stack: Stack) -> bool:
    return stack.restarted_at(WEBSERVER) is None and stack.restarted_at(DAEMON) is None


def test_new_location_delete_and_revive_reload_the_webserver_without_a_restart(
    stack: Stack, model: Webservers
) -> None:
    stack.write_config(dagster_reload="reload")

    deployed = stack.ok("deployment", "deploy")
    assert f"Dagster's webserver shows {UI}" in deployed.output
    assert "no restart" in deployed.output
    assert not_restarted(stack)
    assert model.reloads[stack.namespace] == 1

    deleted = stack.ok("deployment", "delete")
    assert f"Dagster's webserver no longer shows {UI}" in deleted.output
    assert not_restarted(stack)
    assert model.reloads[stack.namespace] == 2

    revived = stack.ok("deployment", "revive", "-n", UI, "-t", "1.8.4-0")
    assert f"Dagster's webserver shows {UI}" in revived.output
    assert not_restarted(stack)
    assert model.reloads[stack.namespace] == 3


def test_the_default_mode_is_reload_and_a_redeploy_reloads_nothing(
    stack: Stack, model: Webservers
) -> None:
    stack.ok("deployment", "deploy")
    stack.ok("deployment", "deploy", "--skip-build")
    assert not_restarted(stack)
    assert model.reloads[stack.namespace] == 1, "same set of locations: no second reload"


def test_reload_waits_for_the_kubelet_to_update_the_mounted_file(
    stack: Stack, model: Webservers
) -> None:
    model.mount_delay = 3.0  # the kubelet's sync period, shortened
    result = stack.ok("deployment", "deploy")
    assert f"Dagster's webserver shows {UI}" in result.output
    assert not_restarted(stack)
    assert model.reloads[stack.namespace] == 1


def test_not_visible_in_time_falls_back_to_a_restart_and_says_so(
    stack: Stack, model: Webservers
) -> None:
    model.mount_delay = 600.0  # the file never changes within the bound
    stack.write_config(dagster_reload_timeout_seconds=2)
    result = stack.ok("deployment", "deploy")
    assert "did not show the new set of locations within 2 s" in result.output
    assert "restarting the webserver and daemon instead" in result.output
    assert stack.restarted_at(WEBSERVER) and stack.restarted_at(DAEMON)
    assert model.reloads.get(stack.namespace, 0) == 0


def test_a_read_only_webserver_falls_back_to_a_restart_at_once(
    stack: Stack, model: Webservers
) -> None:
    deployment = stack.emulator.get("apps/v1", "deployments", stack.namespace, WEBSERVER)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [*container["command"][:-1], container["command"][-1] + " --read-only"]
    patch = {"spec": {"template": {"spec": {"containers": [container]}}}}
    stack.emulator.patch("apps/v1", "deployments", stack.namespace, WEBSERVER, patch)
    stack.write_config(dagster_reload_timeout_seconds=120)

    result = stack.ok("deployment", "deploy", timeout=100)

    assert "read-only" in result.output
    assert "restarting the webserver and daemon instead" in result.output
    assert stack.restarted_at(WEBSERVER) and stack.restarted_at(DAEMON)


def test_restart_mode_and_force_restart_the_webserver_and_daemon(
    stack: Stack, model: Webservers
) -> None:
    stack.write_config(dagster_reload="restart")
    result = stack.ok("deployment", "deploy")
    assert stack.restarted_at(WEBSERVER) and stack.restarted_at(DAEMON)
    assert "Dagster's webserver shows" not in result.output
    assert model.reloads.get(stack.namespace, 0) == 0

    stack.write_config(dagster_reload="reload")
    stamp = stack.restarted_at(WEBSERVER)
    stack.ok("deployment", "deploy", "--force", "--skip-build")
    assert stack.restarted_at(WEBSERVER) != stamp
    assert model.reloads.get(stack.namespace, 0) == 0


def test_an_unknown_mode_is_a_config_error_that_changes_nothing(stack: Stack) -> None:
    stack.write_config(dagster_reload="bounce")
    result = stack.run("deployment", "deploy")
    assert result.returncode == 2
    assert "dagster_reload" in result.stderr and "Traceback" not in result.stderr
    assert stack.configmap("dagster-user-deployments-values-yaml") is None


def test_a_missing_webserver_deployment_does_not_fail_the_deploy(stack: Stack) -> None:
    stack.write_config(dagster_webserver_deployment_name="no-such-webserver")
    result = stack.ok("deployment", "deploy")
    assert "cannot reload" in result.output and "no-such-webserver" in result.output
    assert "Deployment no-such-webserver was not found" in result.output
    assert stack.restarted_at(DAEMON), "the daemon is restarted as in restart mode"
    assert stack.locations() == [UI]
