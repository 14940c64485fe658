"""Configuration: file discovery, the three layers, typed environment overrides, validation.

Layers, later wins: the optional ``defaults`` section, the environment's section, then
environment variables named exactly like a key in upper case. Each key is replaced as a whole
by a later layer (maps such as ``limits`` are not merged key by key). The merging and the
parsing of environment variables are pure functions; only :func:`load_config` does I/O.
"""

from __future__ import annotations

import difflib
import json
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from dagster_uc.errors import ConfigError

CONFIG_FILE_NAME = ".config_user_code_deployments.yaml"
DEFAULTS_SECTION = "defaults"
DEFAULT_ENVIRONMENT = "dev"
REQUIRED_KEYS = (
    "code_path",
    "container_registry",
    "dagster_version",
    "kubernetes_context",
    "namespace",
)


def _text(value: Any) -> Any:
    """YAML reads ``2`` as a number: accept integers where text is expected; reject other
    numbers, since ``1.10`` would silently become ``1.1``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError(f"YAML read it as the number {value!r}; put the value in quotes")
    return value


def _quantity(value: Any) -> Any:
    """Kubernetes quantities such as ``cpu: 0.5`` or ``cpu: 2`` are kept as text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_text)]
Quantity = Annotated[str, BeforeValidator(_quantity)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnvVar(_Entry):
    """A plain environment variable of the code server pod."""

    name: Text
    value: Text


class SecretRef(_Entry):
    """A reference to a Kubernetes Secret by name."""

    name: Text


class BuildSecret(_Entry):
    """A podman build secret: ``--secret id=<id>,env=<VAR>`` or ``--secret id=<id>,src=<PATH>``."""

    id: Text
    env: Text | None = None
    src: Text | None = None

    @model_validator(mode="after")
    def _one_source(self) -> BuildSecret:
        if (self.env is None) == (self.src is None):
            raise ValueError(f"build secret '{self.id}' needs exactly one of 'env' or 'src'")
        return self


class Config(BaseModel):
    """The effective configuration of one environment."""

    model_config = ConfigDict(extra="forbid")

    # Seed keys.
    cicd: bool = Field(
        False,
        description="Name the deployment after `environment` instead of the git branch (CI pipelines).",
    )
    code_path: Text = Field(
        description="Python file with the Dagster definitions, relative to `docker_root` inside the image (the code server's `-f`).",
        examples=["dagster_pipelines/repo.py"],
    )
    image_prefix: Text = Field(
        "", description="Path segment between the registry and the image name; empty for none."
    )
    container_registry: Text = Field(
        description="Registry host (optionally with port and path) the images are pushed to.",
        examples=["myacr.azurecr.io"],
    )
    dagster_gui_url: Text | None = Field(
        None, description="URL of the Dagster UI; deploy then prints a link to the location."
    )
    dagster_version: Text = Field(
        description="Dagster version of the cluster and the image: chart version and image tag prefix; quote versions such as `'1.10'`.",
        examples=["1.8.4"],
    )
    docker_root: Text = Field(
        ".", description="Directory inside the image that `code_path` is relative to."
    )
    dockerfile: Text = Field(
        "./Dockerfile", description="Dockerfile of the build, relative to `repository_root`."
    )
    docker_env_vars: list[Text] = Field(
        default_factory=list,
        description="Variables for the build's RUN steps: `VAR=value`, or `VAR` to take the caller's value. Values are masked in show-config.",
    )
    environment: Text = Field(
        "",
        description="Environment name; with `cicd: true` it names the deployment and is the `BRANCH_NAME` build arg. Default: the `-e` environment.",
    )
    kubernetes_context: Text = Field(
        description="kubectl context of the cluster.", examples=["my-kubernetes-context"]
    )
    namespace: Text = Field(
        description="Namespace of the Dagster instance.", examples=["dagster-dev"]
    )
    limits: dict[Text, Quantity] = Field(
        default_factory=dict,
        description="Resource limits of the code server pod, e.g. `{cpu: '2', memory: 2Gi}`.",
    )
    node: Text | None = Field(
        None,
        description="Node pool for the code server pod (node selector and toleration); none for any node.",
    )
    repository_root: Text = Field(
        ".",
        description="Build context directory of the image build, relative to the current directory.",
    )
    requests: dict[Text, Quantity] = Field(
        default_factory=dict,
        description="Resource requests of the code server pod, e.g. `{cpu: '1', memory: 1Gi}`.",
    )
    use_project_name: bool = Field(
        True,
        description="Prefix the deployment name with `[project].name` of `pyproject.toml` in the current directory.",
    )
    use_az_login: bool = Field(
        False,
        description="Log in to the registry (podman and helm) with `az acr login --expose-token`.",
    )
    user_code_deployment_env: list[EnvVar] = Field(
        default_factory=list,
        description="Plain environment variables of the code server: `[{name: ..., value: ...}]`.",
    )
    user_code_deployment_env_secrets: list[SecretRef] = Field(
        default_factory=list,
        description="Kubernetes Secrets exposed as environment variables: `[{name: ...}]`.",
    )
    user_code_deployments_configmap_name: Text = Field(
        "dagster-user-deployments-values-yaml",
        description="ConfigMap holding the list of user-code deployments.",
    )
    dagster_workspace_yaml_configmap_name: Text = Field(
        "dagster-workspace-yaml", description="Dagster's workspace ConfigMap."
    )
    uc_deployment_semaphore_name: Text = Field(
        "dagster-uc-semaphore", description="Name of the Lease used as the deploy lock."
    )
    verbose: bool = Field(False, description="Debug output and tracebacks (same as `-v`).")
    # Helm chart settings of the original tool.
    use_latest_chart_version: bool = Field(
        False, description="Use the newest chart version instead of `dagster_version`."
    )
    container_registry_chart_path: Text | None = Field(
        None,
        description="Chart path in the registry: the chart comes from `oci://<container_registry>/<path>`.",
    )
    helm_disable_openapi_validation: bool = Field(
        False, description="Pass `--disable-openapi-validation` to helm."
    )
    helm_skip_schema_validation: bool = Field(
        False, description="Pass `--skip-schema-validation` to helm."
    )
    # Beyond the original tool.
    helm_chart_repository: Text = Field(
        "https://dagster-io.github.io/helm", description="Chart repository URL."
    )
    helm_chart_name: Text = Field(
        "dagster-user-deployments", description="Chart name in that repository."
    )
    helm_chart_path: Text | None = Field(
        None,
        description="Local chart directory or `.tgz`; wins over the repository and the OCI path.",
    )
    helm_release_name: Text = Field(
        "dagster-user-code", description="Helm release holding all user-code deployments."
    )
    helm_release_mode: Literal["shared", "per-location", "auto"] = Field(
        "auto",
        description="`shared`: every location in the one release `helm_release_name` (the original tool's layout); `per-location`: each location its own release, deployed without a global lock; `auto`: `shared` when the namespace has that shared release, else `per-location` (see docs/release-modes.md).",
    )
    code_server_container_name: Text = Field(
        "dagster-user-deployments",
        description="Code-server container of each location's pods (the chart's name); found by name next to injected sidecars.",
    )
    dagster_webserver_deployment_name: Text = Field(
        "dagster-dagster-webserver",
        description="Webserver Deployment, reloaded (or restarted) when the set of locations changes.",
    )
    dagster_daemon_deployment_name: Text = Field(
        "dagster-daemon",
        description="Daemon Deployment, restarted with the webserver in `restart` mode.",
    )
    dagster_reload: Literal["reload", "restart"] = Field(
        "reload",
        description="How Dagster learns of a new, deleted or revived location: `reload` asks the running webserver to re-read its workspace (exec into its pod; the daemon re-reads it by itself), `restart` restarts the webserver and daemon Deployments.",
    )
    dagster_reload_timeout_seconds: int = Field(
        180,
        ge=1,
        description="In `reload` mode, how long to wait for the webserver to show the new set of locations before restarting it instead (covers the kubelet's ConfigMap sync, about a minute).",
    )
    deploy_lock_lease_seconds: int = Field(
        30,
        ge=5,
        description="Lease duration of the deploy lock: a killed deploy blocks others at most this long.",
    )
    container_registry_insecure: bool = Field(
        False, description="Plain HTTP / no TLS verification for the registry."
    )
    image_pull_secrets: list[SecretRef] = Field(
        default_factory=list, description="The chart's `imagePullSecrets`: `[{name: ...}]`."
    )
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = Field(
        "IfNotPresent", description="Image pull policy of each deployment."
    )
    docker_build_secrets: list[BuildSecret] = Field(
        default_factory=list,
        description="Build secrets: `[{id: NAME, env: VAR}]` or `[{id: NAME, src: PATH}]` (podman `--secret`).",
    )


@dataclass
class LoadedConfig:
    """A validated config, where it came from, and which layer set each key."""

    config: Config
    path: Path
    environment: str
    sources: dict[str, str]


@dataclass(frozen=True)
class Layer:
    """One layer of settings; ``key_sources`` overrides ``name`` per key (environment variables)."""

    name: str
    values: Mapping[str, Any]
    key_sources: Mapping[str, str] | None = None


# --------------------------------------------------------------------------- pure helpers


def config_keys() -> list[str]:
    return list(Config.model_fields)


def merge_layers(layers: Sequence[Layer]) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge layers in order (later wins, whole keys) and record the layer of each key."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.values.items():
            values[key] = value
            sources[key] = (layer.key_sources or {}).get(key, layer.name)
    return values, sources


def suggest_key(key: str, known: Sequence[str] | None = None) -> str | None:
    """The closest valid key, if any is reasonably close."""
    candidates = list(known) if known is not None else config_keys()
    matches = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


FieldKind = Literal["bool", "int", "str", "list", "dict"]


def field_kind(key: str) -> tuple[FieldKind, bool]:
    """The parsing kind of a key's type, and whether it accepts null."""
    annotation = Config.model_fields[key].annotation
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        annotation = args[0]
        origin = typing.get_origin(annotation)
    if annotation is bool:
        return "bool", optional
    if annotation is int:
        return "int", optional
    if origin is list:
        return "list", optional
    if origin is dict:
        return "dict", optional
    return "str", optional


_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_NULL = {"", "null", "none", "~"}


def parse_env_value(variable: str, raw: str, kind: FieldKind, optional: bool = False) -> Any:
    """Parse an environment variable's text to the key's type; errors name the variable
    (never its value for lists, maps and text, which may hold secrets)."""
    text = raw.strip()
    if optional and text.lower() in _NULL:
        return None
    if kind == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(
            f"Environment variable {variable}={raw!r} is not a boolean; use true/false, 1/0 or yes/no."
        )
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ConfigError(
                f"Environment variable {variable}={raw!r} is not an integer."
            ) from None
    if kind in ("list", "dict"):
        expected: type = list if kind == "list" else dict
        example = '\'["A=1", "B"]\'' if kind == "list" else '\'{"cpu": "1"}\''
        if not text:
            return expected()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = _yaml_scalar_or_none(text)
        if not isinstance(parsed, expected):
            kind_name = "a list" if kind == "list" else "a map"
            raise ConfigError(
                f"Environment variable {variable} must be {kind_name} in JSON or YAML, e.g. {variable}={example}."
            )
        return parsed
    return raw


def _yaml_scalar_or_none(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def env_layer(env: Mapping[str, str]) -> Layer:
    """The environment-variable layer: only variables named exactly like a key in upper case."""
    values: dict[str, Any] = {}
    key_sources: dict[str, str] = {}
    for key in config_keys():
        variable = key.upper()
        if variable in env:
            kind, optional = field_kind(key)
            values[key] = parse_env_value(variable, env[variable], kind, optional)
            key_sources[key] = f"environment variable {variable}"
    return Layer("environment variables", values, key_sources)


# --------------------------------------------------------------------------- file handling


def find_config_file(explicit: Path | None, cwd: Path, home: Path) -> Path:
    """``explicit`` if given (must exist); else the file in ``cwd``; else the one in ``home``."""
    if explicit is not None:
        path = explicit if explicit.is_absolute() else cwd / explicit
        if not path.is_file():
            raise ConfigError(
                f"Config file {explicit} does not exist; create it with "
                f"`dagster-uc init-config -f {explicit}`."
            )
        return path
    for directory in (cwd, home):
        candidate = directory / CONFIG_FILE_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"No configuration file found: looked for {CONFIG_FILE_NAME} in {cwd} and {home}; "
        f"create one with `dagster-uc init-config -f {CONFIG_FILE_NAME}` or pass --config-file."
    )


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse the YAML file into ``{section name: settings}``; errors name file, line, column."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}.") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"Invalid YAML in {path}{where}: {problem}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Invalid YAML in {path}: {exc}.") from None
    if data is None:
        raise ConfigError(
            f"Config file {path} is empty; it needs a section per environment, e.g. `dev:`."
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file {path} must map environment names to settings (e.g. `dev:`), "
            f"not a {_type_word(data)}."
        )
    return {str(key): value for key, value in data.items()}


def _section(data: Mapping[str, Any], name: str, path: Path, label: str) -> dict[str, Any]:
    section = data.get(name)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(
            f"The {label} in {path} must be a map of settings, not a {_type_word(section)}."
        )
    return {str(key): value for key, value in section.items()}


def layers_from_file(data: Mapping[str, Any], environment: str, path: Path) -> tuple[Layer, Layer]:
    """The ``defaults`` and environment layers of a parsed file (unknown keys rejected)."""
    environments = [name for name in data if name != DEFAULTS_SECTION]
    if environment not in environments:
        known = ", ".join(environments) if environments else "none"
        raise ConfigError(
            f"Environment '{environment}' is not defined in {path}; defined environments: "
            f"{known}. Pick one with -e/--environment or add a `{environment}:` section."
        )
    defaults = Layer(
        "defaults section", _section(data, DEFAULTS_SECTION, path, "`defaults` section")
    )
    own = Layer(
        f"environment '{environment}'",
        _section(data, environment, path, f"`{environment}` section"),
    )
    problems = []
    keys = config_keys()
    for layer, label in ((defaults, "`defaults`"), (own, f"`{environment}`")):
        for key in layer.values:
            if key not in keys:
                hint = suggest_key(key)
                advice = (
                    f"did you mean '{hint}'?"
                    if hint
                    else "`dagster-uc init-config --no-input -f FILE` writes every valid key"
                )
                problems.append(f"unknown key '{key}' in the {label} section ({advice})")
    if problems:
        raise ConfigError(f"Invalid config file {path}: {'; '.join(problems)}.")
    return defaults, own


# --------------------------------------------------------------------------- validation


def _type_word(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


_EXPECTED = {
    "bool": "a boolean (true/false)",
    "int": "an integer",
    "str": "a string",
    "list": "a list",
    "dict": "a map",
}
_SENSITIVE_KEYS = {"docker_env_vars", "user_code_deployment_env", "docker_build_secrets"}


def _location(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not str(part).startswith("function-"):
            text += f".{part}" if text else part
    return text


def validation_message(
    error: ValidationError, environment: str, path: Path, sources: Mapping[str, str]
) -> str:
    """One message for all problems of a pydantic error: missing keys at once, then types."""
    missing: list[str] = []
    problems: list[str] = []
    for item in error.errors():
        loc = item.get("loc", ())
        key = str(loc[0]) if loc else ""
        if item["type"] == "missing" and len(loc) == 1:
            missing.append(key)
            continue
        where = _location(loc)
        source = sources.get(key, "default")
        if len(loc) == 1 and key in Config.model_fields:
            kind, optional = field_kind(key)
            expected = _EXPECTED[kind] + (" or null" if optional else "")
            if key == "image_pull_policy":
                expected = "one of IfNotPresent, Always, Never"
            value = item.get("input")
            shown = (
                "" if key in _SENSITIVE_KEYS or isinstance(value, (list, dict)) else f" {value!r}"
            )
            detail = str(item.get("msg", "")).removeprefix("Value error, ")
            extra = f" ({detail})" if item["type"] == "value_error" else ""
            problems.append(
                f"'{where}' (from {source}) must be {expected}, got {_type_word(value)}{shown}{extra}"
            )
        else:
            detail = str(item.get("msg", "")).removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                detail = "unknown field"
            problems.append(f"'{where}' (from {source}): {detail}")
    parts = []
    if missing:
        variables = ", ".join(key.upper() for key in missing)
        parts.append(
            f"missing required keys for environment '{environment}': {', '.join(missing)} "
            f"(set them in the `{environment}` or `defaults` section, or as {variables})"
        )
    parts.extend(problems)
    return f"Invalid configuration in {path}: " + "; ".join(parts) + "."


def build_config(
    values: Mapping[str, Any], environment: str, path: Path, sources: Mapping[str, str]
) -> Config:
    """Validate merged values; ``environment`` defaults to the selected environment name."""
    data = dict(values)
    if data.get("environment") in (None, ""):
        data["environment"] = environment
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, environment, path, sources)) from None


def load_config(
    environment: str,
    config_file: Path | None = None,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> LoadedConfig:
    """Find, read, layer and validate the configuration of ``environment``."""
    cwd = cwd if cwd is not None else Path.cwd()
    env = env if env is not None else os.environ
    home = home if home is not None else Path.home()
    path = find_config_file(config_file, cwd, home)
    data = read_config_file(path)
    defaults, own = layers_from_file(data, environment, path)
    values, sources = merge_layers([defaults, own, env_layer(env)])
    config = build_config(values, environment, path, sources)
    all_sources = {key: sources.get(key, "default") for key in config_keys()}
    return LoadedConfig(config=config, path=path, environment=environment, sources=all_sources)
