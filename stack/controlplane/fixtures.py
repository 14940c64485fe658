"""Pytest fixtures for the real control plane (registered in tests/conftest.py).

- `control_plane` (session): builds the binaries on first use (cached under `.cache/`),
  starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok in the
  session's temp dir and the fault proxy in front of them, and yields a `RealCluster`, which
  the suites use exactly as they use the emulator. Everything is stopped at the end.

`DAGSTER_UC_E2E_CLUSTER=real` makes the end-to-end suite run on it instead of the emulator
(`make test` runs the e2e suite once on each).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .build import ensure_control_plane
from .client import RealCluster
from .cluster import ControlPlane

BACKEND_VARIABLE = "DAGSTER_UC_E2E_CLUSTER"
BACKENDS = ("emulator", "real")


def e2e_backend() -> str:
    backend = os.environ.get(BACKEND_VARIABLE) or "emulator"
    if backend not in BACKENDS:
        raise pytest.UsageError(
            f"{BACKEND_VARIABLE}={backend!r}: choose one of {', '.join(BACKENDS)}"
        )
    return backend


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    binaries = ensure_control_plane(verbose=True)
    plane = ControlPlane(binaries, tmp_path_factory.mktemp("controlplane"), die_with_parent=True)
    plane.start()
    proxy = plane.fault_proxy()
    try:
        proxy.start()
        cluster = RealCluster(plane, proxy)
        try:
            yield cluster
        finally:
            cluster.close()
    finally:
        proxy.stop()
        plane.stop()
