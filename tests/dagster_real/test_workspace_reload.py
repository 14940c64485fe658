"""The reload path against real Dagster (PyPI, the version the stack pins): a real
`dagster-webserver` and `dagster-daemon` on loopback read a workspace file that is rewritten
with the document dagster-uc generates (`workspace_yaml`, the ConfigMap's content), and real
code servers (`dagster api grpc`) of a small definitions module with a sensor.

The in-pod program dagster-uc execs into the webserver pod (`reload.PROBE`) runs here with the
Dagster venv's Python, as it would in the webserver container. It makes a new location appear
in the webserver's GraphQL answer and a removed one disappear; the daemon picks the new
location up by itself (Dagster's daemon re-reads the workspace every 60 s,
`dagster._daemon.controller.RELOAD_WORKSPACE_INTERVAL`): a tick of the new location's sensor
lands in the instance's tick storage. No process is restarted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dagster_uc.reload import Probe, parse_probe, workspace_locations
from dagster_uc.workspace import workspace_document, workspace_yaml
from stack.dagster_real import (
    LocalDagster,
    ensure_dagster,
    free_port,
    private_hosts_supported,
    wait_until,
)

WORKSPACE_QUERY = (
    "{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus "
    "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
)
A, B = "demo-project--feat-a", "demo-project--feat-b"


@pytest.fixture(scope="module")
def dagster_bin() -> Path:
    reason = private_hosts_supported()
    if reason:
        pytest.skip(f"the code servers' Service names need a private /etc/hosts: {reason}")
    return ensure_dagster()


@pytest.fixture
def dagster(dagster_bin: Path, tmp_path: Path) -> Iterator[LocalDagster]:
    instance = LocalDagster(tmp_path, dagster_bin)
    try:
        yield instance
    finally:
        instance.stop()


def values(*entries: dict[str, Any]) -> dict[str, Any]:
    """A values document as dagster-uc keeps it (only what the workspace is made from)."""
    return {"deployments": list(entries)}


def shown(dagster: LocalDagster) -> dict[str, str]:
    """Location name -> load status, as the webserver's GraphQL API answers."""
    workspace = dagster.graphql(WORKSPACE_QUERY)["workspaceOrError"]
    assert workspace["__typename"] == "Workspace", workspace
    return {
        e["name"]: e["loadStatus"]
        + (
            ": " + e["locationOrLoadError"]["message"]
            if e["locationOrLoadError"]["__typename"] == "PythonError"
            else ""
        )
        for e in workspace["locationEntries"]
    }


def reload_in_webserver(dagster: LocalDagster, document: dict[str, Any]) -> Probe:
    """What dagster-uc runs in the webserver pod, with the arguments it passes there."""
    done = dagster.run_reload_probe(workspace_locations(document))
    assert done.returncode == 0, done.stderr
    return parse_probe(done.stdout)


def test_reload_shows_a_new_location_in_webserver_and_daemon_and_drops_a_removed_one(
    dagster: LocalDagster,
) -> None:
    a = {"name": A, "port": free_port()}
    b = {"name": B, "port": free_port()}
    dagster.start_code_server(A, a["port"])
    dagster.start_code_server(B, b["port"])
    dagster.workspace.write_text(workspace_yaml(values(a)))
    dagster.start_webserver()
    dagster.start_daemon()
    wait_until("the webserver serving", dagster.webserver_up, 180)
    assert shown(dagster) == {"demo-project:feat-a": "LOADED"}
    started = dagster.pids()

    both = values(a, b)
    dagster.workspace.write_text(workspace_yaml(both))
    assert set(shown(dagster)) == {"demo-project:feat-a"}, "nothing reloads by itself"
    probe = reload_in_webserver(dagster, workspace_document(both))
    assert probe.error is None and probe.reloaded
    expected = {"demo-project:feat-a", "demo-project:feat-b"}
    assert probe.shows(expected)
    assert shown(dagster) == {name: "LOADED" for name in expected}
    assert reload_in_webserver(dagster, workspace_document(both)).reloaded is False

    wait_until(
        "a tick of demo-project:feat-b's sensor (the daemon re-reads the workspace every 60 s)",
        lambda: dagster.check_alive() or dagster.sensor_ticks("demo-project:feat-b"),
        180,
        interval_s=2,
    )

    only_b = values(b)
    dagster.workspace.write_text(workspace_yaml(only_b))
    probe = reload_in_webserver(dagster, workspace_document(only_b))
    assert probe.reloaded and probe.shows({"demo-project:feat-b"})
    assert shown(dagster) == {"demo-project:feat-b": "LOADED"}

    dagster.check_alive()
    assert dagster.pids() == started, "no process was restarted"


def test_the_probe_waits_while_the_mounted_file_is_not_updated_yet(dagster: LocalDagster) -> None:
    """Before the kubelet has updated the file, the probe asks for no reload and says what
    the file and the webserver show; an empty workspace loads too."""
    a = {"name": A, "port": free_port()}
    dagster.start_code_server(A, a["port"])
    dagster.workspace.write_text(workspace_yaml(values()))
    dagster.start_webserver()
    wait_until("the webserver serving", dagster.webserver_up, 180)

    probe = reload_in_webserver(dagster, workspace_document(values(a)))
    assert probe.error is None and not probe.reloaded
    assert probe.file == [] and probe.locations == []

    dagster.workspace.write_text(workspace_yaml(values(a)))
    probe = reload_in_webserver(dagster, workspace_document(values(a)))
    assert probe.reloaded and probe.shows({"demo-project:feat-a"})
