"""Pod status, events, logs and the rollout wait of one code location (lightkube, sync).

Dagster's user-deployments chart labels each location's Deployment, ReplicaSets and Pods
with `deployment: <name>`; everything here selects by that label.

Success of a rollout is judged by this location alone (never its neighbours): the Deployment
has observed its newest spec, its pod template runs the expected image, all replicas are
updated, ready and available, no old replica is left, and the pods running the new image are
Ready. Waiting ends early only on states that cannot recover without a new deploy
(`FATAL_REASONS`: an invalid image name, an image that may never be pulled, or the
Deployment's progress deadline passed). `CrashLoopBackOff`, `ErrImagePull`,
`ImagePullBackOff` and `CreateContainerConfigError` keep waiting until the timeout: the
kubelet retries them and they recover (a registry hiccup, a Secret created meanwhile).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dagster_uc.errors import OperationError

if TYPE_CHECKING:
    from lightkube import Client
    from lightkube.resources.apps_v1 import Deployment
    from lightkube.resources.core_v1 import Pod

LABEL = "deployment"
#: The line Dagster's code server prints once it serves (`dagster api grpc`).
CODE_SERVER_STARTED = re.compile(r"Started Dagster code server")
#: Pod/container reasons that never recover by waiting.
FATAL_REASONS = frozenset({"InvalidImageName", "ErrImageNeverPull"})
_BACKOFF_START_S = 0.2
_BACKOFF_MAX_S = 2.0
_BACKOFF_FACTOR = 1.5
#: Longest silence a followed log stream may block before the deadline is checked again.
_FOLLOW_SLICE_S = 1.0


@dataclass
class PodStatus:
    """What a user needs to know about one pod."""

    name: str
    phase: str
    ready: bool
    restarts: int
    reason: str | None
    image: str
    node: str | None
    started_at: datetime | None
    message: str | None = None
    terminating: bool = False


@dataclass
class EventInfo:
    """One Kubernetes event about the location's objects."""

    type: str
    reason: str
    message: str
    count: int
    last_seen: datetime | None
    object_name: str
    object_kind: str = ""


@dataclass
class RolloutResult:
    """Outcome of `wait_for_rollout`: `ok`, or why not (`timed_out` or a fatal `reason`)."""

    ok: bool
    timed_out: bool
    message: str
    pods: list[PodStatus] = field(default_factory=list)
    deployment: str | None = None
    reason: str | None = None


@dataclass
class Diagnosis:
    """Everything `deployment check` and a failed deploy print about one location."""

    name: str
    deployment: str | None
    desired: int
    ready: int
    image: str | None
    pods: list[PodStatus]
    events: list[EventInfo]
    logs: dict[str, str]


@dataclass(frozen=True)
class RolloutState:
    """One look at the rollout (pure result of `rollout_state`)."""

    done: bool
    message: str
    fatal_reason: str | None = None


# ---------------------------------------------------------------- pure helpers


def pod_status(pod: Pod) -> PodStatus:
    """PodStatus of a lightkube Pod (pure)."""
    meta = pod.metadata
    spec = pod.spec
    status = pod.status
    containers = list(spec.containers) if spec and spec.containers else []
    statuses = list(status.containerStatuses or []) if status else []
    init_statuses = list(status.initContainerStatuses or []) if status else []
    ready = False
    if status and status.conditions:
        ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions)
    reason, message = _pod_reason(pod, init_statuses + statuses)
    return PodStatus(
        name=meta.name if meta and meta.name else "",
        phase=(status.phase if status and status.phase else "Pending"),
        ready=ready,
        restarts=sum(cs.restartCount or 0 for cs in statuses),
        reason=reason,
        image=containers[0].image or "" if containers else "",
        node=spec.nodeName if spec else None,
        started_at=status.startTime if status else None,
        message=message,
        terminating=bool(meta and meta.deletionTimestamp),
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


def _deployment_replicas(dep: Deployment) -> int:
    spec = dep.spec
    return spec.replicas if spec and spec.replicas is not None else 1


def _template_images(dep: Deployment) -> list[str]:
    spec = dep.spec
    if not spec or not spec.template or not spec.template.spec:
        return []
    return [c.image or "" for c in spec.template.spec.containers or []]


def describe_pod(p: PodStatus) -> str:
    """`foo-abc12 (Running, not ready, 2 restarts, CrashLoopBackOff)`."""
    parts = [p.phase, "ready" if p.ready else "not ready"]
    if p.restarts:
        parts.append(f"{p.restarts} restart{'s' if p.restarts != 1 else ''}")
    if p.reason:
        parts.append(p.reason)
    return f"{p.name} ({', '.join(parts)})"


def rollout_state(
    dep: Deployment | None, pods: list[PodStatus], image: str, name: str
) -> RolloutState:
    """Is the location's rollout of `image` complete, still going, or hopeless? (pure)"""
    if dep is None:
        return RolloutState(False, f"no Deployment labelled {LABEL}={name} exists yet")
    dep_name = dep.metadata.name if dep.metadata else name
    status = dep.status
    for cond in (status.conditions or []) if status else []:
        if (
            cond.type == "Progressing"
            and cond.status == "False"
            and cond.reason == "ProgressDeadlineExceeded"
        ):
            return RolloutState(
                False,
                f"Deployment {dep_name} exceeded its progress deadline",
                "ProgressDeadlineExceeded",
            )
    images = _template_images(dep)
    if image not in images:
        shown = ", ".join(images) or "no image"
        return RolloutState(False, f"Deployment {dep_name} runs {shown}, not {image}")
    generation = dep.metadata.generation if dep.metadata else None
    observed = status.observedGeneration if status else None
    if generation is not None and (observed or 0) < generation:
        return RolloutState(False, f"waiting for Deployment {dep_name} to pick up the new spec")
    desired = _deployment_replicas(dep)
    new_pods = [p for p in pods if p.image == image and not p.terminating]
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


def _event_time(ev: Any) -> datetime | None:
    series = getattr(ev, "series", None)
    for value in (
        getattr(series, "lastObservedTime", None) if series else None,
        ev.lastTimestamp,
        ev.eventTime,
        ev.firstTimestamp,
        ev.metadata.creationTimestamp if ev.metadata else None,
    ):
        if value is not None:
            return value if isinstance(value, datetime) else None
    return None


def event_info(ev: Any) -> EventInfo:
    """EventInfo of a lightkube core/v1 Event (pure)."""
    series = getattr(ev, "series", None)
    count = ev.count or (series.count if series and series.count else 1)
    obj = ev.involvedObject
    return EventInfo(
        type=ev.type or "Normal",
        reason=ev.reason or "",
        message=(ev.message or "").strip(),
        count=count,
        last_seen=_event_time(ev),
        object_name=obj.name or "" if obj else "",
        object_kind=obj.kind or "" if obj else "",
    )


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "?"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def format_diagnosis(d: Diagnosis, now: datetime | None = None) -> str:
    """Plain text of a Diagnosis for the terminal (pure)."""
    now = now or datetime.now(timezone.utc)
    lines: list[str] = []
    if d.deployment is None:
        lines.append(f"Location {d.name}: no Deployment labelled {LABEL}={d.name} on the cluster.")
    else:
        image = f", image {d.image}" if d.image else ""
        lines.append(
            f"Location {d.name}: Deployment {d.deployment}, {d.ready}/{d.desired} ready{image}"
        )
    lines.append("Pods:" if d.pods else "Pods: none")
    for p in d.pods:
        node = f" on {p.node}" if p.node else ""
        lines.append(f"  {describe_pod(p)} image {p.image}{node}")
        if p.message:
            lines.append(f"    {p.message}")
    lines.append("Recent events:" if d.events else "Recent events: none")
    for ev in d.events:
        times = f" (x{ev.count})" if ev.count > 1 else ""
        kind = f"{ev.object_kind.lower()}/" if ev.object_kind else ""
        lines.append(
            f"  {_ago(ev.last_seen, now):>8}  {ev.type:<7} {ev.reason:<18} "
            f"{kind}{ev.object_name}{times}: {ev.message}"
        )
    for pod, text in d.logs.items():
        body = [line for line in text.splitlines()]
        lines.append(f"Last log lines of {pod}:" if body else f"Last log lines of {pod}: none")
        lines.extend(f"  | {line}" for line in body)
    return "\n".join(lines)


# ---------------------------------------------------------------- cluster reads


def _api_error(action: str, exc: Exception) -> OperationError:
    status = getattr(exc, "status", None)
    message = getattr(status, "message", None) or str(exc)
    return OperationError(f"Could not {action}: {message}.")


def _find_deployment(client: Client, ns: str, name: str) -> Deployment | None:
    from lightkube.resources.apps_v1 import Deployment

    found = list(client.list(Deployment, namespace=ns, labels={LABEL: name}))
    if not found:
        return None
    found.sort(
        key=lambda d: (
            not (d.metadata and (d.metadata.name or "").endswith(f"-{name}")),
            d.metadata.name if d.metadata else "",
        )
    )
    return found[0]


def _list_pods(client: Client, ns: str, name: str) -> list[PodStatus]:
    from lightkube.resources.core_v1 import Pod

    pods = [pod_status(p) for p in client.list(Pod, namespace=ns, labels={LABEL: name})]
    pods.sort(key=lambda p: (p.started_at is None, p.started_at or datetime.min, p.name))
    return pods


def pods_for_deployment(client: Client, ns: str, name: str) -> list[PodStatus]:
    """The location's pods (label `deployment=<name>`), oldest first."""
    from lightkube import ApiError

    try:
        return _list_pods(client, ns, name)
    except ApiError as exc:
        raise _api_error(f"list the pods of {name} in namespace {ns}", exc) from exc


def events_for(
    client: Client, ns: str, object_names: Iterable[str], limit: int = 20
) -> list[EventInfo]:
    """Events about any of `object_names`, most recent first (one list call, filtered here)."""
    from lightkube import ApiError
    from lightkube.resources.core_v1 import Event

    wanted = set(object_names)
    if not wanted:
        return []
    try:
        raw = list(client.list(Event, namespace=ns))
    except ApiError as exc:
        raise _api_error(f"list the events in namespace {ns}", exc) from exc
    infos = [event_info(ev) for ev in raw if ev.involvedObject and ev.involvedObject.name in wanted]
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    infos.reverse()  # the server lists oldest first: keep ties newest first too
    infos.sort(key=lambda e: _aware(e.last_seen) or epoch, reverse=True)
    return infos[:limit]


def _aware(when: datetime | None) -> datetime | None:
    if when is not None and when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when


def _open_log_stream(
    client: Client, ns: str, pod: str, params: dict[str, Any], read_timeout: float | None
) -> Any:
    """A streamed pod-log response with our own read timeout.

    `Client.log` disables the read timeout when following and has no `previous`; this builds
    the same request through lightkube's request helpers with the parameters we need.
    """
    import httpx2
    from lightkube.resources.core_v1 import PodLog

    inner = client._client
    br = inner.prepare_request("get", PodLog, name=pod, namespace=ns, params=params)
    br.timeout = httpx2.Timeout(10.0, read=read_timeout)
    resp = inner.send(inner.build_adapter_request(br), stream=True)
    if resp.is_error:
        resp.read()
        resp.close()
        inner.raise_for_status(resp)
    return resp


def pod_logs(
    client: Client, ns: str, pod: str, tail_lines: int = 50, *, previous: bool = False
) -> str:
    """The last `tail_lines` log lines of `pod` ("" when its container has not started yet)."""
    from lightkube import ApiError

    params: dict[str, Any] = {"tailLines": tail_lines}
    if previous:
        params["previous"] = "true"
    try:
        resp = _open_log_stream(client, ns, pod, params, read_timeout=30.0)
    except ApiError as exc:
        if exc.status.code in (400, 404):
            return ""
        raise _api_error(f"read the log of pod {pod}", exc) from exc
    try:
        return "\n".join(resp.iter_lines())
    finally:
        resp.close()


def follow_logs_until(
    client: Client,
    ns: str,
    pod: str,
    pattern: re.Pattern[str] = CODE_SERVER_STARTED,
    timeout_s: float = 60.0,
    on_line: Callable[[str], None] | None = None,
) -> bool:
    """Follow `pod`'s log until a line matches `pattern` (True) or `timeout_s` passes (False).

    Streams with `follow=true` and a short read timeout, so a silent pod never blocks past
    the deadline; reconnects when the stream ends or stalls (the container restarted or has
    not started yet). `on_line` sees each line once.
    """
    import httpx2
    from lightkube import ApiError

    deadline = time.monotonic() + timeout_s
    delivered = 0
    delay = _BACKOFF_START_S
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            resp = _open_log_stream(
                client, ns, pod, {"follow": "true"}, read_timeout=min(remaining, _FOLLOW_SLICE_S)
            )
        except ApiError as exc:
            if exc.status.code == 404:
                raise OperationError(f"Pod {pod} does not exist in namespace {ns}.") from exc
            if exc.status.code != 400:
                raise _api_error(f"follow the log of pod {pod}", exc) from exc
            resp = None
        except httpx2.TransportError:
            resp = None
        if resp is not None:
            try:
                for index, line in enumerate(resp.iter_lines(), start=1):
                    if index > delivered:
                        delivered = index
                        if on_line is not None:
                            on_line(line)
                    if pattern.search(line):
                        return True
                    if time.monotonic() >= deadline:
                        return False
                    delay = _BACKOFF_START_S
            except httpx2.ReadTimeout:
                continue
            except httpx2.TransportError:
                pass
            finally:
                resp.close()
        time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
        delay = min(delay * _BACKOFF_FACTOR, _BACKOFF_MAX_S)


def _backoff() -> Iterator[float]:
    delay = _BACKOFF_START_S
    while True:
        yield delay
        delay = min(delay * _BACKOFF_FACTOR, _BACKOFF_MAX_S)


def wait_for_rollout(
    client: Client,
    ns: str,
    name: str,
    image: str,
    timeout_s: float,
    on_progress: Callable[[str], None] | None = None,
) -> RolloutResult:
    """Poll (backoff 0.2 s to 2 s) until the location's rollout of `image` is complete.

    Returns ok, or not ok with `timed_out` or a fatal `reason` (see the module docstring).
    `on_progress` gets a short message whenever the state changes.
    """
    import httpx2
    from lightkube import ApiError

    deadline = time.monotonic() + timeout_s
    last_message = ""
    pods: list[PodStatus] = []
    dep_name: str | None = None
    for delay in _backoff():
        try:
            dep = _find_deployment(client, ns, name)
            pods = _list_pods(client, ns, name)
            dep_name = dep.metadata.name if dep is not None and dep.metadata else None
            state = rollout_state(dep, pods, image, name)
        except ApiError as exc:
            if exc.status.code in (401, 403, 404):
                raise _api_error(f"watch the rollout of {name} in namespace {ns}", exc) from exc
            state = RolloutState(False, f"the API server answered {exc.status.code}; retrying")
        except httpx2.TransportError as exc:
            state = RolloutState(False, f"the API server is unreachable ({exc}); retrying")
        if state.message != last_message:
            last_message = state.message
            if on_progress is not None:
                on_progress(state.message)
        if state.done:
            return RolloutResult(True, False, state.message, pods, dep_name)
        if state.fatal_reason:
            return RolloutResult(
                False, False, state.message, pods, dep_name, reason=state.fatal_reason
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return RolloutResult(
                False,
                True,
                f"timed out after {timeout_s:g}s: {state.message}",
                pods,
                dep_name,
                reason="Timeout",
            )
        time.sleep(min(delay, remaining))
    raise AssertionError("unreachable")


def diagnose(client: Client, ns: str, name: str, tail_lines: int = 20) -> Diagnosis:
    """Pods, recent events and last log lines of the location `name`."""
    from lightkube import ApiError
    from lightkube.resources.apps_v1 import ReplicaSet

    try:
        dep = _find_deployment(client, ns, name)
        pods = _list_pods(client, ns, name)
        replica_sets = [
            rs.metadata.name
            for rs in client.list(ReplicaSet, namespace=ns, labels={LABEL: name})
            if rs.metadata and rs.metadata.name
        ]
    except ApiError as exc:
        raise _api_error(f"inspect {name} in namespace {ns}", exc) from exc
    dep_name = dep.metadata.name if dep is not None and dep.metadata else None
    objects = [n for n in [dep_name, *replica_sets, *(p.name for p in pods)] if n]
    events = events_for(client, ns, objects)
    logs: dict[str, str] = {}
    for p in pods[-3:]:
        text = pod_logs(client, ns, p.name, tail_lines)
        if not text.strip() and p.restarts:
            text = pod_logs(client, ns, p.name, tail_lines, previous=True)
        logs[p.name] = text
    images = _template_images(dep) if dep is not None else []
    status = dep.status if dep is not None else None
    return Diagnosis(
        name=name,
        deployment=dep_name,
        desired=_deployment_replicas(dep) if dep is not None else 0,
        ready=(status.readyReplicas or 0) if status else 0,
        image=images[0] if images else None,
        pods=pods,
        events=events,
        logs=logs,
    )


def readiness_summary(client: Client, ns: str, names: list[str]) -> dict[str, tuple[int, int]]:
    """`{name: (ready pods, pods)}` for each name, from ONE pod list (terminating pods excluded)."""
    from lightkube import ApiError, operators
    from lightkube.resources.core_v1 import Pod

    summary = {n: (0, 0) for n in names}
    if not names:
        return summary
    try:
        raw = list(client.list(Pod, namespace=ns, labels={LABEL: operators.exists()}))
    except ApiError as exc:
        raise _api_error(f"list the pods in namespace {ns}", exc) from exc
    for pod in raw:
        labels = pod.metadata.labels or {} if pod.metadata else {}
        owner = labels.get(LABEL)
        if owner not in summary:
            continue
        p = pod_status(pod)
        if p.terminating or p.phase in ("Succeeded", "Failed"):
            continue
        ready, total = summary[owner]
        summary[owner] = (ready + int(p.ready), total + 1)
    return summary
