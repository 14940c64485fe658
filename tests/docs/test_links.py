"""Every relative link and anchor in README.md and docs/ points at something that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose(text: str) -> str:
    """The page without fenced code blocks and inline code (links there are not links)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "``", line))
    return "\n".join(lines)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]|<[^>]+>", lambda m: "_" if m.group(0) == "_" else "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    result |= set(re.findall(r'<a (?:name|id)="([^"]+)"', page.read_text(encoding="utf-8")))
    return result


def links() -> list[tuple[Path, str]]:
    found = []
    for page in PAGES:
        for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                found.append((page, target))
    return found


def test_the_pages_have_links() -> None:
    assert len(links()) > 50


@pytest.mark.parametrize(
    ("page", "target"),
    links(),
    ids=[f"{p.relative_to(ROOT)}->{t}" for p, t in links()],
)
def test_relative_link_resolves(page: Path, target: str) -> None:
    path_part, _, anchor = target.partition("#")
    destination = (page.parent / path_part).resolve() if path_part else page
    assert destination.exists(), f"{page.relative_to(ROOT)}: {path_part} does not exist"
    if anchor:
        assert destination.suffix == ".md", f"{target}: anchors only into Markdown pages"
        assert anchor in anchors(destination), (
            f"{page.relative_to(ROOT)}: no heading with anchor #{anchor} in "
            f"{destination.relative_to(ROOT)}"
        )


def test_slug_matches_github() -> None:
    assert slug("`deployment revive -n NAME -t TAG`") == "deployment-revive--n-name--t-tag"
    assert slug("Rollout: Helm, waiting, rollbacks") == "rollout-helm-waiting-rollbacks"
    assert slug("`lock status` and `lock release`") == "lock-status-and-lock-release"
    assert slug("Ctrl-C, cancelled CI jobs and crashes") == "ctrl-c-cancelled-ci-jobs-and-crashes"


def test_every_page_is_in_the_index() -> None:
    """docs/README.md lists every page, so none is found only by accident."""
    index = ROOT / "docs" / "README.md"
    linked = {
        (index.parent / target.partition("#")[0]).resolve()
        for page, target in links()
        if page == index and target.partition("#")[0]
    }
    pages = {p.resolve() for p in (ROOT / "docs").glob("*.md") if p.name != "README.md"}
    assert not pages - linked, sorted(p.name for p in pages - linked)
