"""Pods of the code locations of one user-code release: status, rollout wait, logs, diagnosis.

Dagster's user-deployments chart labels each location's Deployment, ReplicaSets and Pods with
`deployment: <name>` next to the release's selector labels (`app.kubernetes.io/instance`,
`component: user-deployments`); every lookup uses all of them (`UserCode`), and every log
read names the code-server container, found by the chart's container name.

- `model`: the scope and result types;
- `status`: pure judgements (pod status, is the rollout done);
- `cluster`: the Deployment and pod reads, the rollout wait, readiness of all locations;
- `logs`: reading and following one container's log;
- `diagnosis`: what a failed deploy and `deployment check` show (best effort).
"""

from dagster_uc.pods.cluster import (
    find_deployment,
    pods_for_deployment,
    readiness_summary,
    wait_for_rollout,
)
from dagster_uc.pods.diagnosis import diagnose, event_info, events_for, format_diagnosis
from dagster_uc.pods.logs import follow_logs_until, pod_logs
from dagster_uc.pods.model import (
    CODE_SERVER_CONTAINER,
    CODE_SERVER_STARTED,
    FATAL_REASONS,
    LABEL,
    Diagnosis,
    EventInfo,
    PodStatus,
    RolloutResult,
    RolloutState,
    UserCode,
)
from dagster_uc.pods.status import code_container, describe_pod, pod_status, rollout_state

__all__ = [
    "CODE_SERVER_CONTAINER",
    "CODE_SERVER_STARTED",
    "FATAL_REASONS",
    "LABEL",
    "Diagnosis",
    "EventInfo",
    "PodStatus",
    "RolloutResult",
    "RolloutState",
    "UserCode",
    "code_container",
    "describe_pod",
    "diagnose",
    "event_info",
    "events_for",
    "find_deployment",
    "follow_logs_until",
    "format_diagnosis",
    "pod_logs",
    "pod_status",
    "pods_for_deployment",
    "readiness_summary",
    "rollout_state",
    "wait_for_rollout",
]
