"""The real-cluster mode's kubectl facade, checked against the emulator through real kubectl."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.real_cluster import EMULATOR_KNOBS, KubectlCluster
from stack.tools import Tools


def test_the_facade_reads_and_writes_through_kubectl(
    emulator, tools: Tools, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    kubeconfig = emulator.write_kubeconfig(
        tmp_path / "kc", context="real-like", namespace="dagster"
    )
    cluster = KubectlCluster("real-like", kubectl=str(tools.kubectl), kubeconfig=str(kubeconfig))
    namespace = "facade-check"
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": namespace, "labels": {"app": "x"}},
            "data": {"k": "v"},
        }
    )
    assert cluster.get("v1", "configmaps", namespace, "cm")["data"] == {"k": "v"}  # type: ignore[index]
    assert cluster.get("v1", "configmaps", namespace, "missing") is None
    cluster.patch("v1", "configmaps", namespace, "cm", {"data": {"k": "w"}})
    assert [c["data"]["k"] for c in cluster.list("v1", "configmaps", namespace, "app=x")] == ["w"]
    assert cluster.get("apps/v1", "deployments", "dagster", "dagster-daemon") is not None
    cluster.delete("v1", "configmaps", namespace, "cm")
    assert emulator.get("v1", "configmaps", namespace, "cm") is None
    with pytest.raises(pytest.skip.Exception):
        cluster.hold_unready(namespace, "deployment=x")
    with pytest.raises(AttributeError, match="hold_unredy"):  # a typo fails, never skips
        cluster.hold_unredy(namespace, "deployment=x")


def test_every_knob_that_skips_exists_on_the_emulator(emulator) -> None:  # type: ignore[no-untyped-def]
    assert {knob for knob in EMULATOR_KNOBS if not hasattr(emulator, knob)} == set()
