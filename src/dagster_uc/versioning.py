"""Image tag versioning (``<dagster_version>-<N>``) and image-prune planning. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_N_RE = re.compile(r"[0-9]+")
# A Dagster (PEP 440-ish) version followed by "-<N>": 1.7.10-3, 1.8.0rc1-0, 1.9.0.dev2-12.
_VERSION_TAG_RE = re.compile(
    r"^(?P<version>[0-9]+(?:\.[0-9]+)*(?:[.-]?(?:a|b|rc|dev|post)[0-9]*)*)-(?P<n>[0-9]+)$"
)
_PRE_RE = re.compile(r"[.-]?(a|b|rc|dev|post)([0-9]*)")
_PRE_ORDER = {"dev": 0, "a": 1, "b": 2, "rc": 3, "post": 5}
_FINAL = 4


def parse_version_tag(tag: str, dagster_version: str) -> int | None:
    """N of a tag ``<dagster_version>-<N>``; None for any other tag."""
    prefix = f"{dagster_version}-"
    if not tag.startswith(prefix):
        return None
    rest = tag[len(prefix) :]
    return int(rest) if _N_RE.fullmatch(rest) else None


def next_tag(
    dagster_version: str, registry_tags: Iterable[str], recorded_tags: Iterable[str] = ()
) -> str:
    """The next never-used tag ``<dagster_version>-<N>``.

    N is one above the highest N seen for this Dagster version in the registry *or* in the
    tags the cluster state ever recorded, 0 when there is none. Counting recorded tags means a
    wiped or switched registry never hands out a tag again (nodes would keep a stale cached
    image under a reused tag).
    """
    highest = -1
    for tag in (*registry_tags, *recorded_tags):
        n = parse_version_tag(tag, dagster_version)
        if n is not None and n > highest:
            highest = n
    return f"{dagster_version}-{highest + 1}"


def split_version_tag(tag: str) -> tuple[str, int] | None:
    """``("1.7.10", 3)`` for ``1.7.10-3``; None for tags that are not version tags."""
    match = _VERSION_TAG_RE.match(tag)
    if match is None:
        return None
    return match.group("version"), int(match.group("n"))


def version_key(version: str) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """Sort key for Dagster versions: release numbers, then dev < a < b < rc < final < post."""
    release_match = re.match(r"[0-9]+(?:\.[0-9]+)*", version)
    release_text = release_match.group(0) if release_match else ""
    release = tuple(int(p) for p in release_text.split(".") if p)
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    suffixes = tuple(
        (_PRE_ORDER[m.group(1)], int(m.group(2) or 0))
        for m in _PRE_RE.finditer(version[len(release_text) :])
    )
    if not suffixes or suffixes[0][0] == _PRE_ORDER["post"]:
        suffixes = ((_FINAL, 0), *suffixes)
    return release, suffixes


@dataclass(frozen=True)
class ManifestDeletion:
    """One manifest to delete, and the tags that go with it."""

    digest: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class SkippedTag:
    """A tag that would have been old enough to delete but stays, and why."""

    tag: str
    reason: str


@dataclass(frozen=True)
class PrunePlan:
    """What ``image prune`` deletes in one repository."""

    deletions: tuple[ManifestDeletion, ...]
    kept: tuple[str, ...]
    skipped: tuple[SkippedTag, ...]
    untouched: tuple[str, ...]

    @property
    def to_delete(self) -> list[tuple[str, str]]:
        """``(tag, digest)`` pairs, grouped by digest."""
        return [(tag, d.digest) for d in self.deletions for tag in d.tags]


def plan_image_prune(
    tags_with_digests: Mapping[str, str],
    keep: int,
    protected_tags: Iterable[str] = (),
    *,
    dagster_version: str | None = None,
) -> PrunePlan:
    """Plan deleting all but the ``keep`` newest version tags of one repository.

    - version tags (``<version>-<N>``) are ordered by (version, N), newest first; the ``keep``
      newest stay (``kept``);
    - a protected tag (currently deployed, or in a deployment's recorded history window) is
      never deleted;
    - a manifest is deleted only if *every* tag pointing to it is up for deletion, because
      deleting a manifest removes all of its tags;
    - tags that are not version tags (and, with ``dagster_version``, version tags of other
      Dagster versions) are never deleted (``untouched``).
    """
    if keep < 0:
        raise ValueError("keep must be zero or more")
    protected = set(protected_tags)
    versioned: list[tuple[tuple[object, ...], str]] = []
    untouched: list[str] = []
    for tag in tags_with_digests:
        parts = split_version_tag(tag)
        if parts is None or (dagster_version is not None and parts[0] != dagster_version):
            untouched.append(tag)
            continue
        versioned.append(((version_key(parts[0]), parts[1], tag), tag))
    versioned.sort(reverse=True)
    ordered = [tag for _, tag in versioned]
    kept = ordered[:keep]
    older = ordered[keep:]

    skipped: dict[str, str] = {}
    candidates: list[str] = []
    for tag in older:
        if tag in protected:
            skipped[tag] = "protected (deployed or in a deployment's recorded history)"
        else:
            candidates.append(tag)

    staying = set(kept) | set(untouched) | set(skipped)
    holder: dict[str, str] = {}
    for tag in (*kept, *sorted(skipped), *untouched):
        holder.setdefault(tags_with_digests[tag], tag)

    by_digest: dict[str, list[str]] = {}
    for tag in candidates:
        digest = tags_with_digests[tag]
        if digest in holder:
            skipped[tag] = f"shares its image with tag {holder[digest]}, which stays"
        else:
            by_digest.setdefault(digest, []).append(tag)
    assert not staying & {t for tags in by_digest.values() for t in tags}

    deletions = tuple(ManifestDeletion(digest, tuple(tags)) for digest, tags in by_digest.items())
    return PrunePlan(
        deletions=deletions,
        kept=tuple(kept),
        skipped=tuple(SkippedTag(tag, skipped[tag]) for tag in ordered if tag in skipped),
        untouched=tuple(untouched),
    )
