"""Pure parts of the pod adapter: pod status, rollout judgement, diagnosis text."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from lightkube.models.apps_v1 import (
    DeploymentCondition,
    DeploymentSpec,
    DeploymentStatus,
)
from lightkube.models.core_v1 import (
    Container,
    ContainerState,
    ContainerStateRunning,
    ContainerStateWaiting,
    ContainerStatus,
    PodCondition,
    PodSpec,
    PodTemplateSpec,
)
from lightkube.models.core_v1 import PodStatus as K8sPodStatus
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod

from dagster_uc.pods import (
    Diagnosis,
    EventInfo,
    PodStatus,
    format_diagnosis,
    pod_status,
    rollout_state,
)

IMAGE = "reg:5000/foo:1.8.4-1"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def make_pod(
    name: str = "foo-1",
    image: str = IMAGE,
    ready: bool = True,
    waiting: str | None = None,
    restarts: int = 0,
) -> Pod:
    state = (
        ContainerState(waiting=ContainerStateWaiting(reason=waiting, message="details"))
        if waiting
        else ContainerState(running=ContainerStateRunning(startedAt=NOW))
    )
    return Pod(
        metadata=ObjectMeta(name=name, labels={"deployment": "foo"}),
        spec=PodSpec(containers=[Container(name="c", image=image)], nodeName="node-1"),
        status=K8sPodStatus(
            phase="Pending" if waiting else "Running",
            startTime=NOW,
            conditions=[PodCondition(type="Ready", status="True" if ready else "False")],
            containerStatuses=[
                ContainerStatus(
                    image=image,
                    imageID="",
                    name="c",
                    ready=ready,
                    restartCount=restarts,
                    state=state,
                )
            ],
        ),
    )


def make_dep(
    image: str = IMAGE,
    generation: int = 2,
    observed: int = 2,
    updated: int = 1,
    total: int = 1,
    ready: int = 1,
    available: int = 1,
    conditions: list[DeploymentCondition] | None = None,
) -> Deployment:
    return Deployment(
        metadata=ObjectMeta(name="rel-dagster-user-deployments-foo", generation=generation),
        spec=DeploymentSpec(
            replicas=1,
            selector=LabelSelector(matchLabels={"deployment": "foo"}),
            template=PodTemplateSpec(spec=PodSpec(containers=[Container(name="c", image=image)])),
        ),
        status=DeploymentStatus(
            observedGeneration=observed,
            updatedReplicas=updated,
            replicas=total,
            readyReplicas=ready,
            availableReplicas=available,
            conditions=conditions,
        ),
    )


def test_pod_status_fields() -> None:
    p = pod_status(make_pod(waiting="CrashLoopBackOff", ready=False, restarts=3))
    assert p.name == "foo-1"
    assert p.reason == "CrashLoopBackOff"
    assert p.restarts == 3
    assert not p.ready
    assert p.image == IMAGE
    assert p.node == "node-1"
    assert p.started_at == NOW
    assert pod_status(make_pod()).ready


def test_rollout_done() -> None:
    state = rollout_state(make_dep(), [pod_status(make_pod())], IMAGE, "foo")
    assert state.done and state.fatal_reason is None


def test_rollout_waits_for_observed_generation() -> None:
    state = rollout_state(make_dep(observed=1), [pod_status(make_pod())], IMAGE, "foo")
    assert not state.done and "new spec" in state.message


def test_rollout_waits_for_old_replicas() -> None:
    pods = [pod_status(make_pod()), pod_status(make_pod("foo-0", image="reg:5000/foo:old"))]
    state = rollout_state(make_dep(total=2), pods, IMAGE, "foo")
    assert not state.done and "old replica" in state.message


def test_rollout_needs_new_image_pod_ready() -> None:
    pods = [pod_status(make_pod(ready=False))]
    state = rollout_state(make_dep(ready=0, available=0), pods, IMAGE, "foo")
    assert not state.done
    assert "0/1 new pod(s) ready" in state.message and "foo-1" in state.message
    # Status counters alone are not enough: the pod of the new image must be Ready.
    assert not rollout_state(make_dep(), pods, IMAGE, "foo").done


def test_rollout_wrong_template_image_waits() -> None:
    state = rollout_state(make_dep(image="reg:5000/foo:other"), [], IMAGE, "foo")
    assert not state.done and state.fatal_reason is None and "not " + IMAGE in state.message


def test_rollout_missing_deployment_waits() -> None:
    state = rollout_state(None, [], IMAGE, "foo")
    assert not state.done and state.fatal_reason is None


def test_rollout_crashloop_keeps_waiting_invalid_image_is_fatal() -> None:
    crash = [pod_status(make_pod(ready=False, waiting="CrashLoopBackOff", restarts=2))]
    state = rollout_state(make_dep(ready=0, available=0), crash, IMAGE, "foo")
    assert not state.done and state.fatal_reason is None and "CrashLoopBackOff" in state.message
    bad = [pod_status(make_pod(ready=False, waiting="InvalidImageName"))]
    state = rollout_state(make_dep(ready=0, available=0), bad, IMAGE, "foo")
    assert state.fatal_reason == "InvalidImageName"
    assert "details" in state.message


def test_rollout_progress_deadline_is_fatal() -> None:
    cond = DeploymentCondition(
        type="Progressing", status="False", reason="ProgressDeadlineExceeded"
    )
    state = rollout_state(make_dep(conditions=[cond], ready=0), [], IMAGE, "foo")
    assert state.fatal_reason == "ProgressDeadlineExceeded"


def test_format_diagnosis() -> None:
    d = Diagnosis(
        name="foo",
        deployment="rel-dagster-user-deployments-foo",
        desired=1,
        ready=0,
        image=IMAGE,
        pods=[
            PodStatus(
                name="foo-1",
                phase="Running",
                ready=False,
                restarts=2,
                reason="CrashLoopBackOff",
                image=IMAGE,
                node="n1",
                started_at=NOW,
                message="back-off 10s restarting failed container",
            )
        ],
        events=[
            EventInfo(
                type="Warning",
                reason="BackOff",
                message="Back-off restarting failed container",
                count=4,
                last_seen=NOW - timedelta(seconds=30),
                object_name="foo-1",
                object_kind="Pod",
            )
        ],
        logs={"foo-1": "Traceback (most recent call last):\nImportError: no module x"},
    )
    text = format_diagnosis(d, now=NOW)
    assert "0/1 ready" in text
    assert "foo-1 (Running, not ready, 2 restarts, CrashLoopBackOff)" in text
    assert "30s ago" in text and "pod/foo-1 (x4): Back-off restarting failed container" in text
    assert "  | ImportError: no module x" in text
    empty = format_diagnosis(Diagnosis("bar", None, 0, 0, None, [], [], {}), now=NOW)
    assert "no Deployment labelled deployment=bar" in empty
    assert "Pods: none" in empty and "Recent events: none" in empty


def test_a_stale_progress_deadline_is_not_read_before_the_new_spec_is_observed() -> None:
    """kubectl's order: the Progressing condition counts only once observedGeneration has
    caught up; a location stuck past its deadline is not judged failed when the fix lands."""
    stale = DeploymentCondition(
        type="Progressing", status="False", reason="ProgressDeadlineExceeded"
    )
    dep = make_dep(generation=3, observed=2, conditions=[stale], ready=0, available=0)
    state = rollout_state(dep, [], IMAGE, "foo")
    assert not state.done and state.fatal_reason is None
    assert "new spec" in state.message


def test_a_sidecar_listed_first_is_not_taken_for_the_code_server() -> None:
    pod = make_pod()
    assert pod.spec is not None
    pod.spec.containers = [
        Container(name="istio-proxy", image="istio/proxyv2:1.24.0"),
        Container(name="dagster-user-deployments", image=IMAGE),
    ]
    p = pod_status(pod)
    assert (p.container, p.image) == ("dagster-user-deployments", IMAGE)
    assert rollout_state(make_dep(), [p], IMAGE, "foo").done
    other = pod_status(pod, "code")
    assert other.container is None, "several containers, none named: no container to read"
    assert other.images == ("istio/proxyv2:1.24.0", IMAGE)
    assert rollout_state(make_dep(), [other], IMAGE, "foo").done


def test_unreadable_parts_of_a_diagnosis_say_why() -> None:
    d = Diagnosis(
        "foo",
        "rel-dagster-user-deployments-foo",
        1,
        0,
        IMAGE,
        [],
        [],
        {},
        unread={
            "events": "the Kubernetes API answered 403: events is forbidden",
            "the log of pod foo-1": "the Kubernetes API answered 403: pods/log is forbidden",
        },
    )
    text = format_diagnosis(d, now=NOW)
    assert "Recent events: could not be read (the Kubernetes API answered 403: " in text
    assert "Recent events: none" not in text
    assert "Could not read the log of pod foo-1: the Kubernetes API answered 403: " in text
