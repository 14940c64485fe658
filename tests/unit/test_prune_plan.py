"""Pure parts of the lifecycle commands: prune planning scope and durations."""

from __future__ import annotations

import datetime as dt

import pytest

from dagster_uc.errors import UsageError
from dagster_uc.lifecycle import parse_duration, plan_prune
from dagster_uc.values import DeploymentRecord, record_annotations

NOW = dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc)


def entry(name: str, branch: str | None = None, at: str = "2026-11-26T00:00:00Z") -> dict:
    record = DeploymentRecord(tag="1.8.4-0", by="ann@laptop", at=at, branch=branch)
    return {"name": name, "image": {"tag": "1.8.4-0"}, "annotations": record_annotations(record)}


def plan(values: dict, project: str | None, **kwargs: object) -> list[str]:
    options: dict = {
        "remote_branches": {"main"},
        "environments": {"dev"},
        "older_than": None,
        "include_cicd": False,
        "now": NOW,
    }
    options.update(kwargs)
    return [c.name for c in plan_prune(values, project=project, **options)]


def test_prune_considers_only_this_projects_deployments() -> None:
    values = {
        "deployments": [
            entry("demo-project--feat-gone", "feat/gone"),
            entry("demo-project--main", "main"),
            entry("other--feat-gone", "feat/gone"),
            entry("plain-gone", "plain/gone"),
        ]
    }
    # the project name from pyproject.toml is sanitised like deploy does (demo_project)
    assert plan(values, "demo_project") == ["demo-project--feat-gone"]
    # without use_project_name only names without a project part are ours
    assert plan(values, None) == ["plain-gone"]


def test_prune_by_age_says_how_old() -> None:
    values = {"deployments": [entry("p--main", "main", at="2026-11-01T00:00:00Z")]}
    (candidate,) = plan_prune(
        values,
        remote_branches={"main"},
        project="p",
        environments=set(),
        older_than=parse_duration("2w"),
        include_cicd=False,
        now=NOW,
    )
    assert candidate.reason == "deployed 2026-11-01T00:00:00Z, more than 2 weeks ago"


@pytest.mark.parametrize("text", ["7", "d", "7 days", "-1d", ""])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration(text)


def test_durations() -> None:
    assert parse_duration("12h") == dt.timedelta(hours=12)
    assert parse_duration("7D") == dt.timedelta(days=7)
    assert parse_duration("90m") == dt.timedelta(minutes=90)
