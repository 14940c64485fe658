"""The Dagster version of the cluster, read from the daemon Deployment Dagster's chart installs:
the `app.kubernetes.io/version` label, then the `helm.sh/chart` label, then the image tag, then
`dagster --version` in a daemon pod (see also test_instance_dev_label.py).

The pure order is checked on `version_from_deployment`; `cluster_dagster_version` is checked
with a real lightkube client against the emulator's seeded Dagster instance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dagster_uc.instance import InstanceVersion, cluster_dagster_version, version_from_deployment
from dagster_uc.kube import make_client
from stack.pytest_plugin import KubeEnv, wait_rolled_out

DAEMON = "dagster-daemon"
IMAGE = "docker.io/dagster/dagster-celery-k8s:1.8.4"


# --- the order of the sources (pure) ----------------------------------------------------------


def test_the_version_label_wins_over_the_chart_label_and_the_image() -> None:
    labels = {"app.kubernetes.io/version": "1.8.4", "helm.sh/chart": "dagster-1.7.0"}
    found = version_from_deployment(labels, ["dagster/dagster-k8s:1.6.0"])
    assert found.version == "1.8.4"
    assert "app.kubernetes.io/version" in found.source


def test_a_quoted_version_label_is_unquoted() -> None:
    assert version_from_deployment({"app.kubernetes.io/version": '"1.8.4"'}, []).version == "1.8.4"


def test_the_chart_label_is_next() -> None:
    found = version_from_deployment({"helm.sh/chart": "dagster-1.8.4"}, [IMAGE.replace("4", "0")])
    assert found.version == "1.8.4"
    assert "helm.sh/chart" in found.source


def test_an_empty_version_label_falls_through_to_the_chart_label() -> None:
    labels = {"app.kubernetes.io/version": "", "helm.sh/chart": "dagster-1.8.4"}
    assert version_from_deployment(labels, []).version == "1.8.4"


@pytest.mark.parametrize(
    "chart",
    ["dagster-user-deployments-1.8.4", "my-dagster-1.8.4", "dagster-latest", "dagster"],
)
def test_another_charts_label_does_not_count_and_the_image_tag_is_used(chart: str) -> None:
    found = version_from_deployment({"helm.sh/chart": chart}, [IMAGE])
    assert found.version == "1.8.4"
    assert found.source == f"image {IMAGE}"


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("dagster/dagster-k8s:1.8.4", "1.8.4"),
        ("registry.example:5000/dagster/dagster-k8s:1.8.4", "1.8.4"),
        ("dagster/dagster-k8s:1.9.0rc1", "1.9.0rc1"),
    ],
)
def test_the_image_tag_names_the_version(image: str, version: str) -> None:
    assert version_from_deployment({}, [image]).version == version


@pytest.mark.parametrize(
    "image",
    [
        "dagster/dagster-k8s:latest",
        "dagster/dagster-k8s",
        "registry.example:5000/dagster/dagster-k8s",
        "dagster/dagster-k8s@sha256:" + "a" * 64,
        "",
    ],
)
def test_images_without_a_version_tag_name_no_version(image: str) -> None:
    found = version_from_deployment({}, [image])
    assert found.version is None
    assert "names a version" in found.source


def test_the_first_image_with_a_version_tag_counts() -> None:
    found = version_from_deployment({}, ["busybox:latest", "dagster/dagster-k8s:1.8.4", "x:1.0.0"])
    assert found.version == "1.8.4"
    assert found.source == "image dagster/dagster-k8s:1.8.4"


# --- against the emulator's seeded Dagster instance -------------------------------------------


@pytest.fixture
def daemon(kube: KubeEnv) -> Callable[[], InstanceVersion]:
    """A reader of the seeded daemon Deployment's version through the real client."""
    client = make_client(kube.context, kube.namespace, {"KUBECONFIG": str(kube.kubeconfig)})

    def read() -> InstanceVersion:
        return cluster_dagster_version(client, kube.namespace, DAEMON)

    return read


def patch_daemon(kube: KubeEnv, patch: dict[str, Any]) -> None:
    kube.emulator.patch("apps/v1", "deployments", kube.namespace, DAEMON, patch)
    wait_rolled_out(kube.emulator, kube.namespace, DAEMON)


def test_the_seeded_instance_reports_its_version_label(kube: KubeEnv, daemon: Any) -> None:
    found = daemon()
    assert found.version == "1.8.4"
    assert "app.kubernetes.io/version" in found.source


def test_without_the_version_label_the_chart_label_is_read(kube: KubeEnv, daemon: Any) -> None:
    patch_daemon(kube, {"metadata": {"labels": {"app.kubernetes.io/version": None}}})
    found = daemon()
    assert (found.version, found.source) == ("1.8.4", "label helm.sh/chart")


def test_without_labels_the_image_tag_is_read(kube: KubeEnv, daemon: Any) -> None:
    patch_daemon(
        kube,
        {"metadata": {"labels": {"app.kubernetes.io/version": None, "helm.sh/chart": None}}},
    )
    found = daemon()
    assert found.version == "1.8.4"
    assert found.source == f"image {IMAGE}"


def test_nothing_naming_a_version_asks_the_daemon_pod(kube: KubeEnv, daemon: Any) -> None:
    patch_daemon(
        kube,
        {
            "metadata": {"labels": {"app.kubernetes.io/version": None, "helm.sh/chart": None}},
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "dagster", "image": "dagster/k8s:latest"}]}
                }
            },
        },
    )
    found = daemon()
    assert found.version == "1.8.4"
    assert found.source.startswith("`dagster --version` in pod dagster-daemon-")


def test_a_missing_daemon_deployment_gives_none(kube: KubeEnv, daemon: Any) -> None:
    kube.emulator.delete("apps/v1", "deployments", kube.namespace, DAEMON)
    found = daemon()
    assert found.version is None
    assert found.source == f"Deployment {DAEMON} not found"
