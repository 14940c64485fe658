"""What `deployment check` and a failed deploy show about one location: its Deployment and
pods (required), then its recent events and last log lines (best effort).

Events, ReplicaSets and pod logs need permissions of their own (`events`, `replicasets`,
`pods/log`); when one is refused or fails, the diagnosis says what could not be read and why
instead of failing, so the reason a rollout failed is never replaced by a 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from dagster_uc.errors import OperationError
from dagster_uc.kube import describe_api_error
from dagster_uc.pods.cluster import find_deployment, list_pods
from dagster_uc.pods.logs import api_error, pod_logs
from dagster_uc.pods.model import Diagnosis, EventInfo, PodStatus, UserCode
from dagster_uc.pods.status import deployment_replicas, describe_pod, template_images

if TYPE_CHECKING:
    from lightkube import Client

T = TypeVar("T")


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


def _aware(when: datetime | None) -> datetime | None:
    if when is not None and when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when


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
        raise api_error(f"list the events in namespace {ns}", exc) from exc
    infos = [event_info(ev) for ev in raw if ev.involvedObject and ev.involvedObject.name in wanted]
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    infos.reverse()  # the server lists oldest first: keep ties newest first too
    infos.sort(key=lambda e: _aware(e.last_seen) or epoch, reverse=True)
    return infos[:limit]


def _best_effort(what: str, read: Callable[[], T], unread: dict[str, str], default: T) -> T:
    """`read()`, or `default` with `unread[what]` saying why it failed."""
    import httpx2
    from lightkube import ApiError

    try:
        return read()
    except (ApiError, httpx2.HTTPError) as exc:
        unread[what] = describe_api_error(exc)
    except OperationError as exc:
        cause = exc.__cause__
        failed = isinstance(cause, (ApiError, httpx2.HTTPError))
        unread[what] = describe_api_error(cause) if failed else str(exc)  # type: ignore[arg-type]
    return default


def _log_tail(
    client: Client, ns: str, p: PodStatus, tail_lines: int, scope: UserCode, unread: dict[str, str]
) -> str | None:
    """The last lines of `p`'s code-server container (its previous run's when it restarted
    and has printed nothing yet); None when they cannot be read (said in `unread`)."""
    what = f"the log of pod {p.name}"
    if p.container is None:
        unread[what] = (
            f"it has several containers and none is named {scope.container} "
            "(set code_server_container_name to the code server's container)"
        )
        return None

    def read(previous: bool = False) -> str:
        return pod_logs(client, ns, p.name, tail_lines, previous=previous, container=p.container)

    text = _best_effort(what, read, unread, None)
    if text is not None and not text.strip() and p.restarts:
        text = _best_effort(what, lambda: read(previous=True), unread, None)
    return text


def diagnose(
    client: Client, ns: str, name: str, tail_lines: int = 20, *, scope: UserCode
) -> Diagnosis:
    """Pods, recent events and last log lines of the location `name` of the release `scope`."""
    from lightkube import ApiError
    from lightkube.resources.apps_v1 import ReplicaSet

    try:
        dep = find_deployment(client, ns, name, scope)
        pods = list_pods(client, ns, name, scope)
    except ApiError as exc:
        raise api_error(f"inspect {name} in namespace {ns}", exc) from exc
    unread: dict[str, str] = {}
    replica_sets: list[str] = _best_effort(
        "its ReplicaSets",
        lambda: [
            rs.metadata.name
            for rs in client.list(ReplicaSet, namespace=ns, labels=scope.labels(name))
            if rs.metadata and rs.metadata.name
        ],
        unread,
        [],
    )
    dep_name = dep.metadata.name if dep is not None and dep.metadata else None
    objects = [n for n in [dep_name, *replica_sets, *(p.name for p in pods)] if n]
    events: list[EventInfo] = _best_effort(
        "events", lambda: events_for(client, ns, objects), unread, []
    )
    logs: dict[str, str] = {}
    for p in pods[-3:] if tail_lines else []:
        text = _log_tail(client, ns, p, tail_lines, scope, unread)
        if text is not None:
            logs[p.name] = text
    images = template_images(dep, scope.container) if dep is not None else []
    status = dep.status if dep is not None else None
    return Diagnosis(
        name=name,
        deployment=dep_name,
        desired=deployment_replicas(dep) if dep is not None else 0,
        ready=(status.readyReplicas or 0) if status else 0,
        image=images[0] if images else None,
        pods=pods,
        events=events,
        logs=logs,
        unread=unread,
        selector=scope.selector(name),
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
        selector = d.selector or f"deployment={d.name}"
        lines.append(f"Location {d.name}: no Deployment labelled {selector} on the cluster.")
    else:
        image = f", image {d.image}" if d.image else ""
        lines.append(
            f"Location {d.name}: Deployment {d.deployment}, {d.ready}/{d.desired} ready{image}"
        )
    lines.append("Pods:" if d.pods else "Pods: none")
    for p in d.pods:
        node = f" on {p.node}" if p.node else ""
        lines.append(f"  {describe_pod(p)} image {p.image or ', '.join(p.images)}{node}")
        if p.message:
            lines.append(f"    {p.message}")
    if "events" in d.unread:
        lines.append(f"Recent events: could not be read ({d.unread['events']})")
    else:
        lines.append("Recent events:" if d.events else "Recent events: none")
    for ev in d.events:
        times = f" (x{ev.count})" if ev.count > 1 else ""
        kind = f"{ev.object_kind.lower()}/" if ev.object_kind else ""
        lines.append(
            f"  {_ago(ev.last_seen, now):>8}  {ev.type:<7} {ev.reason:<18} "
            f"{kind}{ev.object_name}{times}: {ev.message}"
        )
    for pod, text in d.logs.items():
        body = text.splitlines()
        lines.append(f"Last log lines of {pod}:" if body else f"Last log lines of {pod}: none")
        lines.extend(f"  | {line}" for line in body)
    lines.extend(
        f"Could not read {what}: {why}" for what, why in d.unread.items() if what != "events"
    )
    return "\n".join(lines)
