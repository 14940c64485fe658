"""The deployment history stays small (compaction) and never hands a tag out twice."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from dagster_uc.history import (
    FORGET_RECORDS_AFTER,
    HISTORY_LIMIT,
    DeploymentHistory,
    DeploymentRecord,
    compact_history,
    highest_tags,
    history_to_document,
)
from dagster_uc.state import (
    HISTORY_KEY,
    MAX_CONFIGMAP_BYTES,
    VALUES_KEY,
    StateSnapshot,
    StateTooLarge,
    check_size,
    compacted,
    data_size,
    dump_history_yaml,
    dump_yaml,
)
from dagster_uc.values import remove_entries
from dagster_uc.versioning import next_tag

NOW = dt.datetime(2026, 11, 30, 5, 18, 43, tzinfo=dt.timezone.utc)
VERSION = "1.8.4"


def at(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def record(tag: str, action: str = "deploy", when: dt.datetime = NOW) -> DeploymentRecord:
    """A record as long as real ones get: CI runner host, full commit, long branch name (a
    delete records neither commit nor branch)."""
    deployed = action != "delete"
    return DeploymentRecord(
        tag=tag,
        by="runner@fv-az123-456.internal.cloudapp.net",
        at=at(when),
        action=action,
        commit="3f2a9c1d4b5e6f708192a3b4c5d6e7f8091a2b3c" if deployed else None,
        branch="feature/JIRA-1234-a-rather-long-branch-description" if deployed else None,
    )


def entry(name: str, tag: str) -> dict[str, object]:
    return {"name": name, "image": {"repository": f"registry.example/team/{name}", "tag": tag}}


def deploy(state: StateSnapshot, name: str, when: dt.datetime) -> StateSnapshot:
    """What `deploy` writes: reserve the next tag, then the entry and its record."""
    tags = [*state.history_of(name).tags]
    current = next((e for e in state.values["deployments"] if e["name"] == name), None)
    if current:
        tags.append(current["image"]["tag"])
    tag = next_tag(VERSION, [], tags)
    state = state.with_history(name, state.history_of(name).with_tag(tag))
    return state.with_deployment(entry(name, tag), record(tag, when=when))


def delete(state: StateSnapshot, name: str, when: dt.datetime) -> StateSnapshot:
    current = next(e for e in state.values["deployments"] if e["name"] == name)
    state = replace(state, values=remove_entries(state.values, {name}))
    return state.with_history(
        name, state.history_of(name).with_record(record(current["image"]["tag"], "delete", when))
    )


def configmap_data(state: StateSnapshot) -> dict[str, str]:
    return {
        VALUES_KEY: dump_yaml(state.values),
        HISTORY_KEY: dump_history_yaml(history_to_document(state.history)),
    }


def test_highest_tags_keeps_one_per_dagster_version() -> None:
    tags = ["1.8.4-0", "1.8.4-12", "1.8.4-3", "1.7.10-40", "1.10.0-1", "seed", "latest"]
    assert highest_tags(tags) == ["1.7.10-40", "1.8.4-12", "1.10.0-1"]


def test_500_branches_deployed_and_deleted_stay_under_256_kib() -> None:
    """30 deploys then a delete for each of 500 branch names, written as every command writes
    (compacted before each write), in the last days: the ConfigMap stays far below its limit,
    and each name's next tag is still one above every tag it ever had."""
    history: dict[str, DeploymentHistory] = {}
    start = NOW - dt.timedelta(days=20)
    for index in range(500):
        # Compaction treats each name on its own: one name's writes are played alone (fast),
        # then its history joins the others.
        name = f"demo-project--feature-jira-{index:04d}-a-rather-long-branch-name"
        when = start + dt.timedelta(minutes=index * 50)
        alone = StateSnapshot(values={"deployments": []})
        for _ in range(30):
            alone = compacted(deploy(alone, name, when), when)
        history[name] = compacted(delete(alone, name, when), when).history[name]
    state = StateSnapshot(values={"deployments": []}, history=history)
    size = data_size(configmap_data(state))
    assert size < 256 * 1024, f"{size // 1024} KiB"
    for name, history in state.history.items():
        assert next_tag(VERSION, [], history.tags) == f"{VERSION}-30", name
        assert [r.action for r in history.records] == ["deploy", "delete"]


def test_a_name_deleted_long_ago_keeps_only_its_highest_tag() -> None:
    state = StateSnapshot(values={"deployments": []})
    long_ago = NOW - FORGET_RECORDS_AFTER - dt.timedelta(days=1)
    for _ in range(3):
        state = deploy(state, "p--old", long_ago)
    state = delete(state, "p--old", long_ago)
    state = deploy(state, "p--recent", NOW)
    state = delete(state, "p--recent", NOW)

    history = compacted(state, NOW).history

    assert history["p--old"] == DeploymentHistory(tags=["1.8.4-2"], records=[])
    assert history["p--recent"].tags == ["1.8.4-0"]
    assert [r.action for r in history["p--recent"].records] == ["deploy", "delete"]


def test_a_deployed_name_keeps_its_rollback_window_and_current_tag() -> None:
    state = StateSnapshot(values={"deployments": []})
    for _ in range(HISTORY_LIMIT + 15):
        state = deploy(state, "p--live", NOW)

    history = compacted(state, NOW).history["p--live"]

    assert len(history.records) == HISTORY_LIMIT
    assert history.records[-1].tag == f"{VERSION}-{HISTORY_LIMIT + 14}"
    assert history.previous_tag(history.records[-1].tag) == f"{VERSION}-{HISTORY_LIMIT + 13}"
    assert set(history.tags) == {r.tag for r in history.records}


def test_a_reserved_tag_of_a_name_never_deployed_is_kept() -> None:
    reserved = {"p--first": DeploymentHistory(tags=["1.8.4-0", "1.8.4-1"])}
    assert compact_history(reserved, {}, NOW) == {"p--first": DeploymentHistory(tags=["1.8.4-1"])}


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["deploy", "delete", "reserve"]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=0, max_value=90),
    ),
    min_size=1,
    max_size=60,
)


@given(OPERATIONS)
def test_compaction_never_lowers_the_next_tag(operations: list[tuple[str, str, int]]) -> None:
    """Compacted after every write or not, each name's next tag is the same: every tag ever
    reserved stays reserved."""
    full = StateSnapshot(values={"deployments": []})
    small = full
    for action, name, days in operations:
        when = NOW + dt.timedelta(days=days)
        deployed = any(e["name"] == name for e in full.values["deployments"])
        if action == "delete" and not deployed:
            continue
        if action == "reserve":
            tag = next_tag(VERSION, [], full.history_of(name).tags)
            full = full.with_history(name, full.history_of(name).with_tag(tag))
            small = small.with_history(name, small.history_of(name).with_tag(tag))
        else:
            step = deploy if action == "deploy" else delete
            full, small = step(full, name, when), step(small, name, when)
        small = compacted(small, when)
        for known in full.history:
            assert next_tag(VERSION, [], small.history_of(known).tags) == next_tag(
                VERSION, [], full.history_of(known).tags
            )


def test_a_write_over_900_kib_is_refused_with_what_to_prune() -> None:
    big = {VALUES_KEY: "x" * (MAX_CONFIGMAP_BYTES + 1)}
    try:
        check_size("values-cm", big, {VALUES_KEY: "small"}, deployments=700)
    except StateTooLarge as exc:
        message = str(exc)
    else:
        raise AssertionError("a ConfigMap over the limit was not refused")
    assert "values-cm" in message and "700 deployments" in message
    assert "nothing was written" in message
    assert "dagster-uc deployment prune" in message and "deployment delete" in message
    # A write that makes an oversized ConfigMap smaller (a delete, a prune) goes through.
    check_size("values-cm", big, {VALUES_KEY: "x" * (MAX_CONFIGMAP_BYTES + 100)})
    check_size("values-cm", {VALUES_KEY: "x" * (MAX_CONFIGMAP_BYTES - len(VALUES_KEY))}, None)
