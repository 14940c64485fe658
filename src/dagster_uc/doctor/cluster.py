"""Cluster checks: context, API server, namespace, permissions, the Dagster instance, the
state ConfigMaps and the deploy lock. Reads only."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from dagster_uc.doctor.model import CheckResult, failed, from_error, ok, skipped, warning
from dagster_uc.doctor.permissions import missing_permissions, required_permissions
from dagster_uc.errors import DagsterUcError
from dagster_uc.instance import version_from_deployment
from dagster_uc.kube import api_error_code, describe_api_error, make_client
from dagster_uc.lock import lock_status
from dagster_uc.release_mode import (
    AUTO,
    PER_LOCATION,
    SHARED,
    location_lock_statuses,
    release_exists,
    resolve_mode,
)
from dagster_uc.state import HISTORY_KEY, VALUES_KEY, WORKSPACE_KEY, parse_values_text
from dagster_uc.workspace_owner import workspace_owner

if TYPE_CHECKING:
    from lightkube import Client

    from dagster_uc.config import Config

#: Seconds for one API request: a dead API server fails its checks within a few seconds.
API_TIMEOUT_S = 3.0
ROLE_DOC = "docs/permissions.md"


def _api_failure(name: str, exc: BaseException, context: str) -> CheckResult:
    return failed(
        name,
        describe_api_error(exc),
        f"Check that the cluster of context {context} is up and reachable from here (VPN, "
        f"expired login): `kubectl --context {context} get --raw /version`.",
    )


def _get(client: Client, kind: Any, name: str, namespace: str | None = None) -> Any | None:
    """The object, or None when it does not exist (other API errors propagate)."""
    from lightkube import ApiError

    try:
        if namespace is None:
            return client.get(kind, name)
        return client.get(kind, name, namespace=namespace)
    except ApiError as exc:
        if api_error_code(exc) == 404:
            return None
        raise


def check_context(config: Config) -> tuple[CheckResult, Client | None]:
    try:
        client = make_client(config.kubernetes_context, config.namespace, timeout_s=API_TIMEOUT_S)
    except DagsterUcError as exc:
        return from_error("kube-context", exc), None
    return ok("kube-context", f"context {config.kubernetes_context} is in your kubeconfig"), client


def server_version(client: Client) -> str:
    """The API server's gitVersion (GET /version, allowed to everyone)."""
    http = client._client._client  # lightkube has no call for /version
    response = http.get("/version")
    response.raise_for_status()
    return str(response.json().get("gitVersion") or "unknown")


def check_api_server(config: Config, client: Client) -> CheckResult:
    try:
        version = server_version(client)
    except Exception as exc:
        return _api_failure("api-server", exc, config.kubernetes_context)
    return ok("api-server", f"the API server answers (Kubernetes {version})", version=version)


def check_namespace(config: Config, client: Client) -> CheckResult:
    from lightkube import ApiError
    from lightkube.resources.core_v1 import Namespace

    name = config.namespace
    try:
        found = _get(client, Namespace, name)
    except ApiError as exc:
        if api_error_code(exc) == 403:
            return warning(
                "namespace",
                f"not allowed to read Namespace {name} (a namespaced Role cannot grant it); "
                "the Dagster checks below show whether it is there",
            )
        return _api_failure("namespace", exc, config.kubernetes_context)
    except Exception as exc:
        return _api_failure("namespace", exc, config.kubernetes_context)
    if found is None:
        return failed(
            "namespace",
            f"namespace {name} does not exist in context {config.kubernetes_context}",
            "Fix `namespace` in the config (the namespace Dagster is installed in; "
            f"`kubectl --context {config.kubernetes_context} get namespaces` lists them).",
        )
    return ok("namespace", f"namespace {name} exists")


def check_permissions(config: Config, client: Client) -> CheckResult:
    required = required_permissions()
    try:
        missing = missing_permissions(client, config.namespace, required)
    except Exception as exc:
        return _api_failure("permissions", exc, config.kubernetes_context)
    if missing:
        names = ", ".join(p.describe() for p in missing)
        return failed(
            "permissions",
            f"{len(missing)} of {len(required)} permissions missing in {config.namespace}: {names}",
            f"Ask a cluster administrator to bind the dagster-uc Role to you in {config.namespace} "
            f"(see {ROLE_DOC}).",
            missing=[p.describe() for p in missing],
        )
    return ok(
        "permissions", f"all {len(required)} permissions dagster-uc needs in {config.namespace}"
    )


def _deployment_version(deployment: Any) -> str | None:
    labels = dict(deployment.metadata.labels or {}) if deployment.metadata else {}
    images = []
    if deployment.spec and deployment.spec.template.spec:
        images = [c.image or "" for c in deployment.spec.template.spec.containers]
    return version_from_deployment(labels, images).version


def check_dagster(config: Config, client: Client, role: str, name: str) -> CheckResult:
    """The webserver or daemon Deployment: present, ready, and on the configured version."""
    from lightkube.resources.apps_v1 import Deployment

    check = f"dagster-{role}"
    try:
        found = _get(client, Deployment, name, config.namespace)
    except Exception as exc:
        return _api_failure(check, exc, config.kubernetes_context)
    if found is None:
        key = f"dagster_{role}_deployment_name"
        return failed(
            check,
            f"no Deployment {name} in {config.namespace}",
            f"Set {key} to the {role} Deployment of your Dagster release "
            f"(`kubectl -n {config.namespace} get deployments` lists them), or install Dagster "
            "with its Helm chart.",
        )
    version = _deployment_version(found)
    status = found.status
    ready = (status.readyReplicas or 0) if status else 0
    wanted = (found.spec.replicas if found.spec and found.spec.replicas is not None else 1) or 0
    where = f"Deployment {name} ({ready}/{wanted} ready)"
    if version is None:
        return warning(
            check, f"{where}: its Dagster version cannot be read from its labels or image"
        )
    if version != config.dagster_version:
        return failed(
            check,
            f"{where} runs Dagster {version}, the config says {config.dagster_version}",
            f"Set dagster_version: '{version}' in the config (or upgrade the Dagster release "
            f"to {config.dagster_version}).",
            version=version,
        )
    if wanted and ready < wanted:
        return warning(check, f"{where} runs Dagster {version} but is not ready", version=version)
    return ok(check, f"{where} runs Dagster {version}", version=version)


def first_line(exc: BaseException) -> str:
    """The first line of an error (a YAML error goes on with the offending text)."""
    lines = str(exc).strip().splitlines()
    return lines[0].rstrip(":.") if lines else type(exc).__name__


def _managers(configmap: Any) -> list[str]:
    fields = (configmap.metadata.managedFields or []) if configmap.metadata else []
    return list(dict.fromkeys(f.manager for f in fields if f.manager))


def _writers(configmap: Any) -> str:
    managers = _managers(configmap)
    return f"written by {', '.join(managers)}" if managers else "writer not recorded"


def check_values(config: Config, client: Client) -> CheckResult:
    from lightkube.resources.core_v1 import ConfigMap

    name = config.user_code_deployments_configmap_name
    try:
        found = _get(client, ConfigMap, name, config.namespace)
    except Exception as exc:
        return _api_failure("values-configmap", exc, config.kubernetes_context)
    if found is None:
        return ok(
            "values-configmap", f"ConfigMap {name} does not exist yet; the first deploy creates it"
        )
    data = dict(found.data or {})
    try:
        document = parse_values_text(data.get(VALUES_KEY), source=f"ConfigMap {name}")
        deployments = document.get("deployments") or []
        if not isinstance(deployments, list):
            raise ValueError("its `deployments` is not a list")
        if HISTORY_KEY in data:
            import yaml

            yaml.safe_load(data[HISTORY_KEY])
    except Exception as exc:
        return failed(
            "values-configmap",
            f"ConfigMap {name} does not parse: {first_line(exc)}",
            f"Repair it with `kubectl -n {config.namespace} edit configmap {name}` (key "
            f"{VALUES_KEY!r} holds the chart's values document).",
        )
    tool = "dagster-uc" if HISTORY_KEY in data else "the original dagster-uc (no history key)"
    if not deployments and HISTORY_KEY not in data:
        tool = "no deploy yet"
    return ok(
        "values-configmap",
        f"ConfigMap {name}: {len(deployments)} deployment(s), state of {tool}; {_writers(found)}",
        deployments=len(deployments),
        managers=_managers(found),
    )


def check_workspace(config: Config, client: Client) -> CheckResult:
    from lightkube.resources.core_v1 import ConfigMap

    name = config.dagster_workspace_yaml_configmap_name
    try:
        found = _get(client, ConfigMap, name, config.namespace)
    except Exception as exc:
        return _api_failure("workspace-configmap", exc, config.kubernetes_context)
    annotations = None
    if found is not None:
        annotations = dict((found.metadata.annotations if found.metadata else None) or {})
    owner = workspace_owner(annotations, configmap=name, namespace=config.namespace)
    if found is None:
        return ok("workspace-configmap", owner.message)
    import yaml

    try:
        document = yaml.safe_load((found.data or {}).get(WORKSPACE_KEY) or "") or {}
        locations = document.get("load_from") or [] if isinstance(document, dict) else None
        if locations is None:
            raise ValueError(f"key {WORKSPACE_KEY!r} is not a mapping")
    except Exception as exc:
        return failed(
            "workspace-configmap",
            f"ConfigMap {name} does not parse: {first_line(exc)}",
            "The next deploy rewrites it from the list of deployments; or repair it with "
            f"`kubectl -n {config.namespace} edit configmap {name}`.",
        )
    if not owner.ok:
        return warning("workspace-configmap", owner.message, owner.fix, release=owner.release)
    return ok(
        "workspace-configmap",
        f"ConfigMap {name}: {len(locations)} location(s); {_writers(found)}",
        locations=len(locations),
        managers=_managers(found),
    )


def check_lock(config: Config, client: Client) -> CheckResult:
    try:
        status = lock_status(client, config)
        held = [s for s in location_lock_statuses(client, config) if s.is_held()]
    except Exception as exc:
        return _api_failure("lock", exc, config.kubernetes_context)
    details = {"lock": status.to_json(), "locations": [s.to_json() for s in held]}
    if status.is_held():
        return warning(
            "lock",
            status.describe(),
            "A deploy now waits for it; if its holder is gone, `dagster-uc lock release` frees it.",
            **details,
        )
    message = f"deploy lock {status.name} is free"
    if held:
        # A per-location Lease only makes a deploy of that one location wait: not a warning.
        names = ", ".join(s.name for s in held[:3]) + (" ..." if len(held) > 3 else "")
        message += f"; {len(held)} location lock(s) held ({names})"
    return ok("lock", message, **details)


def release_owners(config: Config, client: Client) -> dict[str, str]:
    """Location name -> the Helm release owning its Service (one list of the namespace's
    user-code Services; the ownership annotation is what Helm itself checks)."""
    from lightkube.resources.core_v1 import Service

    owners: dict[str, str] = {}
    for service in client.list(
        Service, namespace=config.namespace, labels={"component": "user-deployments"}
    ):
        meta = service.metadata
        if meta is None or not meta.name:
            continue
        release = (meta.annotations or {}).get("meta.helm.sh/release-name")
        if release:
            owners[meta.name] = release
    return owners


def describe_release_mode(
    config: Config, shared_exists: bool, owners: dict[str, str]
) -> CheckResult:
    """The `release-mode` verdict (pure): the mode a deploy would use, and a warning when the
    namespace's releases do not fit it (a half-done migration, or a mode pinned against the
    layout), since a deploy would then fail on a Service owned by the other layout."""
    mode, _ = resolve_mode(config, lambda: shared_exists)
    shared = config.helm_release_name
    in_shared = sorted(n for n, r in owners.items() if r == shared)
    own = sorted(n for n, r in owners.items() if r != shared)
    why = ""
    if config.helm_release_mode == AUTO:
        why = (
            f" (auto: the namespace has release {shared})"
            if shared_exists
            else f" (auto: no release {shared} in the namespace)"
        )
    details: dict[str, Any] = {
        "mode": mode,
        "configured": config.helm_release_mode,
        "shared_release_locations": len(in_shared),
        "own_release_locations": len(own),
    }
    if mode == SHARED and own:
        return warning(
            "release-mode",
            f"shared{why}, but {len(own)} location(s) have a release of their own "
            f"({', '.join(own[:3])}{' ...' if len(own) > 3 else ''}): a deploy renders every "
            "location into the shared release and fails on their Services",
            "Finish the move with `dagster-uc migrate --to shared` (or `--to per-location`), "
            "or set helm_release_mode: per-location.",
            **details,
        )
    if mode == PER_LOCATION and in_shared:
        return warning(
            "release-mode",
            f"per-location, but release {shared} still holds {len(in_shared)} location(s): "
            "a deploy of one of them fails on its Service",
            "Move them with `dagster-uc migrate --to per-location`.",
            **details,
        )
    if mode == SHARED:
        message = f"shared{why}: release {shared} holds {len(in_shared)} location(s)"
        if config.helm_release_mode == AUTO:
            message += "; `dagster-uc migrate --to per-location` gives each its own release"
        return ok("release-mode", message, **details)
    return ok(
        "release-mode",
        f"per-location{why}: {len(own)} location(s), each in a release of its own",
        **details,
    )


def check_release_mode(config: Config, client: Client) -> CheckResult:
    try:
        shared_exists = release_exists(client, config.namespace, config.helm_release_name)
        owners = release_owners(config, client)
    except Exception as exc:
        return _api_failure("release-mode", exc, config.kubernetes_context)
    return describe_release_mode(config, shared_exists, owners)


CLUSTER_CHECKS = (
    "kube-context",
    "api-server",
    "namespace",
    "permissions",
    "dagster-webserver",
    "dagster-daemon",
    "values-configmap",
    "workspace-configmap",
    "lock",
    "release-mode",
)


def cluster_checks(config: Config) -> list[CheckResult]:
    """The context, the API server and the namespace first (each one GET); then the rest
    concurrently. A check whose prerequisite failed is skipped, not failed again."""
    context, client = check_context(config)
    if client is None:
        return [context, *(skipped(n, "no usable kube context") for n in CLUSTER_CHECKS[1:])]
    api = check_api_server(config, client)
    if api.status == "failed":
        down = CLUSTER_CHECKS[2:]
        return [context, api, *(skipped(n, "the API server does not answer") for n in down)]
    namespace = check_namespace(config, client)
    if namespace.status == "failed":
        absent = CLUSTER_CHECKS[3:]
        return [context, api, namespace, *(skipped(n, "no such namespace") for n in absent)]
    with ThreadPoolExecutor(max_workers=7) as pool:
        futures = [
            pool.submit(check_permissions, config, client),
            pool.submit(
                check_dagster, config, client, "webserver", config.dagster_webserver_deployment_name
            ),
            pool.submit(
                check_dagster, config, client, "daemon", config.dagster_daemon_deployment_name
            ),
            pool.submit(check_values, config, client),
            pool.submit(check_workspace, config, client),
            pool.submit(check_lock, config, client),
            pool.submit(check_release_mode, config, client),
        ]
        return [context, api, namespace, *(f.result() for f in futures)]
