"""The installed `dagster-uc` command on real temporary git repositories: help, version,
init-config (real stdin), show-config, deployment name, and clean errors with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import CONFIG, CONFIG_NAME, Runner, git

MakeRepo = Callable[..., Path]


def assert_clean_failure(
    result: subprocess.CompletedProcess[str], code: int, *fragments: str
) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in result.stderr


def name_info(dagster_uc: Runner, repo: Path, *args: str, env: dict | None = None) -> dict:
    result = dagster_uc("deployment", "name", "-o", "json", *args, cwd=repo, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --------------------------------------------------------------------------- help and version


def test_help_lists_the_commands(dagster_uc: Runner, tmp_path: Path) -> None:
    result = dagster_uc("--help", cwd=tmp_path)
    assert result.returncode == 0
    for word in (
        "init-config",
        "show-config",
        "deployment",
        "--environment",
        "--config-file",
        "--verbose",
        "--version",
    ):
        assert word in result.stdout
    deployment = dagster_uc("deployment", "--help", cwd=tmp_path)
    assert "name" in deployment.stdout


def test_no_arguments_shows_help(dagster_uc: Runner, tmp_path: Path) -> None:
    result = dagster_uc(cwd=tmp_path)
    assert "init-config" in result.stdout + result.stderr


def test_version(dagster_uc: Runner, tmp_path: Path) -> None:
    from dagster_uc import __version__

    result = dagster_uc("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"dagster-uc {__version__}"


def test_help_does_not_import_heavy_modules(dagster_uc: Runner, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dagster_uc", "--help"],
        cwd=tmp_path,
        env=dagster_uc.base_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if "|" in line
    }
    assert "typer" in imported
    assert not imported & {"pydantic", "yaml", "httpx", "lightkube", "rich"}


def test_unknown_option_is_a_usage_error(dagster_uc: Runner, tmp_path: Path) -> None:
    result = dagster_uc("show-config", "--bogus", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- init-config


def test_init_config_no_input_writes_a_loadable_template(
    dagster_uc: Runner, tmp_path: Path
) -> None:
    result = dagster_uc("init-config", "-f", "conf.yaml", "--no-input", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "conf.yaml").read_text()
    from dagster_uc.config import config_keys

    for key in config_keys():
        assert f"  {key}:" in text
    assert text.count("# Required.") == 5
    shown = dagster_uc("-c", "conf.yaml", "show-config", "-o", "json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    config = json.loads(shown.stdout)["config"]
    assert config["helm_release_name"] == "dagster-user-code"
    assert config["image_pull_policy"] == "IfNotPresent"


def test_init_config_no_input_uses_the_selected_environment(
    dagster_uc: Runner, tmp_path: Path
) -> None:
    assert (
        dagster_uc(
            "-e", "acc", "init-config", "-f", "c.yaml", "--no-input", cwd=tmp_path
        ).returncode
        == 0
    )
    shown = dagster_uc("-e", "acc", "-c", "c.yaml", "show-config", "-o", "json", cwd=tmp_path)
    assert json.loads(shown.stdout)["config"]["environment"] == "acc"


def test_init_config_refuses_to_overwrite_without_force(dagster_uc: Runner, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("keep me\n")
    result = dagster_uc("init-config", "-f", "c.yaml", "--no-input", cwd=tmp_path)
    assert_clean_failure(result, 2, "already exists", "--force")
    assert (tmp_path / "c.yaml").read_text() == "keep me\n"
    forced = dagster_uc("init-config", "-f", "c.yaml", "--no-input", "--force", cwd=tmp_path)
    assert forced.returncode == 0
    assert "container_registry:" in (tmp_path / "c.yaml").read_text()


def test_init_config_interactive_with_real_stdin(dagster_uc: Runner, make_repo: MakeRepo) -> None:
    repo = make_repo(config=None)
    answers = [
        "acc",  # environment name
        "registry.local:5000",  # container_registry
        "team",  # image_prefix
        "1.10",  # dagster_version (would be a float if written unquoted)
        "kind-test",  # kubernetes_context
        "dagster-acc",  # namespace
        "pipelines/defs.py",  # code_path
        "",  # docker_root: default
        "docker/Dockerfile",  # dockerfile
        "",  # repository_root: default
        "",  # node: none
        "http://dagster.local",  # dagster_gui_url
        "y",  # use_project_name
        "n",  # use_az_login
        "n",  # cicd
    ]
    result = dagster_uc("init-config", "-f", CONFIG_NAME, cwd=repo, input="\n".join(answers) + "\n")
    assert result.returncode == 0, result.stderr
    assert "Container registry" in result.stdout  # the prompts were shown
    shown = dagster_uc("-e", "acc", "show-config", "-o", "json", cwd=repo)
    assert shown.returncode == 0, shown.stderr
    config = json.loads(shown.stdout)["config"]
    assert config["container_registry"] == "registry.local:5000"
    assert config["dagster_version"] == "1.10"
    assert config["namespace"] == "dagster-acc"
    assert config["docker_root"] == "."
    assert config["dockerfile"] == "docker/Dockerfile"
    assert config["node"] is None
    assert config["dagster_gui_url"] == "http://dagster.local"
    assert config["use_project_name"] is True
    assert config["environment"] == "acc"
    named = dagster_uc("-e", "acc", "deployment", "name", "-o", "json", cwd=repo)
    info = json.loads(named.stdout)
    assert info["name"] == "my-dummy-project--feat-x"
    assert info["image_repository"] == "registry.local:5000/team/my-dummy-project--feat-x"


def test_init_config_required_answer_is_asked_again(dagster_uc: Runner, tmp_path: Path) -> None:
    answers = [
        "",
        "",
        "reg.io",
        "",
        "1.8.4",
        "ctx",
        "ns",
        "defs.py",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ]
    result = dagster_uc(
        "init-config", "-f", "c.yaml", cwd=tmp_path, input="\n".join(answers) + "\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Container registry") == 2
    shown = dagster_uc("-c", "c.yaml", "show-config", "-o", "json", cwd=tmp_path)
    config = json.loads(shown.stdout)["config"]
    assert (config["environment"], config["container_registry"], config["image_prefix"]) == (
        "dev",
        "reg.io",
        "",
    )


def test_init_config_stdin_ending_early_is_a_usage_error(
    dagster_uc: Runner, tmp_path: Path
) -> None:
    result = dagster_uc("init-config", "-f", "c.yaml", cwd=tmp_path, input="dev\nreg.io\n")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--no-input" in result.stderr
    assert not (tmp_path / "c.yaml").exists()


# --------------------------------------------------------------------------- show-config


def test_show_config_text_masks_secrets(dagster_uc: Runner, make_repo: MakeRepo) -> None:
    repo = make_repo()
    result = dagster_uc("show-config", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "namespace: dagster-dev" in result.stdout
    assert "PIP_TOKEN=***" in result.stdout
    assert "s3cr3t-value" not in result.stdout
    assert "hunter2" not in result.stdout


def test_show_config_json_with_sources(dagster_uc: Runner, make_repo: MakeRepo) -> None:
    repo = make_repo()
    result = dagster_uc(
        "show-config",
        "-o",
        "json",
        "--sources",
        cwd=repo,
        env={"CICD": "TRUE", "LIMITS": '{"cpu": "2"}'},
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["environment"] == "dev"
    assert document["config_file"] == str(repo / CONFIG_NAME)
    assert document["config"]["cicd"] is True
    assert document["config"]["limits"] == {"cpu": "2"}
    assert document["sources"]["cicd"] == "environment variable CICD"
    assert document["sources"]["image_prefix"] == "defaults section"
    assert document["sources"]["namespace"] == "environment 'dev'"
    assert document["sources"]["helm_chart_name"] == "default"


def test_show_config_text_sources(dagster_uc: Runner, make_repo: MakeRepo) -> None:
    repo = make_repo()
    result = dagster_uc("show-config", "--sources", cwd=repo, env={"VERBOSE": "yes"})
    assert "image_prefix: team-alpha  # defaults section" in result.stdout
    assert "verbose: true  # environment variable VERBOSE" in result.stdout


def test_cicd_false_in_upper_case_is_false(dagster_uc: Runner, make_repo: MakeRepo) -> None:
    repo = make_repo()
    result = dagster_uc("-e", "acc", "show-config", "-o", "json", cwd=repo, env={"CICD": "FALSE"})
    assert json.loads(result.stdout)["config"]["cicd"] is False


def test_config_from_home_when_cwd_has_none_and_cwd_wins(
    dagster_uc: Runner, make_repo: MakeRepo, home: Path
) -> None:
    repo = make_repo(config=None)
    (home / CONFIG_NAME).write_text(CONFIG.replace("dagster-dev", "from-home"))
    result = dagster_uc("show-config", "-o", "json", cwd=repo)
    assert json.loads(result.stdout)["config"]["namespace"] == "from-home"
    (repo / CONFIG_NAME).write_text(CONFIG)
    result = dagster_uc("show-config", "-o", "json", cwd=repo)
    assert json.loads(result.stdout)["config"]["namespace"] == "dagster-dev"
    (repo / "other.yaml").write_text(CONFIG.replace("dagster-dev", "explicit"))
    result = dagster_uc("--config-file", "other.yaml", "show-config", "-o", "json", cwd=repo)
    assert json.loads(result.stdout)["config"]["namespace"] == "explicit"


# --------------------------------------------------------------------------- configuration errors


@pytest.mark.parametrize(
    ("config", "fragments"),
    [
        (
            CONFIG.replace("  namespace: dagster-dev", "  namspace: dagster-dev"),
            ["unknown key 'namspace'", "did you mean 'namespace'"],
        ),
        (
            CONFIG.replace(
                "  namespace: dagster-dev\n", "  namespace: dagster-dev\n  cicd: sometimes\n"
            ),
            ["'cicd'", "must be a boolean"],
        ),
        (
            CONFIG.replace(
                'docker_env_vars: ["PIP_TOKEN=s3cr3t-value", "FROM_CALLER"]', "docker_env_vars: 5"
            ),
            ["'docker_env_vars'", "must be a list"],
        ),
        (
            "dev:\n  cicd: true\n",
            [
                "missing required keys",
                "code_path",
                "container_registry",
                "dagster_version",
                "kubernetes_context",
                "namespace",
            ],
        ),
        ("dev:\n  cicd: [\n", ["Invalid YAML", "line 3, column 1"]),
        (
            "acc:\n  cicd: true\nprd:\n  cicd: true\n",
            ["Environment 'dev' is not defined", "acc, prd"],
        ),
    ],
)
def test_config_errors_exit_2_without_traceback(
    dagster_uc: Runner, make_repo: MakeRepo, config: str, fragments: list[str]
) -> None:
    repo = make_repo(config=config)
    for command in (["show-config"], ["deployment", "name"]):
        assert_clean_failure(dagster_uc(*command, cwd=repo), 2, *fragments)


def test_bad_environment_variable_is_exit_2(dagster_uc: Runner, make_repo: MakeRepo) -> None:
    repo = make_repo()
    assert_clean_failure(dagster_uc("show-config", cwd=repo, env={"CICD": "maybe"}), 2, "CICD")
    assert_clean_failure(
        dagster_uc("show-config", cwd=repo, env={"LIMITS": "[1]"}), 2, "LIMITS", "map"
    )


def test_no_config_file_is_exit_2(dagster_uc: Runner, make_repo: MakeRepo) -> None:
    repo = make_repo(config=None)
    assert_clean_failure(
        dagster_uc("show-config", cwd=repo), 2, "No configuration file found", "init-config"
    )
    assert_clean_failure(
        dagster_uc("-c", "missing.yaml", "show-config", cwd=repo), 2, "missing.yaml does not exist"
    )


def test_verbose_shows_the_traceback(dagster_uc: Runner, make_repo: MakeRepo) -> None:
    repo = make_repo(config="dev:\n  cicd: true\n")
    result = dagster_uc("-v", "show-config", cwd=repo)
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert "missing required keys" in result.stderr
    env_verbose = dagster_uc("show-config", cwd=repo, env={"VERBOSE": "1"})
    assert "Traceback" in env_verbose.stderr


# --------------------------------------------------------------------------- deployment name


def test_deployment_name_of_the_checkout(dagster_uc: Runner, make_repo: MakeRepo) -> None:
    repo = make_repo(branch="feat/My_Amazing-Feature")
    result = dagster_uc("deployment", "name", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "deployment name:  my-dummy-project--feat-my-amazing-feature",
        "UI name:          my-dummy-project:feat-my-amazing-feature",
        "BRANCH_NAME:      feat-my-amazing-feature",
        "image repository: registry.example.com/team-alpha/my-dummy-project--feat-my-amazing-feature",
    ]
    info = name_info(dagster_uc, repo)
    assert info == {
        "name": "my-dummy-project--feat-my-amazing-feature",
        "ui_name": "my-dummy-project:feat-my-amazing-feature",
        "branch_name": "feat-my-amazing-feature",
        "image_repository": "registry.example.com/team-alpha/my-dummy-project--feat-my-amazing-feature",
        "project": "my-dummy-project",
        "environment": "dev",
    }


def test_deployment_name_from_a_subdirectory_needs_pyproject_there(
    dagster_uc: Runner, make_repo: MakeRepo
) -> None:
    repo = make_repo()
    sub = repo / "sub"
    sub.mkdir()
    (sub / CONFIG_NAME).write_text(CONFIG)
    assert_clean_failure(
        dagster_uc("deployment", "name", cwd=sub), 2, "pyproject.toml", "use_project_name"
    )
    info = name_info(dagster_uc, sub, env={"USE_PROJECT_NAME": "false"})
    assert info["name"] == "feat-x"


@pytest.mark.parametrize(
    ("branch", "project", "expected"),
    [
        ("feat: my amazing feature", None, "feat-my-amazing-feature"),
        (
            "feat: my amazing feature",
            "my_dummy_project",
            "my-dummy-project--feat-my-amazing-feature",
        ),
        ("feature/with/slashes", None, "feature-with-slashes"),
        ("Fix: Punctuation!?, (yes)", None, "fix-punctuation-yes"),
        ("UPPER/Case", "Proj", "proj--upper-case"),
        ("42-answer", None, "b-42-answer"),
        ("42-answer", "proj", "proj--42-answer"),
    ],
)
def test_deployment_name_examples(
    dagster_uc: Runner, make_repo: MakeRepo, branch: str, project: str | None, expected: str
) -> None:
    repo = make_repo(project=project or "unused")
    env = {} if project else {"USE_PROJECT_NAME": "false"}
    if project:
        (repo / "pyproject.toml").write_text(f'[project]\nname = "{project}"\n')
    assert name_info(dagster_uc, repo, "--branch", branch, env=env)["name"] == expected


def test_long_branch_is_shortened_deterministically(
    dagster_uc: Runner, make_repo: MakeRepo
) -> None:
    branch = "feature/" + "a-really-long-descriptive-branch-name-" * 4
    repo = make_repo(branch=branch)
    first = name_info(dagster_uc, repo)
    second = name_info(dagster_uc, repo, "--branch", branch)
    assert first["name"] == second["name"]
    assert len(first["name"]) == 63
    assert first["name"].startswith("my-dummy-project--feature-a-really-long")
    assert first["branch_name"] == "feature-" + "-".join(
        ["a-really-long-descriptive-branch-name"] * 4
    )


def test_suffix_and_explicit_name(dagster_uc: Runner, make_repo: MakeRepo) -> None:
    repo = make_repo()
    assert name_info(dagster_uc, repo, "-s", "try2")["name"] == "my-dummy-project--feat-x-try2"
    assert (
        name_info(dagster_uc, repo, "--deployment-name-suffix", "Try 2")["branch_name"]
        == "feat-x-try-2"
    )
    explicit = name_info(dagster_uc, repo, "-n", "team:custom")
    assert (explicit["name"], explicit["ui_name"], explicit["branch_name"]) == (
        "team--custom",
        "team:custom",
        "feat-x",
    )
    assert_clean_failure(
        dagster_uc("deployment", "name", "-n", "Not Valid", cwd=repo),
        2,
        "not a valid deployment name",
        "did you mean 'not-valid'",
    )
    assert_clean_failure(
        dagster_uc("deployment", "name", "-n", "x", "-s", "y", cwd=repo), 2, "do not combine"
    )


def test_cicd_uses_the_environment(dagster_uc: Runner, make_repo: MakeRepo) -> None:
    repo = make_repo()
    result = dagster_uc("-e", "acc", "deployment", "name", "-o", "json", cwd=repo)
    info = json.loads(result.stdout)
    assert (info["name"], info["branch_name"]) == ("my-dummy-project--acc", "acc")
    assert info["image_repository"] == "acc.example.com/team-alpha/my-dummy-project--acc"
    assert (
        name_info(dagster_uc, repo, env={"CICD": "1", "ENVIRONMENT": "prd"})["name"]
        == "my-dummy-project--prd"
    )


def test_detached_head_without_ci_variables_is_a_clear_error(
    dagster_uc: Runner, make_repo: MakeRepo
) -> None:
    repo = make_repo()
    git(repo, "checkout", "-q", "--detach", env=dagster_uc.base_env)
    assert_clean_failure(
        dagster_uc("deployment", "name", cwd=repo),
        2,
        "HEAD is detached",
        "--branch",
        "GITHUB_HEAD_REF",
    )
    # cicd needs no branch, and an explicit name carries its own branch part.
    assert dagster_uc("-e", "acc", "deployment", "name", cwd=repo).returncode == 0
    assert name_info(dagster_uc, repo, "-n", "proj--hotfix")["branch_name"] == "hotfix"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"GITHUB_HEAD_REF": "feature/pr-source", "GITHUB_REF_NAME": "12/merge"},
            "feature-pr-source",
        ),
        ({"GITHUB_HEAD_REF": "", "GITHUB_REF_NAME": "feature/push"}, "feature-push"),
        ({"CI_COMMIT_REF_NAME": "gitlab/branch"}, "gitlab-branch"),
        (
            {"BUILD_SOURCEBRANCH": "refs/heads/azure/branch", "BUILD_SOURCEBRANCHNAME": "branch"},
            "azure-branch",
        ),
        ({"BUILD_SOURCEBRANCHNAME": "only-name"}, "only-name"),
        ({"BRANCH_NAME": "jenkins-branch"}, "jenkins-branch"),
        ({"GIT_BRANCH": "origin/jenkins/git"}, "jenkins-git"),
    ],
)
def test_detached_head_with_ci_variables(
    dagster_uc: Runner, make_repo: MakeRepo, variables: dict, expected: str
) -> None:
    repo = make_repo()
    git(repo, "checkout", "-q", "--detach", env=dagster_uc.base_env)
    info = name_info(dagster_uc, repo, env=variables)
    assert info["name"] == f"my-dummy-project--{expected}"
    assert info["branch_name"] == expected


def test_checked_out_branch_wins_over_ci_variables(dagster_uc: Runner, make_repo: MakeRepo) -> None:
    repo = make_repo(branch="local/branch")
    assert (
        name_info(dagster_uc, repo, env={"GITHUB_REF_NAME": "other"})["branch_name"]
        == "local-branch"
    )


def test_not_a_git_repository(dagster_uc: Runner, tmp_path: Path) -> None:
    work = tmp_path / "plain"
    work.mkdir()
    (work / CONFIG_NAME).write_text(CONFIG)
    (work / "pyproject.toml").write_text('[project]\nname = "p"\n')
    assert_clean_failure(
        dagster_uc("deployment", "name", cwd=work), 2, "not inside a git repository"
    )
    assert name_info(dagster_uc, work, "--branch", "given")["name"] == "p--given"


def test_branch_without_letters_or_digits(dagster_uc: Runner, make_repo: MakeRepo) -> None:
    repo = make_repo()
    assert_clean_failure(
        dagster_uc("deployment", "name", "--branch", "___", cwd=repo), 2, "no letters or digits"
    )
