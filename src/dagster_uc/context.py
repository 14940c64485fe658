"""Gather what naming needs from the checkout (git branch, project name) for a config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dagster_uc import git, naming
from dagster_uc.errors import UsageError
from dagster_uc.project import project_name

if TYPE_CHECKING:
    from dagster_uc.config import Config


def resolve_deployment_name(
    config: Config,
    cwd: Path,
    branch: str | None = None,
    suffix: str | None = None,
    explicit: str | None = None,
    env: Mapping[str, str] | None = None,
) -> naming.DeploymentName:
    """The deployment name of the checkout in ``cwd`` (or of ``branch``) under ``config``.

    With ``cicd`` the git branch is not needed. With ``explicit`` (``--deployment-name``) a
    branch that cannot be determined is no error: the build arg then carries the name's
    branch part.
    """
    env = os.environ if env is None else env
    if config.cicd:
        branch = branch or ""
    elif branch is None:
        try:
            branch = git.current_branch(cwd, env)
        except UsageError:
            if explicit is None:
                raise
            internal = naming.name_from_user_input(explicit)
            branch = internal.partition(naming.PROJECT_SEPARATOR)[2] or internal
    project = project_name(cwd) if config.use_project_name and explicit is None else None
    return naming.compute_deployment_name(
        branch=branch,
        cicd=config.cicd,
        environment=config.environment,
        suffix=suffix,
        project=project,
        explicit_name=explicit,
    )


def image_repository_for(config: Config, name: naming.DeploymentName) -> str:
    """``<registry>/<prefix>/<name>`` for a deployment."""
    return naming.image_repository(config.container_registry, config.image_prefix, name.name)
