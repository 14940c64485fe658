"""Fixtures for CLI tests: the installed `dagster-uc` command run as a subprocess on real
temporary git repositories, with a clean environment and a private HOME."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from stack.pytest_plugin import clean_environ

CONFIG_NAME = ".config_user_code_deployments.yaml"

CONFIG = """\
defaults:
  image_prefix: team-alpha
  code_path: dagster_pipelines/repo.py
  dagster_version: 1.8.4
dev:
  container_registry: registry.example.com
  kubernetes_context: my-context
  namespace: dagster-dev
  docker_env_vars: ["PIP_TOKEN=s3cr3t-value", "FROM_CALLER"]
  user_code_deployment_env:
    - {name: ON_K8S, value: 'True'}
    - {name: DB_PASSWORD, value: hunter2}
acc:
  cicd: true
  container_registry: acc.example.com
  kubernetes_context: acc-context
  namespace: dagster-acc
"""


def command_path() -> Path:
    """The installed console script next to the interpreter running the tests."""
    path = Path(sys.executable).parent / "dagster-uc"
    if not path.exists():
        pytest.fail(f"{path} is not installed; run `.venv/bin/pip install -e .`", pytrace=False)
    return path


@dataclass
class Runner:
    home: Path
    base_env: dict[str, str]

    def __call__(
        self,
        *args: str,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(command_path()), *args],
            cwd=cwd,
            env={**self.base_env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def runner_env(home: Path) -> dict[str, str]:
    """The suite's clean environment (stack.pytest_plugin.clean_environ) with a git identity."""
    env = clean_environ(home)
    env.update(
        GIT_AUTHOR_NAME="Test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="Test",
        GIT_COMMITTER_EMAIL="test@example.com",
    )
    return env


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def dagster_uc(home: Path) -> Runner:
    return Runner(home=home, base_env=runner_env(home))


def git(repo: Path, *args: str, env: Mapping[str, str]) -> str:
    result = subprocess.run(
        ["git", *args], cwd=repo, env=dict(env), capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@pytest.fixture
def make_repo(tmp_path: Path, dagster_uc: Runner) -> Callable[..., Path]:
    """A git repository with one commit on a new branch, a pyproject.toml and a config file."""

    def make(
        branch: str = "feat/X",
        project: str | None = "my_dummy_project",
        config: str | None = CONFIG,
        name: str = "repo",
    ) -> Path:
        repo = tmp_path / name
        repo.mkdir()
        env = dagster_uc.base_env
        git(repo, "init", "-q", "-b", "main", env=env)
        (repo / "README.md").write_text("test\n")
        if project is not None:
            (repo / "pyproject.toml").write_text(f'[project]\nname = "{project}"\n')
        if config is not None:
            (repo / CONFIG_NAME).write_text(config)
        git(repo, "add", "-A", env=env)
        git(repo, "commit", "-q", "-m", "init", env=env)
        if branch != "main":
            git(repo, "checkout", "-q", "-b", branch, env=env)
        return repo

    return make
