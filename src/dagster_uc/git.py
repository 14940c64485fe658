"""Thin adapter over the `git` binary (argument lists, never a shell)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from dagster_uc.errors import OperationError, UsageError

# CI variables naming the branch of a detached checkout, most specific first: pull/merge
# request source branches before the ref that was checked out.
CI_BRANCH_VARIABLES = (
    "GITHUB_HEAD_REF",
    "GITHUB_REF_NAME",
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
    "CI_COMMIT_REF_NAME",
    "SYSTEM_PULLREQUEST_SOURCEBRANCH",
    "BUILD_SOURCEBRANCH",
    "BUILD_SOURCEBRANCHNAME",
    "BRANCH_NAME",
    "GIT_BRANCH",
)
_REF_PREFIXES = ("refs/heads/", "refs/remotes/origin/", "origin/")


def _git(
    args: list[str], cwd: Path, extra_env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LC_ALL": "C", **(extra_env or {})}
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, env=env
        )
    except FileNotFoundError:
        raise OperationError("git is not installed or not on PATH; install git.") from None
    except NotADirectoryError:
        raise UsageError(f"{cwd} is not a directory.") from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def repo_root(path: Path) -> Path:
    """The top directory of the git checkout containing ``path``."""
    result = _git(["rev-parse", "--show-toplevel"], path)
    if result.returncode != 0:
        raise UsageError(
            f"{path} is not inside a git repository; run dagster-uc in your project's checkout."
        )
    return Path(result.stdout.strip())


def branch_from_ci(env: Mapping[str, str]) -> str | None:
    """The branch named by the usual CI variables, ``refs/heads/`` and ``origin/`` stripped."""
    for variable in CI_BRANCH_VARIABLES:
        value = env.get(variable, "").strip()
        for prefix in _REF_PREFIXES:
            if value.startswith(prefix):
                value = value[len(prefix) :]
                break
        if value:
            return value
    return None


def current_branch(repo: Path, env: Mapping[str, str] = os.environ) -> str:
    """The checked-out branch; for a detached HEAD the branch named by CI variables."""
    result = _git(["symbolic-ref", "--quiet", "--short", "HEAD"], repo)
    if result.returncode == 0 and result.stdout.strip():
        return result.stdout.strip()
    repo_root(repo)  # a clear error when this is no git repository at all
    branch = branch_from_ci(env)
    if branch:
        return branch
    raise UsageError(
        f"HEAD is detached in {repo} (no branch checked out); check out a branch, pass "
        f"--branch, or set one of {', '.join(CI_BRANCH_VARIABLES)}."
    )


def head_commit(repo: Path) -> str:
    """The full hash of HEAD."""
    result = _git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], repo)
    if result.returncode != 0:
        repo_root(repo)
        raise UsageError(f"The git repository at {repo} has no commits yet; commit first.")
    return result.stdout.strip()


def is_dirty(repo: Path) -> bool:
    """True when the working tree has uncommitted changes (untracked files included)."""
    result = _git(["status", "--porcelain"], repo)
    if result.returncode != 0:
        repo_root(repo)
        raise OperationError(f"git status failed in {repo}: {_last_line(result.stderr)}")
    return bool(result.stdout.strip())


def remote_branches(repo: Path, remote: str = "origin") -> set[str]:
    """Branch names on ``remote`` (``git ls-remote --heads``)."""
    check = _git(["remote", "get-url", remote], repo)
    if check.returncode != 0:
        repo_root(repo)
        raise UsageError(
            f"The git repository at {repo} has no remote '{remote}'; add it with "
            f"`git remote add {remote} URL`."
        )
    result = _git(["ls-remote", "--heads", remote], repo, {"GIT_TERMINAL_PROMPT": "0"})
    if result.returncode != 0:
        raise OperationError(
            f"Cannot list the branches of remote '{remote}': {_last_line(result.stderr)}"
        )
    branches = set()
    for line in result.stdout.splitlines():
        _, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            branches.add(ref[len("refs/heads/") :])
    return branches
