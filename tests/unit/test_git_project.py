"""git adapter and project name on real temporary repositories (the real git binary)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dagster_uc import git
from dagster_uc.errors import UsageError
from dagster_uc.project import project_name

ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "T",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "T",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def run_git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    run_git(path, "init", "-q", "-b", "main")
    (path / "f.txt").write_text("1\n")
    run_git(path, "add", "f.txt")
    run_git(path, "commit", "-q", "-m", "one")
    return path


def test_branch_commit_dirty(repo: Path) -> None:
    run_git(repo, "checkout", "-q", "-b", "feat/x")
    assert git.current_branch(repo, {}) == "feat/x"
    assert git.repo_root(repo / ".") == repo.resolve()
    assert git.head_commit(repo) == run_git(repo, "rev-parse", "HEAD")
    assert git.is_dirty(repo) is False
    (repo / "f.txt").write_text("2\n")
    assert git.is_dirty(repo) is True


def test_detached_head(repo: Path) -> None:
    run_git(repo, "checkout", "-q", "--detach")
    with pytest.raises(UsageError, match="HEAD is detached"):
        git.current_branch(repo, {})
    assert git.current_branch(repo, {"BUILD_SOURCEBRANCH": "refs/heads/a/b"}) == "a/b"
    assert git.branch_from_ci({"GITHUB_HEAD_REF": "", "GIT_BRANCH": "origin/x"}) == "x"


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not inside a git repository"):
        git.repo_root(tmp_path)
    with pytest.raises(UsageError, match="not inside a git repository"):
        git.current_branch(tmp_path, {"GITHUB_REF_NAME": "x"})


def test_no_commits(tmp_path: Path) -> None:
    run_git(tmp_path, "init", "-q", "-b", "main")
    with pytest.raises(UsageError, match="no commits"):
        git.head_commit(tmp_path)


def test_remote_branches(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no remote 'origin'"):
        git.remote_branches(repo)
    remote = tmp_path / "remote.git"
    run_git(tmp_path, "init", "-q", "--bare", str(remote))
    run_git(repo, "remote", "add", "origin", str(remote))
    run_git(repo, "push", "-q", "origin", "main", "main:feature/one")
    assert git.remote_branches(repo) == {"main", "feature/one"}


def test_project_name(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no pyproject\.toml"):
        project_name(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "my_dummy_project"\n')
    assert project_name(tmp_path) == "my_dummy_project"
    (tmp_path / "pyproject.toml").write_text('[tool.poetry]\nname = "poetry-proj"\n')
    assert project_name(tmp_path) == "poetry-proj"
    (tmp_path / "pyproject.toml").write_text("[tool.other]\n")
    with pytest.raises(UsageError, match=r"no \[project\].name"):
        project_name(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(UsageError, match="Cannot read"):
        project_name(tmp_path)
