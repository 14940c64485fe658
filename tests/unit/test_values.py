"""The values and workspace documents: pure rules, no cluster."""

from __future__ import annotations

import datetime as dt

import yaml
from hypothesis import given
from hypothesis import strategies as st

from dagster_uc.config import Config
from dagster_uc.lease import LockStatus
from dagster_uc.lifecycle import parse_duration, plan_prune, rows_from_state
from dagster_uc.values import (
    DeploymentHistory,
    DeploymentRecord,
    build_entry,
    find_entry,
    history_from_document,
    history_to_document,
    record_of,
    remove_entries,
    retag_entry,
    upsert_entry,
)
from dagster_uc.workspace import workspace_document, workspace_yaml


def make_config(**overrides: object) -> Config:
    base: dict[str, object] = {
        "code_path": "pkg/definitions.py",
        "container_registry": "reg.example.io",
        "dagster_version": "1.8.4",
        "kubernetes_context": "ctx",
        "namespace": "dagster",
        "docker_root": "/app",
        "node": "small",
        "limits": {"cpu": "2", "memory": "2Gi"},
        "requests": {"cpu": "1", "memory": "1Gi"},
        "user_code_deployment_env": [{"name": "ON_K8S", "value": "True"}],
        "user_code_deployment_env_secrets": [{"name": "my-secret"}],
    }
    base.update(overrides)
    return Config.model_validate(base)


RECORD = DeploymentRecord(
    tag="1.8.4-3", by="ann@laptop", at="2026-11-20T10:00:00Z", commit="abc123", branch="feat/x"
)


def entry(name: str, tag: str = "1.8.4-0", record: DeploymentRecord = RECORD) -> dict:
    return build_entry(
        make_config(), name=name, repository=f"reg.example.io/{name}", tag=tag, record=record
    )


def test_entry_has_the_shape_of_the_original_tool_and_the_chart() -> None:
    e = entry("proj--feat-x", "1.8.4-3")
    assert e["image"] == {
        "repository": "reg.example.io/proj--feat-x",
        "tag": "1.8.4-3",
        "pullPolicy": "IfNotPresent",
    }
    assert e["dagsterApiGrpcArgs"] == ["-f", "/app/pkg/definitions.py"]
    assert e["port"] == 3030
    assert e["env"] == [{"name": "ON_K8S", "value": "True"}]
    assert e["envSecrets"] == [{"name": "my-secret"}]
    assert e["resources"] == {
        "limits": {"cpu": "2", "memory": "2Gi"},
        "requests": {"cpu": "1", "memory": "1Gi"},
    }
    assert e["nodeSelector"] == {"agentpool": "small"}
    assert e["tolerations"][0]["value"] == "small"
    assert e["readinessProbe"]["enabled"] is True
    assert record_of(e) == RECORD


def test_no_node_means_no_selector_or_toleration() -> None:
    e = build_entry(make_config(node=None), name="a", repository="r/a", tag="t", record=RECORD)
    assert e["nodeSelector"] == {} and e["tolerations"] == []


def test_upsert_replaces_in_place_and_keeps_unrelated_keys() -> None:
    values = {
        "deployments": [entry("a"), entry("b")],
        "imagePullSecrets": [{"name": "x"}],
        "custom": {"k": 1},
    }
    updated = upsert_entry(values, entry("a", "1.8.4-7"))
    assert [e["name"] for e in updated["deployments"]] == ["a", "b"]
    assert find_entry(updated, "a")["image"]["tag"] == "1.8.4-7"
    assert updated["custom"] == {"k": 1} and updated["imagePullSecrets"] == [{"name": "x"}]
    assert find_entry(values, "a")["image"]["tag"] == "1.8.4-0", "the input is not mutated"
    appended = upsert_entry(values, entry("c"))
    assert [e["name"] for e in appended["deployments"]] == ["a", "b", "c"]


def test_remove_entries() -> None:
    values = {"deployments": [entry("a"), entry("b"), entry("c")]}
    assert [e["name"] for e in remove_entries(values, {"a", "c"})["deployments"]] == ["b"]


def test_entry_written_by_the_original_tool_has_no_record() -> None:
    original = {
        "name": "old",
        "image": {"repository": "r/old", "tag": "1.8.4-2"},
        "annotations": {},
    }
    assert record_of(original) is None
    retagged = retag_entry(original, tag="1.8.4-1", record=RECORD)
    assert retagged["image"]["tag"] == "1.8.4-1"
    assert record_of(retagged) == DeploymentRecord(
        tag="1.8.4-1", by=RECORD.by, at=RECORD.at, commit="abc123", branch="feat/x"
    )


def test_workspace_lists_every_location_with_ui_names() -> None:
    values = {"deployments": [entry("proj--feat-x"), entry("plain")]}
    assert workspace_document(values) == {
        "load_from": [
            {"grpc_server": {"host": "proj--feat-x", "port": 3030, "location_name": "proj:feat-x"}},
            {"grpc_server": {"host": "plain", "port": 3030, "location_name": "plain"}},
        ]
    }
    assert yaml.safe_load(workspace_yaml({"deployments": []})) == {"load_from": []}


def test_history_round_trip_and_previous_tag() -> None:
    history = DeploymentHistory()
    for tag in ["1.8.4-0", "1.8.4-1", "1.8.4-2"]:
        history = history.with_record(DeploymentRecord(tag=tag, by="x", at="t"))
    assert history.tags == ["1.8.4-0", "1.8.4-1", "1.8.4-2"]
    assert history.previous_tag("1.8.4-2") == "1.8.4-1"
    assert history.previous_tag("1.8.4-0") is None
    restored = history_from_document(
        yaml.safe_load(yaml.safe_dump(history_to_document({"a": history})))
    )
    assert restored["a"] == history


@given(st.lists(st.sampled_from(["1.8.4-0", "1.8.4-1", "1.8.4-2", "1.8.4-3"]), max_size=40))
def test_history_keeps_every_tag_once_and_a_bounded_record_window(tags: list[str]) -> None:
    history = DeploymentHistory()
    for tag in tags:
        history = history.with_record(DeploymentRecord(tag=tag, by="x", at="t"))
    assert sorted(history.tags) == sorted(set(tags))
    assert len(history.records) == min(len(tags), 20)


def test_rows_from_state_shows_what_it_can_for_original_entries() -> None:
    original = {"name": "old--b", "image": {"repository": "r/old--b", "tag": "1.8.4-2"}}
    rows = rows_from_state({"deployments": [entry("a"), original]}, {"a": (1, 1)})
    assert rows[0].deployed_by == "ann@laptop" and rows[0].ready == 1
    assert rows[1].ui_name == "old:b" and rows[1].deployed_by is None and rows[1].tag == "1.8.4-2"


def test_plan_prune_gone_branches_age_and_cicd() -> None:
    now = dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc)
    old = DeploymentRecord(tag="t", by="x", at="2026-11-01T00:00:00Z", branch="feat/old")
    live = DeploymentRecord(tag="t", by="x", at="2026-11-26T00:00:00Z", branch="feat/live")
    gone = DeploymentRecord(tag="t", by="x", at="2026-11-26T00:00:00Z", branch="feat/gone")
    cicd = DeploymentRecord(tag="t", by="x", at="2026-01-01T00:00:00Z", cicd=True)
    values = {
        "deployments": [
            entry("p--feat-old", record=old),
            entry("p--feat-live", record=live),
            entry("p--feat-gone", record=gone),
            entry("p--dev", record=cicd),
            {"name": "p--legacy-branch", "image": {"tag": "1"}},
            {"name": "p--acc", "image": {"tag": "1"}},
        ]
    }
    remote = {"feat/old", "feat/live", "legacy/branch"}
    kwargs = {"project": "p", "environments": {"dev", "acc"}, "now": now}
    names = [
        c.name
        for c in plan_prune(
            values, remote_branches=remote, older_than=None, include_cicd=False, **kwargs
        )
    ]
    assert names == ["p--feat-gone"]
    names = [
        c.name
        for c in plan_prune(
            values,
            remote_branches=remote,
            older_than=parse_duration("7d"),
            include_cicd=False,
            **kwargs,
        )
    ]
    assert names == ["p--feat-old", "p--feat-gone"]
    names = [
        c.name
        for c in plan_prune(
            values,
            remote_branches=None,
            older_than=parse_duration("7d"),
            include_cicd=True,
            **kwargs,
        )
    ]
    assert names == ["p--feat-old", "p--dev"]


def test_lock_status_expiry() -> None:
    start = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.timezone.utc)
    status = LockStatus("l", "ann@host pid=1 id=x", start, start, 30, True)
    assert status.is_held(start + dt.timedelta(seconds=29))
    assert not status.is_held(start + dt.timedelta(seconds=31))
    assert not LockStatus("l", None, None, None, 30, True).is_held(start)


def test_upsert_puts_the_entrys_pull_secrets_where_the_chart_reads_them() -> None:
    """Dagster's chart reads only the top-level `imagePullSecrets`: an entry's own list is
    merged into it on every put; secrets someone else listed there stay."""
    values = {"deployments": [], "imagePullSecrets": [{"name": "team-cred"}], "custom": 1}
    e = {**entry("a"), "imagePullSecrets": [{"name": "regcred"}, {"name": "team-cred"}]}

    updated = upsert_entry(values, e)

    assert updated["imagePullSecrets"] == [{"name": "team-cred"}, {"name": "regcred"}]
    assert updated["custom"] == 1
    assert values["imagePullSecrets"] == [{"name": "team-cred"}], "the input is not mutated"
    assert upsert_entry({"deployments": []}, entry("b"))["imagePullSecrets"] == []
