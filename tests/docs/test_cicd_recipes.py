"""The CI/CD recipes in docs/cicd/ parse, trigger as docs/cicd.md says, and the dagster-uc
commands they contain work, run as written, against the local stack."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import DAGSTER_UC, Stack, helm_major, kube, registry, stack  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "docs" / "cicd"
GITHUB = RECIPES / "github-actions.yml"
AZURE_DEPLOY = RECIPES / "azure-pipelines.yml"
AZURE_PRUNE = RECIPES / "azure-pipelines-prune.yml"


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    if True in document:  # YAML 1.1 reads GitHub's `on:` key as true
        document["on"] = document.pop(True)
    return document


def scripts(steps: list[dict[str, Any]]) -> list[str]:
    """The shell lines of a job's steps (GitHub `run`, Azure `script` and `inlineScript`)."""
    lines: list[str] = []
    for step in steps:
        for text in (
            step.get("run"),
            step.get("script"),
            (step.get("inputs") or {}).get("inlineScript"),
        ):
            if isinstance(text, str):
                lines += [line.strip() for line in text.splitlines() if line.strip()]
    return lines


def dagster_uc_lines(steps: list[dict[str, Any]]) -> list[str]:
    found = [line for line in scripts(steps) if line.startswith("dagster-uc ")]
    for line in found:  # run as written: nothing for the CI system to substitute
        assert "${{" not in line and "$(" not in line, line
    return found


def test_github_workflow_triggers_and_jobs() -> None:
    workflow = load(GITHUB)
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert "delete" in workflow["on"]
    jobs = workflow["jobs"]
    assert jobs["deploy"]["if"] == "github.event_name == 'push'"
    assert "ref_type == 'branch'" in jobs["prune"]["if"]
    assert dagster_uc_lines(jobs["deploy"]["steps"]) == [
        "dagster-uc -e acc doctor",
        "dagster-uc -e acc deployment deploy -o json > deploy.json",
    ]
    assert dagster_uc_lines(jobs["prune"]["steps"])[-1] == "dagster-uc -e dev deployment prune"


def test_azure_pipelines_triggers() -> None:
    deploy = load(AZURE_DEPLOY)
    assert deploy["trigger"]["branches"]["include"] == ["main"] and deploy["pr"] == "none"
    prune = load(AZURE_PRUNE)
    assert prune["trigger"] == "none" and prune["schedules"][0]["cron"]
    checkout = next(s for s in prune["steps"] if "checkout" in s)
    assert checkout["persistCredentials"] is True
    assert dagster_uc_lines(deploy["steps"]) == [
        "dagster-uc -e acc doctor",
        "dagster-uc -e acc deployment deploy -o json > deploy.json",
    ]


def recipe_jobs(recipe: str) -> tuple[list[str], list[str]]:
    if recipe == "github":
        jobs = load(GITHUB)["jobs"]
        return dagster_uc_lines(jobs["deploy"]["steps"]), dagster_uc_lines(jobs["prune"]["steps"])
    return (
        dagster_uc_lines(load(AZURE_DEPLOY)["steps"]),
        dagster_uc_lines(load(AZURE_PRUNE)["steps"]),
    )


def shell(stack: Stack, line: str) -> subprocess.CompletedProcess[str]:  # noqa: F811
    """One line of the recipe through bash, as the CI runner runs it."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", line],
        cwd=stack.project,
        # `pip install dagster-uc` put the command on PATH
        env={
            **stack.env,
            "CI": "true",
            "PATH": f"{DAGSTER_UC.parent}{os.pathsep}{stack.env['PATH']}",
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.e2e
@pytest.mark.parametrize("recipe", ["github", "azure"])
def test_recipe_commands_on_the_local_stack(stack: Stack, recipe: str, tmp_path: Path) -> None:  # noqa: F811
    deploy_lines, prune_lines = recipe_jobs(recipe)
    dev = stack.config()
    config = {"dev": dev, "acc": {**dev, "cicd": True}}
    (stack.project / ".config_user_code_deployments.yaml").write_text(yaml.safe_dump(config))
    stack.git("add", "-A")
    stack.git("commit", "-qm", "config with acc")
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    stack.git("remote", "add", "origin", str(origin))
    stack.git("push", "-q", "origin", "feat/hello")

    # A developer's branch, deployed, then deleted on the remote (its pull request merged).
    stack.checkout("feat/gone")
    stack.ok("deployment", "deploy")
    stack.git("push", "-q", "origin", "feat/gone")
    stack.git("push", "-q", "origin", "--delete", "feat/gone")
    stack.checkout("feat/hello")

    # The deploy-on-merge job.
    for line in deploy_lines:
        done = shell(stack, line)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
    report = json.loads((stack.project / "deploy.json").read_text())
    assert report["ok"] is True and report["name"] == "demo-project--acc"
    assert stack.entry("demo-project--acc") is not None

    # The prune job.
    outputs = []
    for line in prune_lines:
        done = shell(stack, line)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    assert "would remove demo-project--feat-gone" in outputs[0]
    assert stack.entry("demo-project--feat-gone") is None
    assert stack.entry("demo-project--acc") is not None  # CI/CD deployments are kept
