"""The Kubernetes connection: a lightkube client for the configured context and namespace.

lightkube was chosen over kr8s: it is synchronous (no event loop to manage in a CLI), ships
typed models for every resource, imports in ~90 ms (and only when a cluster command runs),
and reports API failures as one `ApiError` carrying the server's Status (code, reason), which
makes compare-and-swap retries on 409 Conflict explicit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dagster_uc.errors import OperationError, UsageError, forbidden_note
from dagster_uc.kube_exec import ExecCredentialTransport, exec_timeout_s, plugin_from_kubeconfig
from dagster_uc.proxies import ProxyRoutingTransport, normalize_proxy_url, proxy_for

if TYPE_CHECKING:
    from lightkube import ApiError, Client

DEFAULT_KUBECONFIG = "~/.kube/config"


def kubeconfig_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The kubeconfig files kubectl would read: `$KUBECONFIG` (a path list) or ~/.kube/config."""
    environ = os.environ if environ is None else environ
    raw = environ.get("KUBECONFIG", "")
    paths = [Path(p).expanduser() for p in raw.split(os.pathsep) if p] if raw else []
    return paths or [Path(DEFAULT_KUBECONFIG).expanduser()]


#: The file references of kubeconfig entries, per section: kubectl reads a relative one
#: relative to the directory of the kubeconfig file that holds it.
_FILE_FIELDS = {
    "clusters": ("cluster", ("certificate-authority",)),
    "users": ("user", ("client-certificate", "client-key", "tokenFile")),
}


def _absolute_files(section: str, entry: dict[str, Any], directory: Path) -> dict[str, Any]:
    """`entry` with its relative file references made absolute against `directory`."""
    if section not in _FILE_FIELDS:
        return entry
    key, fields = _FILE_FIELDS[section]
    inner = entry.get(key)
    if not isinstance(inner, dict):
        return entry
    fixed = {
        field: str(directory / value)
        for field in fields
        if isinstance(value := inner.get(field), str)
        and value
        and not value.startswith("~")
        and not Path(value).is_absolute()
    }
    return {**entry, key: {**inner, **fixed}} if fixed else entry


def merge_kubeconfigs(documents: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """Merge kubeconfig documents the way kubectl does: the first file to name an entry wins,
    and relative file references are relative to the file that holds them."""
    merged: dict[str, Any] = {"clusters": [], "contexts": [], "users": []}
    seen: dict[str, set[str]] = {"clusters": set(), "contexts": set(), "users": set()}
    for path, doc in documents:
        if not merged.get("current-context") and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
        for section in ("clusters", "contexts", "users"):
            for entry in doc.get(section) or []:
                name = entry.get("name")
                if name and name not in seen[section]:
                    seen[section].add(name)
                    merged[section].append(_absolute_files(section, entry, path.parent))
    return merged


def make_client(
    context: str,
    namespace: str,
    environ: Mapping[str, str] | None = None,
    *,
    timeout_s: float | None = None,
) -> Client:
    """A client for `context` from the user's kubeconfig, defaulting to `namespace`;
    `timeout_s` bounds each request (doctor uses a short one so a dead server fails fast)."""
    import httpx2
    import msgspec
    import yaml
    from lightkube import Client
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.core.exceptions import ConfigError

    documents = []
    for path in kubeconfig_paths(environ):
        if path.is_file():
            try:
                documents.append((path, yaml.safe_load(path.read_text()) or {}))
            except yaml.YAMLError as exc:
                raise UsageError(f"The kubeconfig file {path} is not valid YAML: {exc}.") from exc
    if not documents:
        shown = ", ".join(str(p) for p in kubeconfig_paths(environ))
        raise UsageError(
            f"No kubeconfig file found ({shown}); set KUBECONFIG or log in to your cluster first."
        )
    merged = merge_kubeconfigs(documents)
    known = [c["name"] for c in merged["contexts"]]
    if context not in known:
        raise UsageError(
            f"Kubernetes context '{context}' is not in your kubeconfig "
            f"(known: {', '.join(known) or 'none'}); fix kubernetes_context in the config."
        )
    user, cluster = context_entries(merged, context)
    missing = _missing_file(user, cluster)
    if missing is not None:
        raise UsageError(
            f"Kubernetes context '{context}' names the {missing[0]} file {missing[1]}, which "
            "does not exist; fix the kubeconfig or log in to the cluster again."
        )
    plugin = plugin_from_kubeconfig(user, cluster, context)
    try:
        single = KubeConfig.from_dict(merged, fname=documents[0][0]).get(context)
        if plugin is not None and single is not None and single.user is not None:
            # we run the plugin ourselves (stderr to the terminal, with a timeout)
            single = single._replace(user=msgspec.structs.replace(single.user, exec=None))
        transport = _transport(single, cluster.get("proxy-url"), environ)
        if plugin is not None:
            transport = ExecCredentialTransport(transport, plugin, exec_timeout_s(environ))
        return Client(
            config=single,
            namespace=namespace,
            field_manager="dagster-uc",
            transport=transport,
            timeout=httpx2.Timeout(timeout_s) if timeout_s else None,
        )
    except ConfigError as exc:
        raise UsageError(f"Cannot use Kubernetes context '{context}': {exc}.") from exc


def _missing_file(user: dict[str, Any], cluster: dict[str, Any]) -> tuple[str, str] | None:
    """The first file the context's cluster or user entry names that does not exist, as
    (field, path); checked up front, where TLS and the token reader would fail unnamed."""
    for entry, section in ((cluster, "clusters"), (user, "users")):
        for field in _FILE_FIELDS[section][1]:
            value = entry.get(field)
            if isinstance(value, str) and value and not Path(value).is_file():
                return field, value
    return None


def context_entries(merged: dict[str, Any], context: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The user and cluster entries (their inner mappings) that `context` names."""

    def inner(section: str, name: Any) -> dict[str, Any]:
        for entry in merged.get(section) or []:
            if entry.get("name") == name:
                return dict(entry.get(section[:-1]) or {})
        return {}

    ctx = inner("contexts", context)
    return inner("users", ctx.get("user")), inner("clusters", ctx.get("cluster"))


def _transport(single: Any, proxy_url: str | None, environ: Mapping[str, str] | None) -> Any:
    """The HTTP transport of the client: TLS as the kubeconfig says, through the cluster's
    `proxy-url` or else the proxy the environment names for the URL (as kubectl), reads
    retried on transient failures (see `kube_retry`)."""
    import httpx2
    from lightkube.config.client_adapter import verify_cluster

    from dagster_uc.kube_retry import RetryingTransport  # imports httpx2 at load: kept lazy

    verify = verify_cluster(single.cluster, single.user, single.abs_file)

    def make(proxy: str | None) -> Any:
        return httpx2.HTTPTransport(verify=verify, proxy=proxy, trust_env=False)

    fixed = normalize_proxy_url(proxy_url) if proxy_url else None

    def choose(url: str) -> str | None:
        return fixed if fixed else proxy_for(url, environ)

    router = ProxyRoutingTransport(make, choose)
    return RetryingTransport(cast("httpx2.BaseTransport", router))


def api_error_code(exc: ApiError) -> int:
    return int(getattr(exc.status, "code", 0) or 0)


def describe_api_error(exc: BaseException) -> str:
    """One sentence describing a failed API call (ApiError or transport failure)."""
    import httpx2
    from lightkube import ApiError

    if isinstance(exc, ApiError):
        message = getattr(exc.status, "message", None) or str(exc)
        return f"the Kubernetes API answered {api_error_code(exc)}: {message}{forbidden_note(exc)}"
    if isinstance(exc, httpx2.HTTPStatusError):  # an answer without a Status body (a proxy)
        answer = exc.response
        return f"the Kubernetes API answered {answer.status_code} {answer.reason_phrase}"
    return f"cannot reach the Kubernetes API server: {exc}"


@contextmanager
def api_errors(action: str) -> Iterator[None]:
    """Turn Kubernetes API and connection failures into one clear OperationError."""
    import httpx2
    from lightkube import ApiError

    try:
        yield
    except ApiError as exc:
        raise OperationError(f"Could not {action}: {describe_api_error(exc)}.") from exc
    except httpx2.HTTPError as exc:
        raise OperationError(f"Could not {action}: {describe_api_error(exc)}.") from exc
