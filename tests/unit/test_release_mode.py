"""Release naming and mode resolution of `helm_release_mode` (pure)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagster_uc.config import Config
from dagster_uc.release_mode import (
    MAX_RELEASE_NAME,
    location_lease_name,
    location_release_name,
    location_values,
    resolve_mode,
)
from dagster_uc.rollout_location import PARALLEL_HELM, UNINSTALL_BATCH, uninstall_batches

HELM_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def config(**overrides: object) -> Config:
    base = {
        "kubernetes_context": "ctx",
        "namespace": "ns",
        "container_registry": "registry.example",
        "dagster_version": "1.8.4",
        "image_prefix": "team",
        "code_path": "defs.py",
        "docker_root": "/app",
        "dockerfile": "Dockerfile",
    }
    return Config(**{**base, **overrides})


def test_short_names_stay_readable() -> None:
    assert (
        location_release_name("dagster-user-code", "proj--feat-x")
        == "dagster-user-code-proj--feat-x"
    )


@pytest.mark.parametrize(
    "location",
    [
        "a" * 63,
        "project-with-a-long-name--feature-branch-with-a-long-name-too",
        "UPPER_and.dots",
        "x-",
        "-",
    ],
)
def test_every_name_is_a_valid_release_name(location: str) -> None:
    name = location_release_name("dagster-user-code", location)
    assert len(name) <= MAX_RELEASE_NAME
    assert HELM_NAME.match(name), name
    assert name == location_release_name("dagster-user-code", location)


def test_long_names_that_share_a_prefix_get_different_releases() -> None:
    base = "project--" + "b" * 60
    first = location_release_name("dagster-user-code", base + "1")
    second = location_release_name("dagster-user-code", base + "2")
    assert first != second
    assert first[:40] == second[:40]


def test_the_lease_name_is_per_location_and_a_dns_subdomain() -> None:
    assert location_lease_name("dagster-uc-semaphore", "proj--a") == "dagster-uc-semaphore.proj--a"
    assert location_lease_name("s", "a") != location_lease_name("s", "b")
    assert len(location_lease_name("s", "x" * 300)) <= 253


def test_location_values_hold_only_the_entry_and_its_service_owned_by_the_release() -> None:
    values = {
        "deployments": [{"name": "a"}, {"name": "b"}],
        "imagePullSecrets": [{"name": "pull"}],
    }
    entry = {"name": "b", "service": {"annotations": {"meta.helm.sh/release-name": "shared"}}}
    document = location_values(values, entry, "shared-b", "ns")
    assert document["imagePullSecrets"] == [{"name": "pull"}]
    assert [e["name"] for e in document["deployments"]] == ["b"]
    annotations = document["deployments"][0]["service"]["annotations"]
    assert annotations["meta.helm.sh/release-name"] == "shared-b"
    assert annotations["meta.helm.sh/release-namespace"] == "ns"
    assert entry["service"]["annotations"]["meta.helm.sh/release-name"] == "shared"


def test_auto_is_per_location_without_a_shared_release_and_shared_with_one() -> None:
    auto = config()
    assert auto.helm_release_mode == "auto"
    assert resolve_mode(auto, lambda: False) == ("per-location", None)
    mode, hint = resolve_mode(auto, lambda: True)
    assert mode == "shared"
    assert hint is not None and "dagster-uc migrate --to per-location" in hint


@pytest.mark.parametrize("mode", ["shared", "per-location"])
def test_an_explicit_mode_never_asks_the_cluster(mode: str) -> None:
    def ask() -> bool:
        raise AssertionError("asked the cluster")

    assert resolve_mode(config(helm_release_mode=mode), ask) == (mode, None)


def test_an_unknown_mode_is_a_config_error() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        config(helm_release_mode="per-branch")


def test_the_values_document_reads_back_as_written() -> None:
    """dump_yaml uses libyaml's emitter when present: the document must read back the same."""
    from dagster_uc.state import dump_yaml, parse_values_text

    document = {
        "deployments": [
            {"name": "a", "annotations": {"note": "é ü " * 40, "empty": ""}, "port": 3030},
            {"name": "b", "env": [{"name": "X", "value": "1.10"}], "tag": "1.8.4-0"},
        ],
        "imagePullSecrets": [],
    }
    assert parse_values_text(dump_yaml(document), source="test") == document


SHARED_RELEASE = "dagster-user-code"


def test_doctor_names_the_mode_auto_chose_and_why() -> None:
    from dagster_uc.doctor.cluster import describe_release_mode

    fresh = describe_release_mode(config(helm_release_mode="auto"), False, {})
    assert (fresh.status, fresh.details["mode"]) == ("ok", "per-location")
    assert "auto: no release dagster-user-code" in fresh.message

    owners = {"a": SHARED_RELEASE, "b": SHARED_RELEASE}
    shared = describe_release_mode(config(helm_release_mode="auto"), True, owners)
    assert (shared.status, shared.details["mode"]) == ("ok", "shared")
    assert "holds 2 location(s)" in shared.message
    assert "migrate --to per-location" in shared.message


def test_doctor_warns_when_the_releases_do_not_fit_the_mode() -> None:
    from dagster_uc.doctor.cluster import describe_release_mode

    own = location_release_name(SHARED_RELEASE, "b")
    half_moved = {"a": SHARED_RELEASE, "b": own}
    shared = describe_release_mode(config(helm_release_mode="shared"), True, half_moved)
    assert shared.status == "warning"
    assert "1 location(s) have a release of their own (b)" in shared.message
    assert shared.fix is not None and "migrate --to shared" in shared.fix

    pinned = describe_release_mode(config(helm_release_mode="per-location"), True, half_moved)
    assert pinned.status == "warning"
    assert "still holds 1 location(s)" in pinned.message
    assert pinned.fix == "Move them with `dagster-uc migrate --to per-location`."

    moved = describe_release_mode(config(helm_release_mode="per-location"), False, {"b": own})
    assert moved.status == "ok" and "1 location(s), each in a release of its own" in moved.message


@given(st.lists(st.integers(), unique=True, max_size=300))
def test_uninstall_batches_cover_every_name_once_in_order(names: list[int]) -> None:
    labels = [f"loc-{n}" for n in names]
    batches = uninstall_batches(labels)
    assert [name for batch in batches for name in batch] == labels
    assert all(0 < len(batch) <= UNINSTALL_BATCH for batch in batches)
    if labels:
        sizes = [len(batch) for batch in batches]
        assert max(sizes) - min(sizes) <= 1
        # a few Helm processes at once whenever there are that many names
        assert len(batches) >= min(PARALLEL_HELM, len(labels))
