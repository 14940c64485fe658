"""Configuration: layering, environment-variable parsing, discovery and every validation error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagster_uc.config import (
    CONFIG_FILE_NAME,
    Config,
    Layer,
    LoadedConfig,
    env_layer,
    field_kind,
    find_config_file,
    load_config,
    merge_layers,
    parse_env_value,
    suggest_key,
)
from dagster_uc.config_masking import masked_config
from dagster_uc.errors import ConfigError

REQUIRED = {
    "code_path": "pipelines/repo.py",
    "container_registry": "registry.example.com",
    "dagster_version": "1.8.4",
    "kubernetes_context": "ctx",
    "namespace": "dagster-dev",
}

SEED_EXAMPLE = """\
dev:
  cicd: false
  code_path: dagster_pipelines/repo.py
  image_prefix: 'team-alpha'
  container_registry: myacr.azurecr.io
  dagster_gui_url: null
  dagster_version: 1.8.4
  docker_root: .
  dockerfile: ./Dockerfile
  docker_env_vars:
    - "VAR=SECRET"
    - "RANDOM_VAR_IN_CURRENT_ENV"
  environment: dev
  kubernetes_context: "my-kubernetes-context"
  namespace: dagster-dev
  limits:
    cpu: '2'
    memory: 2Gi
  node: small
  repository_root: .
  requests:
    cpu: '1'
    memory: 1Gi
  use_project_name: true
  use_az_login: false
  user_code_deployment_env:
    - name: ON_K8S
      value: 'True'
    - name: ENVIRONMENT
      value: dev
  user_code_deployment_env_secrets:
    - name: my-env-secret
  user_code_deployments_configmap_name: dagster-user-deployments-values-yaml
  dagster_workspace_yaml_configmap_name: dagster-workspace-yaml
  uc_deployment_semaphore_name: dagster-uc-semaphore
  verbose: false
"""


def write(directory: Path, text: str, name: str = CONFIG_FILE_NAME) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def load(
    tmp_path: Path, text: str, environment: str = "dev", env: dict | None = None
) -> LoadedConfig:
    path = write(tmp_path, text)
    return load_config(environment, path, cwd=tmp_path, env=env or {}, home=tmp_path / "home")


def minimal(extra: str = "", environment: str = "dev") -> str:
    lines = [f"{environment}:"] + [f"  {k}: '{v}'" for k, v in REQUIRED.items()]
    return "\n".join(lines) + "\n" + extra


# --------------------------------------------------------------------------- the seed example


def test_seed_example_loads_with_every_value(tmp_path: Path) -> None:
    loaded = load(tmp_path, SEED_EXAMPLE)
    config = loaded.config
    assert config.container_registry == "myacr.azurecr.io"
    assert config.dagster_version == "1.8.4"
    assert config.limits == {"cpu": "2", "memory": "2Gi"}
    assert config.user_code_deployment_env[0].name == "ON_K8S"
    assert config.user_code_deployment_env[0].value == "True"
    assert config.user_code_deployment_env_secrets[0].name == "my-env-secret"
    assert config.node == "small"
    assert loaded.sources["namespace"] == "environment 'dev'"
    assert loaded.sources["helm_release_name"] == "default"


def test_defaults_of_optional_keys(tmp_path: Path) -> None:
    config = load(tmp_path, minimal()).config
    assert config.cicd is False
    assert config.environment == "dev"  # the selected environment
    assert config.image_prefix == ""
    assert config.docker_root == "."
    assert config.dockerfile == "./Dockerfile"
    assert config.repository_root == "."
    assert config.use_project_name is True
    assert config.use_az_login is False
    assert config.user_code_deployments_configmap_name == "dagster-user-deployments-values-yaml"
    assert config.dagster_workspace_yaml_configmap_name == "dagster-workspace-yaml"
    assert config.uc_deployment_semaphore_name == "dagster-uc-semaphore"
    assert config.use_latest_chart_version is False
    assert config.container_registry_chart_path is None
    assert config.helm_disable_openapi_validation is False
    assert config.helm_skip_schema_validation is False
    assert config.helm_chart_repository == "https://dagster-io.github.io/helm"
    assert config.helm_chart_name == "dagster-user-deployments"
    assert config.helm_chart_path is None
    assert config.helm_release_name == "dagster-user-code"
    assert config.dagster_webserver_deployment_name == "dagster-dagster-webserver"
    assert config.dagster_daemon_deployment_name == "dagster-daemon"
    assert config.container_registry_insecure is False
    assert config.image_pull_secrets == []
    assert config.image_pull_policy == "IfNotPresent"
    assert config.docker_build_secrets == []


def test_every_key_of_the_seed_and_the_spec_exists() -> None:
    keys = set(Config.model_fields)
    seed_keys = {
        line.split(":")[0].strip()
        for line in SEED_EXAMPLE.splitlines()[1:]
        if line.startswith("  ") and not line.startswith("   ") and ":" in line
    }
    assert seed_keys <= keys
    assert {
        "use_latest_chart_version",
        "container_registry_chart_path",
        "helm_disable_openapi_validation",
        "helm_skip_schema_validation",
        "helm_chart_repository",
        "helm_chart_name",
        "helm_chart_path",
        "helm_release_name",
        "dagster_webserver_deployment_name",
        "dagster_daemon_deployment_name",
        "container_registry_insecure",
        "image_pull_secrets",
        "image_pull_policy",
        "docker_build_secrets",
    } <= keys


# --------------------------------------------------------------------------- layering (pure)


def test_merge_layers_later_wins_and_records_sources() -> None:
    values, sources = merge_layers(
        [
            Layer(
                "defaults section",
                {"namespace": "a", "image_prefix": "p", "limits": {"cpu": "1", "memory": "1Gi"}},
            ),
            Layer("environment 'dev'", {"namespace": "b", "limits": {"cpu": "2"}}),
            Layer(
                "environment variables",
                {"namespace": "c"},
                {"namespace": "environment variable NAMESPACE"},
            ),
        ]
    )
    assert values == {"namespace": "c", "image_prefix": "p", "limits": {"cpu": "2"}}
    assert sources == {
        "namespace": "environment variable NAMESPACE",
        "image_prefix": "defaults section",
        "limits": "environment 'dev'",
    }


def test_defaults_environment_and_variables_in_a_file(tmp_path: Path) -> None:
    text = (
        "defaults:\n  image_prefix: team\n  namespace: from-defaults\n  verbose: true\n" + minimal()
    )
    loaded = load(
        tmp_path, text, env={"VERBOSE": "FALSE", "UNRELATED": "x", "namespace": "lower-ignored"}
    )
    assert loaded.config.image_prefix == "team"
    assert loaded.sources["image_prefix"] == "defaults section"
    assert loaded.config.namespace == "dagster-dev"
    assert loaded.sources["namespace"] == "environment 'dev'"
    assert loaded.config.verbose is False
    assert loaded.sources["verbose"] == "environment variable VERBOSE"


def test_required_keys_may_come_from_defaults_or_variables(tmp_path: Path) -> None:
    text = "defaults:\n  code_path: a.py\n  dagster_version: '1.9.0'\ndev:\n  namespace: ns\n"
    env = {"CONTAINER_REGISTRY": "reg:5000", "KUBERNETES_CONTEXT": "kind"}
    config = load(tmp_path, text, env=env).config
    assert (config.code_path, config.container_registry, config.kubernetes_context) == (
        "a.py",
        "reg:5000",
        "kind",
    )


def test_defaults_section_is_optional_and_other_environments_are_ignored(tmp_path: Path) -> None:
    text = minimal() + "prd:\n  namspace_typo_in_other_env: 1\n"
    assert load(tmp_path, text).config.namespace == "dagster-dev"


def test_environment_selection(tmp_path: Path) -> None:
    text = minimal() + minimal(environment="acc").replace("dagster-dev", "dagster-acc")
    loaded = load(tmp_path, text, environment="acc")
    assert loaded.config.namespace == "dagster-acc"
    assert loaded.config.environment == "acc"
    assert loaded.environment == "acc"


def test_environment_key_can_differ_from_section_name(tmp_path: Path) -> None:
    config = load(tmp_path, minimal("  environment: production\n")).config
    assert config.environment == "production"


# --------------------------------------------------------------------------- environment variables


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("YES", True),
        ("false", False),
        ("FALSE", False),
        ("0", False),
        ("no", False),
        ("No", False),
        (" off ", False),
    ],
)
def test_bool_parsing(raw: str, expected: bool) -> None:
    assert parse_env_value("CICD", raw, "bool") is expected


def test_cicd_false_in_upper_case_is_false(tmp_path: Path) -> None:
    loaded = load(tmp_path, minimal("  cicd: true\n"), env={"CICD": "FALSE"})
    assert loaded.config.cicd is False


def test_bad_bool_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"CICD='maybe' is not a boolean"):
        parse_env_value("CICD", "maybe", "bool")


def test_int_parsing() -> None:
    assert parse_env_value("X", " 42 ", "int") == 42
    with pytest.raises(ConfigError, match="X='4x' is not an integer"):
        parse_env_value("X", "4x", "int")


def test_list_from_json_and_yaml(tmp_path: Path) -> None:
    assert parse_env_value("DOCKER_ENV_VARS", '["A=1", "B"]', "list") == ["A=1", "B"]
    assert parse_env_value("DOCKER_ENV_VARS", "[A=1, B]", "list") == ["A=1", "B"]
    assert parse_env_value("DOCKER_ENV_VARS", "- A=1\n- B\n", "list") == ["A=1", "B"]
    assert parse_env_value("DOCKER_ENV_VARS", "", "list") == []


def test_map_from_json_and_yaml() -> None:
    assert parse_env_value("LIMITS", '{"cpu": "2", "memory": "2Gi"}', "dict") == {
        "cpu": "2",
        "memory": "2Gi",
    }
    assert parse_env_value("LIMITS", "{cpu: 2, memory: 2Gi}", "dict") == {"cpu": 2, "memory": "2Gi"}
    assert parse_env_value("LIMITS", "cpu: '2'\nmemory: 2Gi", "dict") == {
        "cpu": "2",
        "memory": "2Gi",
    }


@pytest.mark.parametrize(
    ("kind", "raw"),
    [("list", "A=secret"), ("list", "{a: 1}"), ("dict", "[1]"), ("dict", "{unclosed")],
)
def test_bad_list_or_map_names_the_variable_not_the_value(kind: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_env_value("VAR_NAME", raw, kind)  # type: ignore[arg-type]
    assert "VAR_NAME" in str(info.value)
    assert "secret" not in str(info.value)


def test_optional_text_null() -> None:
    assert parse_env_value("DAGSTER_GUI_URL", "", "str", optional=True) is None
    assert parse_env_value("DAGSTER_GUI_URL", "null", "str", optional=True) is None
    assert parse_env_value("IMAGE_PREFIX", "", "str") == ""


def test_field_kinds() -> None:
    assert field_kind("cicd") == ("bool", False)
    assert field_kind("namespace") == ("str", False)
    assert field_kind("dagster_gui_url") == ("str", True)
    assert field_kind("docker_env_vars") == ("list", False)
    assert field_kind("limits") == ("dict", False)
    assert field_kind("user_code_deployment_env") == ("list", False)
    assert field_kind("image_pull_policy") == ("str", False)


def test_env_layer_reads_only_exact_upper_case_key_names() -> None:
    layer = env_layer(
        {
            "NAMESPACE": "x",
            "namespace": "y",
            "NAMESPACES": "z",
            "CICD": "yes",
            "LIMITS": '{"cpu": "1"}',
        }
    )
    assert layer.values == {"namespace": "x", "cicd": True, "limits": {"cpu": "1"}}
    assert layer.key_sources == {
        "namespace": "environment variable NAMESPACE",
        "cicd": "environment variable CICD",
        "limits": "environment variable LIMITS",
    }


def test_every_type_overridden_by_variables(tmp_path: Path) -> None:
    env = {
        "CICD": "yes",
        "NAMESPACE": "dagster-acc",
        "DAGSTER_GUI_URL": "http://ui",
        "DOCKER_ENV_VARS": '["A=1", "B"]',
        "LIMITS": "{cpu: 0.5, memory: 1Gi}",
        "USER_CODE_DEPLOYMENT_ENV": '[{"name": "X", "value": "1"}]',
        "USER_CODE_DEPLOYMENT_ENV_SECRETS": "- name: s1\n",
        "DOCKER_BUILD_SECRETS": '[{"id": "tok", "env": "TOKEN"}]',
        "IMAGE_PULL_POLICY": "Always",
        "NODE": "null",
    }
    loaded = load(tmp_path, minimal("  node: small\n"), env=env)
    config = loaded.config
    assert config.cicd is True
    assert config.namespace == "dagster-acc"
    assert config.dagster_gui_url == "http://ui"
    assert config.docker_env_vars == ["A=1", "B"]
    assert config.limits == {"cpu": "0.5", "memory": "1Gi"}
    assert config.user_code_deployment_env[0].value == "1"
    assert config.user_code_deployment_env_secrets[0].name == "s1"
    assert config.docker_build_secrets[0].env == "TOKEN"
    assert config.image_pull_policy == "Always"
    assert config.node is None
    assert loaded.sources["node"] == "environment variable NODE"


def test_wrongly_typed_variable_content_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment variable USER_CODE_DEPLOYMENT_ENV"):
        load(tmp_path, minimal(), env={"USER_CODE_DEPLOYMENT_ENV": '[{"name": "X"}]'})


# --------------------------------------------------------------------------- discovery


def test_discovery_prefers_cwd_over_home(tmp_path: Path) -> None:
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    write(home, minimal())
    assert find_config_file(None, cwd, home) == home / CONFIG_FILE_NAME
    write(cwd, minimal())
    assert find_config_file(None, cwd, home) == cwd / CONFIG_FILE_NAME


def test_explicit_file_wins_and_is_relative_to_cwd(tmp_path: Path) -> None:
    write(tmp_path, minimal())
    write(tmp_path, minimal(), name="other.yaml")
    assert find_config_file(Path("other.yaml"), tmp_path, tmp_path) == tmp_path / "other.yaml"


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Config file nope.yaml does not exist"):
        find_config_file(Path("nope.yaml"), tmp_path, tmp_path)


def test_no_file_anywhere_names_both_places(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_config_file(None, tmp_path / "a", tmp_path / "b")
    assert str(tmp_path / "a") in str(info.value) and str(tmp_path / "b") in str(info.value)
    assert "init-config" in str(info.value)


def test_load_config_discovers_in_cwd(tmp_path: Path) -> None:
    write(tmp_path, minimal())
    loaded = load_config("dev", cwd=tmp_path, env={}, home=tmp_path / "nohome")
    assert loaded.path == tmp_path / CONFIG_FILE_NAME


# --------------------------------------------------------------------------- validation errors


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown key 'namspace' in the `dev` section \(did you mean 'namespace'\?\)",
    ):
        load(tmp_path, minimal("  namspace: x\n"))


def test_unknown_key_in_defaults(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"'contianer_registry' in the `defaults` section \(did you mean 'container_registry'",
    ):
        load(tmp_path, "defaults:\n  contianer_registry: x\n" + minimal())


def test_unknown_key_without_close_match(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'zzz'"):
        load(tmp_path, minimal("  zzz: 1\n"))
    assert suggest_key("zzz") is None


def test_all_missing_keys_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "dev:\n  cicd: false\n")
    message = str(info.value)
    for key in REQUIRED:
        assert key in message
    assert "NAMESPACE" in message


def test_unknown_environment_lists_known_ones(tmp_path: Path) -> None:
    text = minimal() + minimal(environment="acc") + "defaults:\n  cicd: false\n"
    with pytest.raises(
        ConfigError, match=r"Environment 'prd' is not defined in .*defined environments: dev, acc\."
    ):
        load(tmp_path, text, environment="prd")


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("dev:\n  cicd: [\n", 3, 1),
        ("dev:\n  a: b\n c: d\n", 3, 2),
        ("dev:\n  a: 'unclosed\n", 3, 1),
        ("dev:\n\tcicd: true\n", 2, 1),
    ],
)
def test_yaml_errors_give_file_line_and_column(
    tmp_path: Path, text: str, line: int, column: int
) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert f"line {line}, column {column}" in message
    assert str(tmp_path / CONFIG_FILE_NAME) in message


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (
            "  cicd: maybe\n",
            "'cicd' (from environment 'dev') must be a boolean (true/false), got string 'maybe'",
        ),
        (
            "  docker_env_vars: A=1\n",
            "'docker_env_vars' (from environment 'dev') must be a list, got string",
        ),
        ("  limits: [1]\n", "'limits' (from environment 'dev') must be a map, got list"),
        (
            "  dagster_gui_url: [1]\n",
            "'dagster_gui_url' (from environment 'dev') must be a string or null",
        ),
        ("  image_pull_policy: Sometimes\n", "must be one of IfNotPresent, Always, Never"),
        ("  user_code_deployment_env: [{name: X}]\n", "'user_code_deployment_env[0].value'"),
        (
            "  user_code_deployment_env: [{name: X, value: y, other: 1}]\n",
            "'user_code_deployment_env[0].other' (from environment 'dev'): unknown field",
        ),
        (
            "  docker_build_secrets: [{id: a}]\n",
            "build secret 'a' needs exactly one of 'env' or 'src'",
        ),
        (
            "  docker_build_secrets: [{id: a, env: X, src: /p}]\n",
            "needs exactly one of 'env' or 'src'",
        ),
    ],
)
def test_wrong_types_name_key_and_expected_type(tmp_path: Path, extra: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, minimal(extra))
    assert fragment in str(info.value)


def test_unquoted_float_version_is_rejected_with_advice(tmp_path: Path) -> None:
    text = minimal().replace("dagster_version: '1.8.4'", "dagster_version: 1.10")
    with pytest.raises(ConfigError, match=r"'dagster_version'.*number 1.1.*quotes"):
        load(tmp_path, text)


def test_integers_and_quantities_become_text(tmp_path: Path) -> None:
    config = load(
        tmp_path, minimal("  limits: {cpu: 2, memory: 2Gi}\n  requests: {cpu: 0.5}\n  node: 7\n")
    ).config
    assert config.limits == {"cpu": "2", "memory": "2Gi"}
    assert config.requests == {"cpu": "0.5"}
    assert config.node == "7"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "is empty"),
        ("- a\n- b\n", "must map environment names to settings"),
        ("dev: [1, 2]\n", "`dev` section"),
        ("defaults: 3\ndev:\n  cicd: true\n", "`defaults` section"),
    ],
)
def test_badly_shaped_files(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load(tmp_path, text)


def test_empty_environment_section_reports_missing_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing required keys"):
        load(tmp_path, "dev:\n")


# --------------------------------------------------------------------------- masking


def test_masked_config_hides_secrets(tmp_path: Path) -> None:
    extra = (
        "  docker_env_vars: ['PIP_TOKEN=abc123', 'FROM_ENV']\n"
        "  user_code_deployment_env:\n"
        "    - {name: DB_PASSWORD, value: hunter2}\n"
        "    - {name: PLAIN, value: visible}\n"
        "    - {name: GH, value: ghp_abcdefghijklmnop}\n"
        "  user_code_deployment_env_secrets: [{name: my-env-secret}]\n"
        "  docker_build_secrets: [{id: pip, env: PIP_TOKEN}, {id: netrc, src: /home/u/.netrc}]\n"
        "  dagster_gui_url: https://user:pa55@dagster.example.com/ui\n"
    )
    data = masked_config(load(tmp_path, minimal(extra)))
    text = json.dumps(data)
    for secret in ("abc123", "hunter2", "ghp_abcdefghijklmnop", "pa55"):
        assert secret not in text
    assert data["docker_env_vars"] == ["PIP_TOKEN=***", "FROM_ENV"]
    assert data["user_code_deployment_env"][0] == {"name": "DB_PASSWORD", "value": "***"}
    assert data["user_code_deployment_env"][1] == {"name": "PLAIN", "value": "visible"}
    assert data["user_code_deployment_env_secrets"] == [{"name": "my-env-secret"}]
    assert data["docker_build_secrets"] == [
        {"id": "pip", "env": "PIP_TOKEN"},
        {"id": "netrc", "src": "/home/u/.netrc"},
    ]
    assert data["dagster_gui_url"] == "https://user:***@dagster.example.com/ui"
    assert data["namespace"] == "dagster-dev"
