"""What the pod adapter reads and returns: the user-code scope and plain result types."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster_uc.config import Config

#: Label of a location's Deployment, ReplicaSets and Pods (`deployment: <name>`).
LABEL = "deployment"
#: Labels Dagster's user-deployments chart puts on everything it renders (selector labels).
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "component"
USER_DEPLOYMENTS = "user-deployments"
#: The code-server container's name in Dagster's user-deployments chart (`{{ .Chart.Name }}`).
CODE_SERVER_CONTAINER = "dagster-user-deployments"
#: The line Dagster's code server prints once it serves (`dagster api grpc`).
CODE_SERVER_STARTED = re.compile(r"Started Dagster code server")
#: Pod/container reasons that never recover by waiting.
FATAL_REASONS = frozenset({"InvalidImageName", "ErrImageNeverPull"})


@dataclass(frozen=True)
class UserCode:
    """Where code locations live: the user-code Helm release and its code-server container.

    Dagster's main chart labels its own daemon `deployment: daemon`, and its own user
    deployments `deployment: <name>` too: a location is found by `deployment=<name>` AND the
    user-code release's selector labels, never by `deployment=<name>` alone.
    """

    release: str
    container: str = CODE_SERVER_CONTAINER

    @classmethod
    def of(cls, config: Config) -> UserCode:
        """The scope a configuration names (`helm_release_name`, `code_server_container_name`)."""
        return cls(config.helm_release_name, config.code_server_container_name)

    def labels(self, name: str | None = None) -> dict[str, Any]:
        """The label selector of location `name` (all locations of the release without)."""
        labels: dict[str, Any] = {INSTANCE_LABEL: self.release, COMPONENT_LABEL: USER_DEPLOYMENTS}
        if name is not None:
            labels[LABEL] = name
        return labels

    def selector(self, name: str) -> str:
        """`key=value,...` text of `labels(name)`, for messages."""
        return ",".join(f"{k}={v}" for k, v in self.labels(name).items())


@dataclass
class PodStatus:
    """What a user needs to know about one pod (its code-server container, when it has one)."""

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
    #: The container to read logs from (None: the pod has several and none is the code server).
    container: str | None = None
    #: Images of all its containers (sidecars included), in the pod's order.
    images: tuple[str, ...] = ()


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
    """Everything `deployment check` and a failed deploy print about one location.

    `unread` says what could not be read (`events`, `the log of pod x`) and why (a missing
    permission, an API error):
    diagnosis is best effort and never hides the reason it was asked for.
    """

    name: str
    deployment: str | None
    desired: int
    ready: int
    image: str | None
    pods: list[PodStatus]
    events: list[EventInfo]
    logs: dict[str, str]
    unread: dict[str, str] = field(default_factory=dict)
    selector: str = ""


@dataclass(frozen=True)
class RolloutState:
    """One look at the rollout (pure result of `rollout_state`)."""

    done: bool
    message: str
    fatal_reason: str | None = None
