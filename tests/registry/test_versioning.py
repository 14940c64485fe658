"""Tag versioning and image-prune planning (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagster_uc.versioning import (
    next_tag,
    parse_version_tag,
    plan_image_prune,
    split_version_tag,
    version_key,
)


def test_parse_version_tag() -> None:
    assert parse_version_tag("1.7.10-3", "1.7.10") == 3
    assert parse_version_tag("1.7.10-03", "1.7.10") == 3
    assert parse_version_tag("1.7.10-3", "1.7.1") is None
    assert parse_version_tag("1.7.1-3", "1.7.10") is None
    assert parse_version_tag("1.7.10-x", "1.7.10") is None
    assert parse_version_tag("1.7.10-", "1.7.10") is None
    assert parse_version_tag("1.7.10-²", "1.7.10") is None
    assert parse_version_tag("latest", "1.7.10") is None


def test_next_tag() -> None:
    assert next_tag("1.7.10", []) == "1.7.10-0"
    assert next_tag("1.7.10", ["latest", "1.7.9-40"]) == "1.7.10-0"
    assert next_tag("1.7.10", ["1.7.10-0", "1.7.10-9", "1.7.10-10"]) == "1.7.10-11"
    # a wiped registry never hands out a recorded tag again
    assert next_tag("1.7.10", [], ["1.7.10-4", "1.7.9-20"]) == "1.7.10-5"
    assert next_tag("1.7.10", ["1.7.10-2"], ["1.7.10-7"]) == "1.7.10-8"
    assert next_tag("1.7.10", ["1.7.10-12"], ["1.7.10-7"]) == "1.7.10-13"


@given(
    st.lists(st.integers(0, 10_000)),
    st.lists(st.integers(0, 10_000)),
    st.lists(st.text(max_size=12)),
)
def test_next_tag_is_above_everything_seen(
    registry_ns: list[int], recorded_ns: list[int], noise: list[str]
) -> None:
    version = "1.8.2"
    registry = [f"{version}-{n}" for n in registry_ns] + noise
    recorded = [f"{version}-{n}" for n in recorded_ns] + [f"1.8.1-{n + 5}" for n in recorded_ns]
    tag = next_tag(version, registry, recorded)
    n = parse_version_tag(tag, version)
    assert n is not None
    assert tag not in registry and tag not in recorded
    assert n == max([-1, *registry_ns, *recorded_ns]) + 1


def test_version_order() -> None:
    ordered = ["1.7.9", "1.7.10rc1", "1.7.10", "1.7.10.post1", "1.8.0.dev0", "1.8.0a1", "1.8.0"]
    assert sorted(ordered, key=version_key) == ordered
    assert version_key("1.8") == version_key("1.8.0")
    assert split_version_tag("1.8.0rc1-3") == ("1.8.0rc1", 3)
    assert split_version_tag("latest") is None
    assert split_version_tag("main-3") is None


def test_plan_keeps_newest_and_protected() -> None:
    tags = {f"1.7.10-{i}": f"sha256:{i:064x}" for i in range(10)}
    tags["1.8.0-0"] = "sha256:" + "a" * 64
    tags["latest"] = tags["1.8.0-0"]
    plan = plan_image_prune(tags, keep=3, protected_tags={"1.7.10-2"})
    assert plan.kept == ("1.8.0-0", "1.7.10-9", "1.7.10-8")
    assert [s.tag for s in plan.skipped] == ["1.7.10-2"]
    assert "protected" in plan.skipped[0].reason
    assert plan.untouched == ("latest",)
    assert sorted(tag for tag, _ in plan.to_delete) == sorted(
        f"1.7.10-{i}" for i in (0, 1, 3, 4, 5, 6, 7)
    )


def test_plan_never_deletes_a_digest_that_stays() -> None:
    shared = "sha256:" + "b" * 64
    tags = {
        "1.7.10-0": shared,
        "1.7.10-1": "sha256:" + "c" * 64,
        "1.7.10-2": "sha256:" + "c" * 64,
        "1.7.10-3": shared,
        "dev": "sha256:" + "d" * 64,
        "1.7.10-4": "sha256:" + "d" * 64,
        "1.7.10-5": "sha256:" + "e" * 64,
    }
    plan = plan_image_prune(tags, keep=2)
    assert plan.kept == ("1.7.10-5", "1.7.10-4")
    # 1.7.10-4 is kept, and "dev" shares the digest of 1.7.10-4; -0 and -3 share one digest
    deletions = {d.digest: set(d.tags) for d in plan.deletions}
    assert deletions == {
        shared: {"1.7.10-0", "1.7.10-3"},
        "sha256:" + "c" * 64: {"1.7.10-1", "1.7.10-2"},
    }
    plan = plan_image_prune(tags, keep=1, protected_tags={"1.7.10-3"})
    assert {s.tag: s.reason for s in plan.skipped} == {
        "1.7.10-4": "shares its image with tag dev, which stays",
        "1.7.10-3": "protected (deployed or in a deployment's recorded history)",
        "1.7.10-0": "shares its image with tag 1.7.10-3, which stays",
    }


def test_plan_restricted_to_one_dagster_version() -> None:
    tags = {"1.7.10-0": "sha256:1", "1.7.10-1": "sha256:2", "1.8.0-0": "sha256:3"}
    plan = plan_image_prune(tags, keep=0, dagster_version="1.7.10")
    assert plan.untouched == ("1.8.0-0",)
    assert sorted(t for t, _ in plan.to_delete) == ["1.7.10-0", "1.7.10-1"]
    with pytest.raises(ValueError):
        plan_image_prune(tags, keep=-1)


tag_names = st.one_of(
    st.builds(
        lambda v, n: f"{v}-{n}",
        st.sampled_from(["1.7.9", "1.7.10", "1.8.0rc1", "1.8.0"]),
        st.integers(0, 30),
    ),
    st.sampled_from(["latest", "dev", "main-1", "x"]),
)


@given(
    st.dictionaries(tag_names, st.sampled_from([f"sha256:{i}" for i in range(8)]), max_size=40),
    st.integers(0, 12),
    st.data(),
)
def test_plan_invariants(tags: dict[str, str], keep: int, data: st.DataObject) -> None:
    protected = set(
        data.draw(st.lists(st.sampled_from([*tags, "gone-1"])) if tags else st.just([]))
    )
    plan = plan_image_prune(tags, keep, protected)
    deleted_tags = {tag for tag, _ in plan.to_delete}
    deleted_digests = {d.digest for d in plan.deletions}
    staying = set(tags) - deleted_tags
    # never a protected tag, never a digest that a staying tag points to
    assert not deleted_tags & protected
    assert not deleted_digests & {tags[t] for t in staying}
    # every tag on a deleted manifest is listed with it (nothing is removed by surprise)
    assert deleted_tags == {t for t, d in tags.items() if d in deleted_digests}
    # exactly the keep newest version tags are kept, when there are that many
    versioned = [t for t in tags if split_version_tag(t) is not None]
    assert len(plan.kept) == min(keep, len(versioned))
    assert set(plan.kept) <= staying
    newest_deleted = max(
        (
            (version_key(split_version_tag(t)[0]), split_version_tag(t)[1])  # type: ignore[index]
            for t in deleted_tags
        ),
        default=None,
    )
    if newest_deleted is not None:
        for t in plan.kept:
            parts = split_version_tag(t)
            assert parts is not None
            assert (version_key(parts[0]), parts[1]) >= newest_deleted
    # non-version tags never deleted; each tag accounted for exactly once
    assert all(split_version_tag(t) is not None for t in deleted_tags)
    accounted = [*plan.kept, *(s.tag for s in plan.skipped), *plan.untouched, *deleted_tags]
    assert sorted(accounted) == sorted(tags)
