"""`RealCluster`: the real control plane behind the emulator's Python interface.

The tests read and seed objects (`get`, `list`, `create`, `patch`, `delete`) and turn knobs
(`hold_unready`, `inject_fault`, `inject_conflict`, `request_counts`, `append_pod_log`) on
whichever cluster backs them. Here reads and writes go straight to the API server with the
admin token; faults and request counts belong to the fault proxy in front of it, through
which every client under test (dagster-uc, Helm, kubectl) talks, as `write_kubeconfig` says.
"""

from __future__ import annotations

import builtins
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import yaml

from stack.emulator.emulator import RequestGate

from . import holds
from .cluster import ControlPlane
from .faults import FaultProxy
from .podlogs import PodLogWriter


def plural_of(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def collection_path(api_version: str, plural: str, namespace: str | None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"


class ApiError(RuntimeError):
    def __init__(self, code: int, body: str) -> None:
        super().__init__(f"{code}: {body}")
        self.code = code


class RealCluster:
    """Objects and knobs of a running `ControlPlane`, with a `FaultProxy` in front of it."""

    def __init__(
        self, plane: ControlPlane, proxy: FaultProxy | None = None, *, pod_logs: bool = True
    ) -> None:
        self.plane = plane
        self.proxy = proxy
        self.kube_version = plane.binaries.kubernetes_version
        self.dagster_version = plane.dagster_version
        self.dagster_versions: dict[str, str] = {}
        self._client = plane.admin_client(timeout=30)
        self._logs_client = plane.admin_client(timeout=30)
        self._logs = PodLogWriter(
            self._logs_client, plane.state_dir / "pod-logs", self._pod_exec_env
        )
        if pod_logs:
            self._logs.start()

    @property
    def url(self) -> str:
        """Where clients under test connect: the fault proxy (or the API server itself)."""
        return self.proxy.url if self.proxy is not None else self.plane.url

    @property
    def faults(self) -> FaultProxy:
        if self.proxy is None:
            raise RuntimeError("this control plane was started without the fault proxy")
        return self.proxy

    @property
    def request_counts(self) -> Counter[tuple[str, str]]:
        return self.faults.request_counts

    @property
    def response_counts(self) -> Counter[tuple[str, str, int]]:
        return self.faults.response_counts

    def _pod_exec_env(self, namespace: str, pod: str) -> builtins.list[dict[str, str]]:
        version = self.dagster_versions.get(namespace, self.dagster_version)
        return self.plane.exec_env(DAGSTER_VERSION=version, POD_NAMESPACE=namespace, POD_NAME=pod)

    def close(self) -> None:
        self._logs.stop()
        self._client.close()
        self._logs_client.close()

    # --- objects ---------------------------------------------------------------------------

    def _check(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            raise ApiError(response.status_code, response.text)
        return dict(response.json())

    def get(
        self, api_version: str, kind_plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        response = self._client.get(
            f"{collection_path(api_version, kind_plural, namespace)}/{name}"
        )
        if response.status_code == 404:
            return None
        return self._check(response)

    def list(
        self,
        api_version: str,
        kind_plural: str,
        namespace: str | None = None,
        label_selector: str = "",
    ) -> builtins.list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else {}
        response = self._client.get(
            collection_path(api_version, kind_plural, namespace), params=params
        )
        return builtins.list(self._check(response).get("items") or [])

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        namespace = obj.get("metadata", {}).get("namespace")
        path = collection_path(obj["apiVersion"], plural_of(obj["kind"]), namespace)
        return self._check(self._client.post(path, json=obj))

    def patch(
        self,
        api_version: str,
        kind_plural: str,
        namespace: str | None,
        name: str,
        merge_patch: dict[str, Any],
    ) -> dict[str, Any]:
        path = f"{collection_path(api_version, kind_plural, namespace)}/{name}"
        response = self._client.patch(
            path, json=merge_patch, headers={"Content-Type": "application/merge-patch+json"}
        )
        return self._check(response)

    def delete(self, api_version: str, kind_plural: str, namespace: str | None, name: str) -> None:
        path = f"{collection_path(api_version, kind_plural, namespace)}/{name}"
        response = self._client.delete(path)
        if response.status_code not in (200, 202, 404):
            self._check(response)

    def write_kubeconfig(
        self, path: str | Path, context: str = "kind-dagster-local", namespace: str = "dagster"
    ) -> Path:
        """A kubeconfig with the admin token that reaches the API server through the fault
        proxy (which passes the token on), or directly when there is no proxy."""
        ca = self.plane.pki.ca_cert
        return write_token_kubeconfig(
            Path(path),
            self.url,
            self.plane.pki.admin_token,
            context=context,
            namespace=namespace,
            certificate_authority=ca,
        )

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A token of ServiceAccount `name` (TokenRequest), for clients tested under RBAC."""
        response = self._client.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            json={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds},
            },
        )
        return str(self._check(response)["status"]["token"])

    def write_token_kubeconfig(
        self, path: Path, token: str, *, context: str, namespace: str
    ) -> Path:
        """A kubeconfig like `write_kubeconfig`'s, with another identity's token."""
        return write_token_kubeconfig(
            path,
            self.url,
            token,
            context=context,
            namespace=namespace,
            certificate_authority=self.plane.pki.ca_cert,
        )

    # --- knobs -----------------------------------------------------------------------------

    def hold_unready(self, namespace: str, label_selector: str) -> None:
        holds.hold_unready(self._client, namespace, label_selector)

    def release_unready(self, namespace: str, label_selector: str) -> None:
        holds.release_unready(self._client, namespace, label_selector)

    def inject_fault(
        self,
        method: str,
        path_regex: str,
        *,
        status: int | None = 500,
        delay: float = 0,
        times: int | None = 1,
    ) -> None:
        self.faults.inject_fault(method, path_regex, status=status, delay=delay, times=times)

    def hold_requests(self, method: str, path_regex: str, count: int = 1) -> RequestGate:
        return self.faults.hold_requests(method, path_regex, count)

    def inject_conflict(self, path_regex: str, times: int = 1) -> None:
        self.faults.inject_conflict(path_regex, times)

    def clear_faults(self) -> None:
        self.faults.clear_faults()

    def reset_counts(self) -> None:
        self.faults.reset_counts()

    def append_pod_log(
        self, namespace: str, pod: str, lines: builtins.list[str], container: str | None = None
    ) -> None:
        """Add lines to a pod container's log (default: its first container)."""
        self._logs.append(namespace, pod, lines, container)


def write_token_kubeconfig(
    path: Path,
    server: str,
    token: str,
    *,
    context: str,
    namespace: str,
    certificate_authority: Path | None = None,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cluster: dict[str, str] = {"server": server}
    if certificate_authority is not None:
        cluster["certificate-authority"] = str(certificate_authority)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": context, "user": {"token": token}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": context, "namespace": namespace},
            }
        ],
        "current-context": context,
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
