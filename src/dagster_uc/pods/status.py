"""Pure judgements of pods and Deployments: pod status, and whether a rollout is done.

Success of a rollout is judged by this location alone (never its neighbours), in the order
`kubectl rollout status` uses: the Deployment runs the expected image; it has observed its
newest spec (`observedGeneration >= generation`), and only then is its Progressing condition
read (a `ProgressDeadlineExceeded` left from an earlier, stuck rollout is stale until the
controller has seen the new spec); all replicas are updated, ready and available, no old
replica is left, and the pods running the new image are Ready. Waiting ends early only on
states that cannot recover without a new deploy (`FATAL_REASONS`, or the progress deadline
passed). `CrashLoopBackOff`, `ErrImagePull`, `ImagePullBackOff` and
`CreateContainerConfigError` keep waiting until the timeout: the kubelet retries them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagster_uc.pods.model import (
    CODE_SERVER_CONTAINER,
    FATAL_REASONS,
    LABEL,
    PodStatus,
    RolloutState,
)

if TYPE_CHECKING:
    from lightkube.resources.apps_v1 import Deployment
    from lightkube.resources.core_v1 import Pod


def code_container(names: list[str], wanted: str) -> str | None:
    """The code-server container among `names`: the one named `wanted`, else the only one.

    Service meshes (Istio, Linkerd) inject a proxy container, often first: a pod of several
    containers without one named `wanted` has no code-server container we can name."""
    if wanted in names:
        return wanted
    return names[0] if len(names) == 1 else None


def pod_status(pod: Pod, container: str = CODE_SERVER_CONTAINER) -> PodStatus:
    """PodStatus of a lightkube Pod, seen through its code-server container `container` (pure)."""
    meta = pod.metadata
    spec = pod.spec
    status = pod.status
    containers = list(spec.containers) if spec and spec.containers else []
    chosen = code_container([c.name for c in containers], container)
    statuses = list(status.containerStatuses or []) if status else []
    init_statuses = list(status.initContainerStatuses or []) if status else []
    own = [cs for cs in statuses if cs.name == chosen]
    others = [cs for cs in statuses if cs.name != chosen]
    ready = False
    if status and status.conditions:
        ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions)
    reason, message = _pod_reason(pod, init_statuses + own + others)
    image = next((c.image or "" for c in containers if c.name == chosen), "")
    return PodStatus(
        name=meta.name if meta and meta.name else "",
        phase=(status.phase if status and status.phase else "Pending"),
        ready=ready,
        restarts=sum(cs.restartCount or 0 for cs in (own if chosen else statuses)),
        reason=reason,
        image=image,
        node=spec.nodeName if spec else None,
        started_at=status.startTime if status else None,
        message=message,
        terminating=bool(meta and meta.deletionTimestamp),
        container=chosen,
        images=tuple(c.image or "" for c in containers),
    )


def _pod_reason(pod: Pod, statuses: list[Any]) -> tuple[str | None, str | None]:
    if pod.metadata and pod.metadata.deletionTimestamp:
        return "Terminating", None
    for cs in statuses:
        state = cs.state
        if state and state.waiting and state.waiting.reason:
            return state.waiting.reason, state.waiting.message
        if state and state.terminated and state.terminated.reason:
            return state.terminated.reason, state.terminated.message
    status = pod.status
    if status and status.reason:
        return status.reason, status.message
    for cond in (status.conditions or []) if status else []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return cond.reason or "Unschedulable", cond.message
    return None, None


def deployment_replicas(dep: Deployment) -> int:
    spec = dep.spec
    return spec.replicas if spec and spec.replicas is not None else 1


def template_images(dep: Deployment, container: str = CODE_SERVER_CONTAINER) -> list[str]:
    """The images of the Deployment's pod template, the code-server container's first."""
    spec = dep.spec
    if not spec or not spec.template or not spec.template.spec:
        return []
    containers = list(spec.template.spec.containers or [])
    chosen = code_container([c.name for c in containers], container)
    containers.sort(key=lambda c: c.name != chosen)
    return [c.image or "" for c in containers]


def runs_image(p: PodStatus, image: str) -> bool:
    """Does pod `p` run `image` in its code-server container (any container, when unnamed)?"""
    return p.image == image if p.container else image in p.images


def describe_pod(p: PodStatus) -> str:
    """`foo-abc12 (Running, not ready, 2 restarts, CrashLoopBackOff)`."""
    parts = [p.phase, "ready" if p.ready else "not ready"]
    if p.restarts:
        parts.append(f"{p.restarts} restart{'s' if p.restarts != 1 else ''}")
    if p.reason:
        parts.append(p.reason)
    return f"{p.name} ({', '.join(parts)})"


def _progress_deadline_exceeded(dep: Deployment) -> bool:
    status = dep.status
    return any(
        cond.type == "Progressing"
        and cond.status == "False"
        and cond.reason == "ProgressDeadlineExceeded"
        for cond in ((status.conditions or []) if status else [])
    )


def rollout_state(
    dep: Deployment | None,
    pods: list[PodStatus],
    image: str,
    name: str,
    release: str | None = None,
) -> RolloutState:
    """Is the location's rollout of `image` complete, still going, or hopeless? (pure)"""
    if dep is None:
        of = f" of release {release}" if release else ""
        return RolloutState(False, f"no Deployment labelled {LABEL}={name}{of} exists yet")
    dep_name = dep.metadata.name if dep.metadata else name
    status = dep.status
    images = template_images(dep)
    if image not in images:
        shown = ", ".join(images) or "no image"
        return RolloutState(False, f"Deployment {dep_name} runs {shown}, not {image}")
    generation = dep.metadata.generation if dep.metadata else None
    observed = status.observedGeneration if status else None
    if generation is not None and (observed or 0) < generation:
        return RolloutState(False, f"waiting for Deployment {dep_name} to pick up the new spec")
    if _progress_deadline_exceeded(dep):
        return RolloutState(
            False,
            f"Deployment {dep_name} exceeded its progress deadline",
            "ProgressDeadlineExceeded",
        )
    desired = deployment_replicas(dep)
    new_pods = [p for p in pods if runs_image(p, image) and not p.terminating]
    for p in new_pods:
        if p.reason in FATAL_REASONS:
            detail = f": {p.message}" if p.message else ""
            return RolloutState(False, f"pod {p.name} cannot start: {p.reason}{detail}", p.reason)
    updated = (status.updatedReplicas or 0) if status else 0
    total = (status.replicas or 0) if status else 0
    ready = (status.readyReplicas or 0) if status else 0
    available = (status.availableReplicas or 0) if status else 0
    ready_new = [p for p in new_pods if p.ready]
    if (
        updated >= desired
        and total <= updated
        and ready >= desired
        and available >= desired
        and len(ready_new) >= desired
    ):
        return RolloutState(True, f"{len(ready_new)}/{desired} pod(s) of {image} ready")
    if updated < desired:
        waiting = f"{updated}/{desired} replica(s) updated"
    elif total > updated:
        waiting = f"{total - updated} old replica(s) pending termination"
    else:
        waiting = f"{len(ready_new)}/{desired} new pod(s) ready"
    not_ready = [describe_pod(p) for p in new_pods if not p.ready]
    if not_ready:
        waiting += "; " + ", ".join(not_ready)
    return RolloutState(False, waiting)
