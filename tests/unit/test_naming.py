"""Deployment names: documented examples and properties (valid label, stable, idempotent)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, reject, settings
from hypothesis import strategies as st

from dagster_uc.errors import UsageError
from dagster_uc.naming import (
    MAX_LABEL_LENGTH,
    compute_deployment_name,
    image_repository,
    is_valid_label,
    name_from_user_input,
    sanitize,
    ui_name,
)


def name_for(branch: str, **kwargs: object) -> str:
    args: dict = {"branch": branch, "cicd": False, "environment": "dev", **kwargs}
    return compute_deployment_name(**args).name


# --------------------------------------------------------------------------- documented examples


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("feat: my amazing feature", "feat-my-amazing-feature"),
        ("feature/JIRA-123_Add-Thing", "feature-jira-123-add-thing"),
        ("  spaces   everywhere  ", "spaces-everywhere"),
        ("--a//b..c__d--", "a-b-c-d"),
        ("UPPER", "upper"),
        ("café/naïve", "cafe-naive"),
        ("my_dummy_project", "my-dummy-project"),
        ("!!!", ""),
    ],
)
def test_sanitize(text: str, expected: str) -> None:
    assert sanitize(text) == expected


def test_seed_examples() -> None:
    assert name_for("feat: my amazing feature") == "feat-my-amazing-feature"
    name = compute_deployment_name(
        branch="feat: my amazing feature", cicd=False, environment="dev", project="my_dummy_project"
    )
    assert name.name == "my-dummy-project--feat-my-amazing-feature"
    assert name.ui_name == "my-dummy-project:feat-my-amazing-feature"
    assert name.branch_part == "feat-my-amazing-feature"
    assert name.project == "my-dummy-project"


@pytest.mark.parametrize(
    ("branch", "expected"),
    [
        ("feature/login", "feature-login"),
        ("fix some bug", "fix-some-bug"),
        ("release/v1.2.3!", "release-v1-2-3"),
        ("Feature/CamelCase", "feature-camelcase"),
        ("123-hotfix", "b-123-hotfix"),
        ("2024/01/cleanup", "b-2024-01-cleanup"),
    ],
)
def test_branch_examples(branch: str, expected: str) -> None:
    assert name_for(branch) == expected


def test_leading_digit_with_project_needs_no_prefix() -> None:
    assert name_for("123-hotfix", project="proj") == "proj--123-hotfix"
    assert name_for("x", project="9lives") == "b-9lives--x"


def test_suffix_is_appended_to_the_branch_part() -> None:
    name = compute_deployment_name(
        branch="feat/x", cicd=False, environment="dev", suffix="Try 2", project="proj"
    )
    assert name.name == "proj--feat-x-try-2"
    assert name.branch_part == "feat-x-try-2"
    assert name.ui_name == "proj:feat-x-try-2"


def test_cicd_uses_the_environment() -> None:
    name = compute_deployment_name(branch="feat/x", cicd=True, environment="acc", project="proj")
    assert name.name == "proj--acc"
    assert name.branch_part == "acc"
    assert compute_deployment_name(branch="", cicd=True, environment="prd").name == "prd"


def test_great_length_is_shortened_with_a_hash_keeping_the_project() -> None:
    branch = "feature/" + "very-long-branch-name-" * 6
    name = compute_deployment_name(
        branch=branch, cicd=False, environment="dev", project="my_project"
    )
    assert len(name.name) == MAX_LABEL_LENGTH
    assert is_valid_label(name.name)
    assert name.name.startswith("my-project--feature-very-long")
    assert name.project == "my-project"
    assert name.ui_name.startswith("my-project:")
    assert name.branch_part == sanitize(branch)  # BRANCH_NAME is never shortened
    other = compute_deployment_name(
        branch=branch + "x", cicd=False, environment="dev", project="my_project"
    )
    assert other.name != name.name  # same prefix, different hash


def test_great_length_without_project() -> None:
    name = name_for("a" * 200)
    assert len(name) == MAX_LABEL_LENGTH
    assert name.startswith("a" * 54 + "-")


def test_very_long_project_is_shortened_too() -> None:
    name = name_for("main", project="p" * 80)
    assert is_valid_label(name)
    assert len(name) == MAX_LABEL_LENGTH


def test_exactly_63_characters_is_kept() -> None:
    assert name_for("a" * 63) == "a" * 63


@pytest.mark.parametrize("branch", ["!!!", "///", "___", ""])
def test_empty_after_sanitising_is_a_usage_error(branch: str) -> None:
    with pytest.raises(UsageError, match="no letters or digits"):
        name_for(branch)


def test_empty_suffix_or_project_after_sanitising() -> None:
    with pytest.raises(UsageError, match="suffix"):
        name_for("main", suffix="!!")
    with pytest.raises(UsageError, match="project name"):
        name_for("main", project="__")


def test_explicit_name_replaces_the_computed_one() -> None:
    name = compute_deployment_name(
        branch="feat/x", cicd=False, environment="dev", project="proj", explicit_name="custom-name"
    )
    assert name.name == "custom-name"
    assert name.branch_part == "feat-x"
    assert name.project is None
    ui = compute_deployment_name(
        branch="feat/x", cicd=False, environment="dev", explicit_name="team:feat"
    )
    assert (ui.name, ui.ui_name, ui.project) == ("team--feat", "team:feat", "team")


@pytest.mark.parametrize("bad", ["Upper", "has space", "1abc", "a" * 64, "end-", "under_score", ""])
def test_invalid_explicit_names_are_rejected(bad: str) -> None:
    with pytest.raises(UsageError, match="not a valid deployment name"):
        compute_deployment_name(branch="x", cicd=False, environment="dev", explicit_name=bad)


def test_invalid_explicit_name_suggests_a_valid_one() -> None:
    with pytest.raises(UsageError, match="did you mean 'my-name'"):
        name_from_user_input("My_Name")


def test_explicit_name_and_suffix_conflict() -> None:
    with pytest.raises(UsageError, match="do not combine"):
        compute_deployment_name(
            branch="x", cicd=False, environment="dev", suffix="s", explicit_name="n"
        )


def test_ui_name_and_user_input() -> None:
    assert ui_name("proj--branch") == "proj:branch"
    assert ui_name("branch") == "branch"
    assert name_from_user_input("proj:branch") == "proj--branch"
    assert name_from_user_input(" proj--branch ") == "proj--branch"


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a", True),
        ("a-b-1", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("1a", False),
        ("-a", False),
        ("a-", False),
        ("A", False),
        ("a.b", False),
        ("", False),
    ],
)
def test_is_valid_label(name: str, valid: bool) -> None:
    assert is_valid_label(name) is valid


def test_image_repository() -> None:
    assert image_repository("reg.io", "team", "proj--x") == "reg.io/team/proj--x"
    assert image_repository("reg.io", "", "x") == "reg.io/x"
    assert image_repository("localhost:5000/", "/a/b/", "x") == "localhost:5000/a/b/x"


# --------------------------------------------------------------------------- properties

branches = st.text(min_size=0, max_size=150)
projects = st.none() | st.text(min_size=1, max_size=90)
suffixes = st.none() | st.text(min_size=1, max_size=30)


# A property that skips the examples it cannot judge (a name with no letters raises
# UsageError) must still judge enough of them: each counts what it checked and the test
# fails below MIN_CHECKED, so a change that made every example a skip cannot pass unseen.
MIN_CHECKED = 100


def compute_or_none(branch: str, project: str | None, suffix: str | None) -> str | None:
    try:
        return compute_deployment_name(
            branch=branch, cicd=False, environment="dev", project=project, suffix=suffix
        ).name
    except UsageError:
        return None


def test_every_computed_name_is_a_valid_label_and_stable() -> None:
    checked: list[str] = []

    @settings(max_examples=400, deadline=None)
    @given(branches, projects, suffixes)
    def prop(branch: str, project: str | None, suffix: str | None) -> None:
        first = compute_or_none(branch, project, suffix)
        assume(first is not None)
        assert first is not None
        assert is_valid_label(first), first
        assert compute_or_none(branch, project, suffix) == first
        assert name_from_user_input(first) == first  # a computed name is accepted back as input
        assert name_from_user_input(ui_name(first)) == first
        checked.append(first)

    prop()
    assert len(checked) >= MIN_CHECKED, f"only {len(checked)} names were computed"


def test_project_separator_appears_once_and_matches_ui_name() -> None:
    checked: list[str] = []

    @settings(max_examples=300, deadline=None)
    @given(branches, st.none() | st.text(min_size=1, max_size=40))
    def prop(branch: str, project: str | None) -> None:
        try:
            name = compute_deployment_name(
                branch=branch, cicd=False, environment="dev", project=project
            )
        except UsageError:
            reject()
        assert name.name.count("--") == (1 if name.project else 0)
        assert name.ui_name.count(":") == (1 if name.project else 0)
        if name.project:
            assert name.name.startswith(name.project + "--")
        checked.append(name.name)

    prop()
    assert len(checked) >= MIN_CHECKED, f"only {len(checked)} names were computed"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=100))
def test_sanitize_is_idempotent_and_clean(text: str) -> None:
    once = sanitize(text)
    assert sanitize(once) == once
    assert "--" not in once
    assert not once.startswith("-") and not once.endswith("-")
    assert once == once.lower()
    assert all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in once)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", fullmatch=True).filter(lambda s: len(s) <= 63))
def test_valid_branch_names_map_to_themselves(branch: str) -> None:
    assert name_for(branch) == branch
    assert name_for(name_for(branch)) == name_for(branch)


def test_sanitising_variants_of_a_branch_give_the_same_name() -> None:
    """Upper case and separator style do not matter: `Feat/X` and `feat-x` are one deployment."""
    checked: list[str] = []

    @settings(max_examples=200, deadline=None)
    @given(st.text(min_size=1, max_size=80))
    def prop(branch: str) -> None:
        variant = branch.upper().replace("/", "_")
        # upper() may change the letters themselves (e.g. 'ß' -> 'SS')
        assume(sanitize(variant) == sanitize(branch.replace("/", "_")))
        name = compute_or_none(branch, None, None)
        assume(name is not None)  # None == None would prove nothing
        assert compute_or_none(variant, None, None) == name
        checked.append(branch)

    prop()
    assert len(checked) >= MIN_CHECKED, f"only {len(checked)} branches were compared"


def test_readme_shortening_example() -> None:
    name = compute_deployment_name(
        branch="feature/a-really-long-descriptive-branch-name-for-the-new-ingestion-pipeline",
        cicd=False,
        environment="dev",
        project="my_dummy_project",
    )
    assert name.name == "my-dummy-project--feature-a-really-long-descriptive-br-64860416"
