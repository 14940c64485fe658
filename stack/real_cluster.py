"""The second end-to-end mode: a real cluster instead of the emulator.

With `DAGSTER_UC_E2E_CONTEXT` set (a kubeconfig context: kind, k3d, a CI cluster), the
end-to-end suite runs against that cluster. `KubectlCluster` offers the part of the
emulator's Python interface the tests use for reading and seeding (get, list, create, patch,
delete), implemented with the real kubectl, so it works with any authentication the
kubeconfig uses. The emulator's knobs (held-unready pods, injected faults and conflicts,
request counts) do not exist on a real cluster: a test that needs one is skipped there.

Environment of this mode:
- `DAGSTER_UC_E2E_CONTEXT`: the context (required to enable the mode); `KUBECONFIG` as usual.
- `DAGSTER_UC_E2E_REGISTRY`: `host:port` of a registry this machine pushes to and the
  cluster pulls from (plain HTTP, no auth), e.g. kind's local registry.
- `DAGSTER_UC_E2E_BASE_IMAGE`: a base image with Dagster installed, so the code server
  really starts (e.g. an image built `FROM python:3.11-slim` with `pip install dagster==1.8.4`).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

import pytest

ENABLE = "DAGSTER_UC_E2E_CONTEXT"

# What the emulator offers beyond reading and writing objects (tests/stack checks that each
# exists on the emulator): a test that uses one is skipped on a real cluster.
EMULATOR_KNOBS = frozenset(
    {
        "append_pod_log",
        "clear_faults",
        "controllers",
        "denied_access",
        "exec_handler",
        "hold_requests",
        "hold_unready",
        "inject_conflict",
        "inject_fault",
        "release_unready",
        "request_counts",
        "reset_counts",
        "response_counts",
        "store",
        "url",
    }
)


def real_context() -> str | None:
    return os.environ.get(ENABLE) or None


def _resource(api_version: str, plural: str) -> str:
    """kubectl's fully qualified name of a resource: `deployments.v1.apps`, `configmaps`."""
    if "/" not in api_version:
        return plural
    group, version = api_version.split("/", 1)
    return f"{plural}.{version}.{group}"


@dataclass
class KubectlCluster:
    """Reads and writes objects of a real cluster through kubectl."""

    context: str
    kubectl: str = "kubectl"
    kubeconfig: str | None = None
    dagster_version: str = "1.8.4"
    dagster_versions: dict[str, str] = field(default_factory=dict)

    def _run(self, *args: str, input: str | None = None, check: bool = True) -> str:
        cmd = [self.kubectl, "--context", self.context, *args]
        if self.kubeconfig:
            cmd += ["--kubeconfig", self.kubeconfig]
        done = subprocess.run(cmd, input=input, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])} failed: {done.stderr.strip()}")
        return done.stdout

    def _ns(self, namespace: str | None) -> list[str]:
        return ["-n", namespace] if namespace else []

    def get(
        self, api_version: str, kind_plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        out = self._run(
            "get",
            _resource(api_version, kind_plural),
            name,
            *self._ns(namespace),
            "-o",
            "json",
            "--ignore-not-found",
        )
        return json.loads(out) if out.strip() else None

    def list(
        self,
        api_version: str,
        kind_plural: str,
        namespace: str | None = None,
        label_selector: str = "",
    ) -> list[dict[str, Any]]:
        args = ["get", _resource(api_version, kind_plural), *self._ns(namespace), "-o", "json"]
        if label_selector:
            args += ["-l", label_selector]
        return list(json.loads(self._run(*args)).get("items") or [])

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return dict(json.loads(self._run("create", "-f", "-", "-o", "json", input=json.dumps(obj))))

    def patch(
        self,
        api_version: str,
        kind_plural: str,
        namespace: str | None,
        name: str,
        merge_patch: dict[str, Any],
    ) -> dict[str, Any]:
        out = self._run(
            "patch",
            _resource(api_version, kind_plural),
            name,
            *self._ns(namespace),
            "--type",
            "merge",
            "-p",
            json.dumps(merge_patch),
            "-o",
            "json",
        )
        return dict(json.loads(out))

    def delete(self, api_version: str, kind_plural: str, namespace: str | None, name: str) -> None:
        self._run(
            "delete",
            _resource(api_version, kind_plural),
            name,
            *self._ns(namespace),
            "--ignore-not-found",
            "--wait=false",
        )

    def __getattr__(self, knob: str) -> Any:
        """The emulator's test knobs (EMULATOR_KNOBS) skip the test; any other name is a
        mistake and raises, so a typo fails instead of skipping."""
        if knob not in EMULATOR_KNOBS:
            raise AttributeError(f"{type(self).__name__} has no attribute {knob!r}")
        pytest.skip(f"needs the emulator's `{knob}`, which a real cluster does not have")


@dataclass(frozen=True)
class RemoteRegistry:
    """A registry given by `DAGSTER_UC_E2E_REGISTRY` (plain HTTP, no auth)."""

    host: str
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def admin_headers(self, repository: str) -> dict[str, str]:
        return {}
