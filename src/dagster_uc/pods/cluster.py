"""Cluster reads of the locations of one user-code release: its Deployment and pods, the
rollout wait, and the readiness of every location from one pod list.

Every lookup is narrowed to the release's labels (`UserCode.labels`), so a location named
`daemon` or `webserver` never sees Dagster's own Deployments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from dagster_uc.pods.logs import api_error, backoff
from dagster_uc.pods.model import LABEL, PodStatus, RolloutResult, RolloutState, UserCode
from dagster_uc.pods.status import pod_status, rollout_state

if TYPE_CHECKING:
    from lightkube import Client
    from lightkube.resources.apps_v1 import Deployment


def find_deployment(client: Client, ns: str, name: str, scope: UserCode) -> Deployment | None:
    """The Deployment of location `name` in the user-code release (None: not rendered yet)."""
    from lightkube.resources.apps_v1 import Deployment

    found = list(client.list(Deployment, namespace=ns, labels=scope.labels(name)))
    if not found:
        return None
    found.sort(
        key=lambda d: (
            not (d.metadata and (d.metadata.name or "").endswith(f"-{name}")),
            d.metadata.name if d.metadata else "",
        )
    )
    return found[0]


def list_pods(client: Client, ns: str, name: str, scope: UserCode) -> list[PodStatus]:
    """The pods of location `name`, oldest first (API errors propagate)."""
    from lightkube.resources.core_v1 import Pod

    pods = [
        pod_status(p, scope.container)
        for p in client.list(Pod, namespace=ns, labels=scope.labels(name))
    ]
    pods.sort(key=lambda p: (p.started_at is None, p.started_at or datetime.min, p.name))
    return pods


def pods_for_deployment(client: Client, ns: str, name: str, *, scope: UserCode) -> list[PodStatus]:
    """The location's pods, oldest first; an API error becomes an OperationError."""
    from lightkube import ApiError

    try:
        return list_pods(client, ns, name, scope)
    except ApiError as exc:
        raise api_error(f"list the pods of {name} in namespace {ns}", exc) from exc


def wait_for_rollout(
    client: Client,
    ns: str,
    name: str,
    image: str,
    timeout_s: float,
    on_progress: Callable[[str], None] | None = None,
    *,
    scope: UserCode,
    before_poll: Callable[[], None] = lambda: None,
) -> RolloutResult:
    """Poll (backoff 0.2 s to 2 s) until the location's rollout of `image` is complete.

    Returns ok, or not ok with `timed_out` or a fatal `reason` (see `pods.status`).
    `on_progress` gets a short message whenever the state changes. `before_poll` runs before
    each poll; what it raises ends the wait (the deploy lock's check that it is still held).
    """
    import httpx2
    from lightkube import ApiError

    deadline = time.monotonic() + timeout_s
    last_message = ""
    pods: list[PodStatus] = []
    dep_name: str | None = None
    for delay in backoff():
        before_poll()
        try:
            dep = find_deployment(client, ns, name, scope)
            pods = list_pods(client, ns, name, scope)
            dep_name = dep.metadata.name if dep is not None and dep.metadata else None
            state = rollout_state(dep, pods, image, name, scope.release)
        except ApiError as exc:
            if exc.status.code in (401, 403, 404):
                raise api_error(f"watch the rollout of {name} in namespace {ns}", exc) from exc
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


def readiness_summary(
    client: Client, ns: str, names: list[str], *, scope: UserCode
) -> dict[str, tuple[int, int]]:
    """`{name: (ready pods, pods)}` for each name, from ONE pod list (terminating pods excluded)."""
    from lightkube import ApiError, operators
    from lightkube.resources.core_v1 import Pod

    summary = {n: (0, 0) for n in names}
    if not names:
        return summary
    labels = {**scope.labels(), LABEL: operators.exists()}
    try:
        raw = list(client.list(Pod, namespace=ns, labels=labels))
    except ApiError as exc:
        raise api_error(f"list the pods in namespace {ns}", exc) from exc
    for pod in raw:
        pod_labels = pod.metadata.labels or {} if pod.metadata else {}
        owner = pod_labels.get(LABEL)
        if owner not in summary:
            continue
        p = pod_status(pod, scope.container)
        if p.terminating or p.phase in ("Succeeded", "Failed"):
            continue
        ready, total = summary[owner]
        summary[owner] = (ready + int(p.ready), total + 1)
    return summary
