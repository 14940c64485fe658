"""The cluster state: the values ConfigMap (with the deployment history) and Dagster's workspace.

Every write is a compare-and-swap on `resourceVersion`: the change is computed from what was
read, written with that resourceVersion, and recomputed from a fresh read when another writer
got there first (409 Conflict), so two deploys never lose each other's entry.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from dagster_uc import yamldoc
from dagster_uc.errors import OperationError
from dagster_uc.history import (
    DeploymentHistory,
    DeploymentRecord,
    compact_history,
    history_from_document,
    history_to_document,
)
from dagster_uc.kube import api_error_code, api_errors, describe_api_error
from dagster_uc.values import empty_values, entries, entry_tag, upsert_entry

if TYPE_CHECKING:
    from lightkube import Client

    from dagster_uc.config import Config

VALUES_KEY = "yaml"
HISTORY_KEY = "dagster-uc-history.yaml"
WORKSPACE_KEY = "workspace.yaml"
MAX_ATTEMPTS = 12
#: Largest ConfigMap dagster-uc writes: the API server refuses more than 1 MiB of data, and
#: the margin leaves room for the next few deploys while the team prunes.
MAX_CONFIGMAP_BYTES = 900 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class StateSnapshot:
    """What the values ConfigMap held at one resourceVersion (None: it does not exist yet)."""

    values: dict[str, Any]
    history: dict[str, DeploymentHistory] = field(default_factory=dict)
    resource_version: str | None = None
    #: The ConfigMap object this was read from (or written as): lets the next
    #: compare-and-swap start from it without reading again (None: read first).
    source: Any = field(default=None, compare=False, repr=False)

    def history_of(self, name: str) -> DeploymentHistory:
        return self.history.get(name, DeploymentHistory())

    def with_history(self, name: str, history: DeploymentHistory) -> StateSnapshot:
        return replace(self, history={**self.history, name: history})

    def with_deployment(self, entry: dict[str, Any], record: DeploymentRecord) -> StateSnapshot:
        """`entry` added or replacing its namesake, and `record` appended to its history."""
        name = entry["name"]
        updated = replace(self, values=upsert_entry(self.values, entry))
        return updated.with_history(name, self.history_of(name).with_record(record))


def parse_values_text(text: str | None, *, source: str) -> dict[str, Any]:
    import yaml

    if not text:
        return {"deployments": []}
    try:
        document = yamldoc.load(text)
    except yaml.YAMLError as exc:
        raise OperationError(f"The values document in {source} is not valid YAML: {exc}.") from exc
    if document is None:
        return {"deployments": []}
    if not isinstance(document, dict):
        raise OperationError(f"The values document in {source} is not a YAML mapping.")
    document.setdefault("deployments", [])
    return document


def dump_yaml(document: dict[str, Any]) -> str:
    """The values document as YAML (`yamldoc`: a document of a few hundred locations is read
    by every command and written by every change)."""
    return yamldoc.dump(document)


def dump_history_yaml(document: dict[str, Any]) -> str:
    """The history with one line per record (about a tenth smaller than block style)."""
    import yaml

    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=4096)


class ClusterState:
    """Reads and writes the ConfigMaps dagster-uc keeps in the Dagster namespace."""

    def __init__(self, client: Client, config: Config) -> None:
        self.client = client
        self.config = config
        self.namespace = config.namespace
        self.values_name = config.user_code_deployments_configmap_name
        self.workspace_name = config.dagster_workspace_yaml_configmap_name
        # The last snapshot read or written, by resourceVersion (which names one content of
        # the object): a command reads the state, then reads it again under its lock or for
        # its compare-and-swap, and need not parse a document of every location twice.
        self._last: StateSnapshot | None = None

    def read(self) -> StateSnapshot:
        configmap = self._get(self.values_name, f"read ConfigMap {self.values_name}")
        if configmap is None:
            return StateSnapshot(values=self._initial_values())
        return self._snapshot(configmap)

    def update(
        self,
        change: Callable[[StateSnapshot], StateSnapshot | None],
        *,
        start: StateSnapshot | None = None,
    ) -> tuple[StateSnapshot, StateSnapshot]:
        """Apply `change` to the current state with compare-and-swap; returns (before, after).

        `change` may be called several times (once per conflict) and must be pure. Returning
        None means "nothing to write". `start`, a snapshot read or written a moment ago, saves
        the first read: if it is stale the write conflicts and the loop reads afresh.
        """

        def attempt_write(attempt: int) -> tuple[StateSnapshot, StateSnapshot]:
            if attempt == 0 and start is not None and start.source is not None:
                configmap = start.source
            else:
                configmap = self._get(self.values_name, f"read ConfigMap {self.values_name}")
            before = (
                self._snapshot(configmap)
                if configmap is not None
                else StateSnapshot(values=self._initial_values())
            )
            after = change(before)
            if after is None:
                return before, before
            after = compacted(after, dt.datetime.now(dt.timezone.utc))
            written = self._write_values(configmap, after)
            self._last = replace(after, resource_version=_resource_version(written), source=written)
            return before, self._last

        return self._compare_and_swap(self.values_name, attempt_write)

    def read_workspace(self) -> str | None:
        configmap = self._get(self.workspace_name, f"read ConfigMap {self.workspace_name}")
        if configmap is None:
            return None
        return (configmap.data or {}).get(WORKSPACE_KEY)

    def write_workspace(self, text: str) -> bool:
        """Make the workspace ConfigMap hold `text`; True when it had to change."""
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ConfigMap

        def attempt_write(_attempt: int) -> bool:
            configmap = self._get(self.workspace_name, f"read ConfigMap {self.workspace_name}")
            if configmap is None:
                self.client.create(
                    ConfigMap(
                        metadata=ObjectMeta(name=self.workspace_name, namespace=self.namespace),
                        data={WORKSPACE_KEY: text},
                    )
                )
                return True
            if (configmap.data or {}).get(WORKSPACE_KEY) == text:
                return False
            check_size(
                self.workspace_name, {**(configmap.data or {}), WORKSPACE_KEY: text}, configmap.data
            )
            configmap.data = {**(configmap.data or {}), WORKSPACE_KEY: text}
            self.client.replace(configmap)
            return True

        return self._compare_and_swap(self.workspace_name, attempt_write)

    def _compare_and_swap(self, name: str, attempt_write: Callable[[int], T]) -> T:
        """Run one read-modify-write of ConfigMap `name` until it lands without a conflict
        (409, or 404 when it vanished meanwhile); other failures are one sentence."""
        from lightkube import ApiError

        for attempt in range(MAX_ATTEMPTS):
            try:
                return attempt_write(attempt)
            except ApiError as exc:
                if api_error_code(exc) in (404, 409):
                    _backoff(attempt)
                    continue
                raise OperationError(
                    f"Could not write ConfigMap {name} ({describe_api_error(exc)}); try again."
                ) from exc
            except httpx_errors() as exc:
                raise OperationError(
                    f"Could not write ConfigMap {name} ({describe_api_error(exc)}); try again."
                ) from exc
        raise OperationError(
            f"ConfigMap {name} kept changing under us ({MAX_ATTEMPTS} conflicts); try again."
        )

    def _initial_values(self) -> dict[str, Any]:
        return empty_values(self.config)

    def _snapshot(self, configmap: Any) -> StateSnapshot:
        import yaml

        version = configmap.metadata.resourceVersion
        if self._last is not None and version and self._last.resource_version == version:
            return replace(self._last, source=configmap)
        data = configmap.data or {}
        values = parse_values_text(
            data.get(VALUES_KEY), source=f"ConfigMap {self.values_name} (key {VALUES_KEY})"
        )
        try:
            history_doc = yamldoc.load(data.get(HISTORY_KEY) or "") or {}
        except yaml.YAMLError:
            history_doc = {}
        self._last = StateSnapshot(
            values=values,
            history=history_from_document(history_doc if isinstance(history_doc, dict) else {}),
            resource_version=version,
            source=configmap,
        )
        return self._last

    def _write_values(self, configmap: Any, state: StateSnapshot) -> Any:
        """Create or replace (compare-and-swap) the values ConfigMap; returns what was written."""
        import copy

        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ConfigMap

        data = {
            VALUES_KEY: dump_yaml(state.values),
            HISTORY_KEY: dump_history_yaml(history_to_document(state.history)),
        }
        check_size(
            self.values_name,
            {**((configmap.data or {}) if configmap is not None else {}), **data},
            configmap.data if configmap is not None else None,
            deployments=len(entries(state.values)),
        )
        if configmap is None:
            return self.client.create(
                ConfigMap(
                    metadata=ObjectMeta(
                        name=self.values_name,
                        namespace=self.namespace,
                        labels={"app.kubernetes.io/managed-by": "dagster-uc"},
                    ),
                    data=data,
                )
            )
        updated = copy.copy(configmap)
        updated.data = {**(configmap.data or {}), **data}
        return self.client.replace(updated)

    def _get(self, name: str, action: str) -> Any:
        from lightkube import ApiError
        from lightkube.resources.core_v1 import ConfigMap

        with api_errors(action):
            try:
                return self.client.get(ConfigMap, name, namespace=self.namespace)
            except ApiError as exc:
                if api_error_code(exc) == 404:
                    return None
                raise


def compacted(state: StateSnapshot, now: dt.datetime) -> StateSnapshot:
    """`state` with its history compacted (see `history.compact_history`)."""
    live = {e["name"]: entry_tag(e) for e in entries(state.values)}
    return replace(state, history=compact_history(state.history, live, now))


def data_size(data: dict[str, str] | None) -> int:
    """Bytes of a ConfigMap's data as the API server counts them against its 1 MiB."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in (data or {}).items())


class StateTooLarge(OperationError):
    """A write that would make a ConfigMap larger than MAX_CONFIGMAP_BYTES."""


def check_size(
    name: str,
    data: dict[str, str],
    previous: dict[str, str] | None,
    *,
    deployments: int | None = None,
) -> None:
    """Refuse, before writing, data over MAX_CONFIGMAP_BYTES that is not smaller than what the
    ConfigMap holds now (a write that shrinks it, a delete or prune, always goes through)."""
    size = data_size(data)
    if size <= MAX_CONFIGMAP_BYTES or (previous is not None and size < data_size(previous)):
        return
    held = f" for {deployments} deployments" if deployments is not None else ""
    raise StateTooLarge(
        f"ConfigMap {name} would hold {size // 1024} KiB{held}, over the "
        f"{MAX_CONFIGMAP_BYTES // 1024} KiB dagster-uc allows (Kubernetes refuses more than "
        "1 MiB); nothing was written: remove the deployments no longer needed with "
        "`dagster-uc deployment prune` or `dagster-uc deployment delete NAME`, then try again."
    )


def httpx_errors() -> type[Exception]:
    """The transport failures of the Kubernetes client (imported lazily)."""
    import httpx2

    return httpx2.HTTPError


def _resource_version(obj: Any) -> str:
    return str(obj.metadata.resourceVersion if obj.metadata else "")


def _backoff(attempt: int) -> None:
    """Jittered exponential backoff between compare-and-swap attempts (max ~1 s)."""
    time.sleep(min(1.0, 0.02 * (2**attempt)) * (0.5 + random.random()))
