"""The pod adapter against the emulated API server, with the chart rolled out by real Helm."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dagster_uc.errors import OperationError
from dagster_uc.helm import ChartSource, Helm, HelmOptions
from dagster_uc.pods import (
    CODE_SERVER_STARTED,
    RolloutResult,
    UserCode,
    diagnose,
    events_for,
    follow_logs_until,
    format_diagnosis,
    pod_logs,
    pods_for_deployment,
    readiness_summary,
    wait_for_rollout,
)
from stack.emulator.controllers import MESH_INJECT, MESH_PROXY

RELEASE = "dagster-user-code"
SCOPE = UserCode(RELEASE)
REPO = "registry.test/team"


def image(name: str, tag: str) -> str:
    return f"{REPO}/{name}:{tag}"


@dataclass
class Cluster:
    kube: Any
    helm: Helm
    client: Any
    chart: ChartSource

    @property
    def ns(self) -> str:
        return str(self.kube.namespace)

    def install(self, *entries: tuple[str, str]) -> None:
        values = {
            "deployments": [
                {
                    "name": name,
                    "image": {"repository": f"{REPO}/{name}", "tag": tag},
                    "dagsterApiGrpcArgs": ["-f", f"/app/{name}/definitions.py"],
                    "port": 3030,
                    "readinessProbe": {"enabled": True},
                }
                for name, tag in entries
            ]
        }
        self.helm.upgrade_install(RELEASE, self.chart, yaml.safe_dump(values), timeout_s=60)


@pytest.fixture
def cluster(  # type: ignore[no-untyped-def]
    kube, tool_env, tools, user_code_chart: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    from lightkube import Client
    from lightkube.config.kubeconfig import KubeConfig

    for key in ("PATH", "KUBECONFIG", "HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(key, tool_env[key])
    helm = Helm(
        HelmOptions(kube.context, kube.namespace, str(kube.kubeconfig), binary=str(tools.helm4))
    )
    config = KubeConfig.from_file(os.fspath(kube.kubeconfig)).get(context_name=kube.context)
    client = Client(config=config, namespace=kube.namespace)
    try:
        yield Cluster(kube, helm, client, ChartSource(str(user_code_chart)))
    finally:
        client.close()


def test_wait_for_rollout_success_and_update(cluster: Cluster) -> None:
    cluster.install(("foo", "1"))
    progress: list[str] = []
    result = wait_for_rollout(
        cluster.client,
        cluster.ns,
        "foo",
        image("foo", "1"),
        60,
        on_progress=progress.append,
        scope=SCOPE,
    )
    assert result.ok, result.message
    assert not result.timed_out and result.reason is None
    assert result.deployment == f"{RELEASE}-dagster-user-deployments-foo"
    assert progress and progress[-1] == result.message
    assert [p.image for p in result.pods if p.ready] == [image("foo", "1")]

    cluster.install(("foo", "2"))
    result = wait_for_rollout(cluster.client, cluster.ns, "foo", image("foo", "2"), 60, scope=SCOPE)
    assert result.ok, result.message
    live = [
        p
        for p in pods_for_deployment(cluster.client, cluster.ns, "foo", scope=SCOPE)
        if not p.terminating
    ]
    assert [p.image for p in live] == [image("foo", "2")]
    assert all(p.ready and p.phase == "Running" for p in live)


def test_wait_for_rollout_times_out_on_unready_pod_and_diagnoses(cluster: Cluster) -> None:
    cluster.kube.emulator.hold_unready(cluster.ns, "deployment=foo")
    cluster.install(("foo", "1"))
    result = wait_for_rollout(cluster.client, cluster.ns, "foo", image("foo", "1"), 3, scope=SCOPE)
    assert not result.ok
    assert result.timed_out and result.reason == "Timeout"
    assert result.message.startswith("timed out after 3s: ")
    assert result.pods and not any(p.ready for p in result.pods)

    d = diagnose(cluster.client, cluster.ns, "foo", scope=SCOPE)
    assert d.deployment == f"{RELEASE}-dagster-user-deployments-foo"
    assert (d.desired, d.ready) == (1, 0)
    assert d.events, "events about the Deployment, ReplicaSet or pod"
    pod = d.pods[0].name
    assert d.logs[pod].strip(), "the held pod has written its start-up log lines"
    assert not CODE_SERVER_STARTED.search(d.logs[pod])
    text = format_diagnosis(d)
    assert f"{pod} (" in text and "not ready" in text
    assert "Recent events:" in text and "Last log lines of " + pod in text


def test_neighbours_health_does_not_matter(cluster: Cluster) -> None:
    cluster.kube.emulator.hold_unready(cluster.ns, "deployment=bar")
    cluster.install(("foo", "1"), ("bar", "1"))
    result = wait_for_rollout(cluster.client, cluster.ns, "foo", image("foo", "1"), 60, scope=SCOPE)
    assert result.ok, result.message
    summary = readiness_summary(cluster.client, cluster.ns, ["foo", "bar", "gone"], scope=SCOPE)
    assert summary == {"foo": (1, 1), "bar": (0, 1), "gone": (0, 0)}


def test_wrong_image_never_counts_as_rolled_out(cluster: Cluster) -> None:
    cluster.install(("foo", "1"))
    result = wait_for_rollout(
        cluster.client, cluster.ns, "foo", image("foo", "other"), 2, scope=SCOPE
    )
    assert result.timed_out
    assert "not " + image("foo", "other") in result.message


def test_missing_deployment_times_out(cluster: Cluster) -> None:
    result = wait_for_rollout(
        cluster.client, cluster.ns, "nothing", image("nothing", "1"), 1, scope=SCOPE
    )
    assert result.timed_out and result.deployment is None
    assert "no Deployment labelled deployment=nothing" in result.message
    d = diagnose(cluster.client, cluster.ns, "nothing", scope=SCOPE)
    assert d.deployment is None and d.pods == [] and d.logs == {}


def test_follow_logs_until_finds_startup_line(cluster: Cluster) -> None:
    cluster.install(("foo", "1"))
    assert wait_for_rollout(
        cluster.client, cluster.ns, "foo", image("foo", "1"), 60, scope=SCOPE
    ).ok
    pod = pods_for_deployment(cluster.client, cluster.ns, "foo", scope=SCOPE)[0].name
    seen: list[str] = []
    assert follow_logs_until(cluster.client, cluster.ns, pod, CODE_SERVER_STARTED, 30, seen.append)
    assert any("Started Dagster code server for file /app/foo/definitions.py" in s for s in seen)
    assert sum("Started Dagster code server" in s for s in seen) == 1, "each line seen once"

    tail = pod_logs(cluster.client, cluster.ns, pod, tail_lines=1)
    assert len(tail.splitlines()) == 1


def test_follow_logs_until_times_out_on_held_pod(cluster: Cluster) -> None:
    cluster.kube.emulator.hold_unready(cluster.ns, "deployment=foo")
    cluster.install(("foo", "1"))
    wait_for_rollout(cluster.client, cluster.ns, "foo", image("foo", "1"), 1, scope=SCOPE)
    pods = pods_for_deployment(cluster.client, cluster.ns, "foo", scope=SCOPE)
    assert pods
    seen: list[str] = []
    assert not follow_logs_until(
        cluster.client, cluster.ns, pods[0].name, timeout_s=2, on_line=seen.append
    )


def test_events_for_filters_by_object(cluster: Cluster) -> None:
    cluster.install(("foo", "1"), ("bar", "1"))
    assert wait_for_rollout(
        cluster.client, cluster.ns, "foo", image("foo", "1"), 60, scope=SCOPE
    ).ok
    pod = pods_for_deployment(cluster.client, cluster.ns, "foo", scope=SCOPE)[0].name
    events = events_for(cluster.client, cluster.ns, [pod])
    assert events and {e.object_name for e in events} == {pod}
    times = [e.last_seen for e in events if e.last_seen is not None]
    assert times == sorted(times, reverse=True)
    assert events_for(cluster.client, cluster.ns, []) == []


def test_crash_loop_keeps_waiting_and_recovers(cluster: Cluster) -> None:
    cluster.kube.emulator.hold_unready(cluster.ns, "deployment=foo")
    cluster.install(("foo", "1"))
    first = wait_for_rollout(cluster.client, cluster.ns, "foo", image("foo", "1"), 2, scope=SCOPE)
    assert first.timed_out, "CrashLoopBackOff is not fatal"
    cluster.kube.emulator.release_unready(cluster.ns, "deployment=foo")
    second = wait_for_rollout(cluster.client, cluster.ns, "foo", image("foo", "1"), 60, scope=SCOPE)
    assert second.ok, second.message


def test_diagnosis_text_of_crash_looping_pod(cluster: Cluster) -> None:
    cluster.kube.emulator.hold_unready(cluster.ns, "deployment=foo")
    cluster.install(("foo", "1"))
    result = wait_for_rollout(cluster.client, cluster.ns, "foo", image("foo", "1"), 3, scope=SCOPE)
    assert result.timed_out
    text = format_diagnosis(diagnose(cluster.client, cluster.ns, "foo", tail_lines=5, scope=SCOPE))
    print(text)
    assert "CrashLoopBackOff" in text
    assert "BackOff" in text and "Back-off restarting failed container" in text
    assert len([line for line in text.splitlines() if line.startswith("  | ")]) <= 5


def install_meshed(cluster: Cluster, scope: UserCode) -> RolloutResult:
    """Location foo, rolled out in a namespace whose pods get a mesh proxy first."""
    annotations = {"metadata": {"annotations": {MESH_INJECT: "enabled"}}}
    cluster.kube.emulator.patch("v1", "namespaces", None, cluster.ns, annotations)
    cluster.install(("foo", "1"))
    result = wait_for_rollout(cluster.client, cluster.ns, "foo", image("foo", "1"), 60, scope=scope)
    assert result.ok, result.message
    return result


def test_a_mesh_proxy_injected_first_neither_hides_the_rollout_nor_the_logs(
    cluster: Cluster,
) -> None:
    result = install_meshed(cluster, SCOPE)
    pod = result.pods[0]
    assert pod.images[0].startswith("cr.l5d.io/linkerd/proxy:"), "the proxy is listed first"
    assert (pod.container, pod.image) == ("dagster-user-deployments", image("foo", "1"))
    assert MESH_PROXY not in pod_logs(cluster.client, cluster.ns, pod.name, container=pod.container)
    seen: list[str] = []
    assert follow_logs_until(
        cluster.client,
        cluster.ns,
        pod.name,
        CODE_SERVER_STARTED,
        30,
        seen.append,
        container=pod.container,
    )
    d = diagnose(cluster.client, cluster.ns, "foo", scope=SCOPE)
    assert CODE_SERVER_STARTED.search(d.logs[pod.name]) and not d.unread
    assert d.image == image("foo", "1")


def test_a_location_named_daemon_never_sees_dagsters_own_daemon(cluster: Cluster) -> None:
    ours = f"{RELEASE}-dagster-user-deployments-daemon"
    theirs = cluster.kube.emulator.get("apps/v1", "deployments", cluster.ns, "dagster-daemon")
    assert theirs["metadata"]["labels"]["deployment"] == "daemon", "seeded like the main chart"
    cluster.kube.emulator.hold_unready(cluster.ns, "deployment=daemon,component=user-deployments")
    cluster.install(("daemon", "1"))
    result = wait_for_rollout(
        cluster.client, cluster.ns, "daemon", image("daemon", "1"), 2, scope=SCOPE
    )
    assert result.timed_out and result.deployment == ours
    assert [p.image for p in result.pods] == [image("daemon", "1")]
    assert readiness_summary(cluster.client, cluster.ns, ["daemon"], scope=SCOPE) == {
        "daemon": (0, 1)
    }
    d = diagnose(cluster.client, cluster.ns, "daemon", scope=SCOPE)
    assert d.deployment == ours and [p.image for p in d.pods] == [image("daemon", "1")]
    assert all(p.name.startswith(ours) for p in d.pods)


def test_diagnosis_without_permission_on_events_and_logs_says_what_it_could_not_read(
    cluster: Cluster,
) -> None:
    cluster.kube.emulator.hold_unready(cluster.ns, "deployment=foo")
    cluster.install(("foo", "1"))
    wait_for_rollout(cluster.client, cluster.ns, "foo", image("foo", "1"), 2, scope=SCOPE)
    emulator = cluster.kube.emulator
    emulator.inject_fault("GET", f"/namespaces/{cluster.ns}/events$", status=403, times=None)
    emulator.inject_fault("GET", "/pods/[^/]+/log$", status=403, times=None)
    try:
        d = diagnose(cluster.client, cluster.ns, "foo", scope=SCOPE)
    finally:
        emulator.clear_faults()
    pod = d.pods[0].name
    assert d.deployment and d.pods and d.events == [] and d.logs == {}
    assert d.unread["events"].startswith("the Kubernetes API answered 403")
    assert d.unread[f"the log of pod {pod}"].startswith("the Kubernetes API answered 403")
    text = format_diagnosis(d)
    assert "Recent events: could not be read (the Kubernetes API answered 403" in text
    assert f"Could not read the log of pod {pod}: the Kubernetes API answered 403" in text


def test_following_a_pod_whose_code_server_container_has_another_name_stops_with_the_fix(
    cluster: Cluster,
) -> None:
    misnamed = UserCode(RELEASE, container="code-server")
    result = install_meshed(cluster, misnamed)  # any container with the new image counts
    pod = result.pods[0]
    assert pod.container is None
    with pytest.raises(OperationError, match="code_server_container_name") as raised:
        follow_logs_until(cluster.client, cluster.ns, pod.name, timeout_s=30, container=None)
    assert "a container name must be specified" in str(raised.value)
    d = diagnose(cluster.client, cluster.ns, "foo", scope=misnamed)
    assert "none is named code-server" in d.unread[f"the log of pod {pod.name}"]
