"""`init-config`: the starter configuration file, from prompts or as a commented template."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster_uc.config import (
    CONFIG_FILE_NAME,
    DEFAULT_ENVIRONMENT,
    Config,
    build_config,
    layers_from_file,
    merge_layers,
    read_config_file,
)
from dagster_uc.errors import UsageError

HEADER = f"""\
# dagster-uc configuration ({CONFIG_FILE_NAME}).
# One section per environment, chosen with `dagster-uc -e NAME ...` (default: dev).
# Layers, later wins: an optional `defaults:` section shared by all environments, then the
# environment's own section, then environment variables named like a key in upper case
# (CICD=true, NAMESPACE=dagster-acc; lists and maps as JSON or YAML).
# Check the result with `dagster-uc show-config --sources`.
"""


@dataclass(frozen=True)
class Question:
    key: str
    text: str
    kind: str = "text"  # "text", "optional" (empty answer means null) or "bool"


QUESTIONS = (
    Question("container_registry", "Container registry (host[:port][/path])"),
    Question(
        "image_prefix",
        "Image prefix, the path segment before the image name (empty for none)",
        "optional",
    ),
    Question("dagster_version", "Dagster version of the cluster (e.g. 1.8.4)"),
    Question("kubernetes_context", "kubectl context of the cluster"),
    Question("namespace", "Kubernetes namespace of the Dagster instance"),
    Question("code_path", "Definitions file inside the image, relative to docker_root"),
    Question("docker_root", "Directory inside the image that code_path is relative to"),
    Question("dockerfile", "Dockerfile, relative to repository_root"),
    Question("repository_root", "Build context directory"),
    Question("node", "Node pool for the code server pod (empty for any node)", "optional"),
    Question("dagster_gui_url", "URL of the Dagster UI (empty for none)", "optional"),
    Question(
        "use_project_name", "Prefix deployment names with the pyproject.toml project name?", "bool"
    ),
    Question("use_az_login", "Log in to the registry with the Azure CLI?", "bool"),
    Question(
        "cicd", "Is this configuration for CI (deployment named after the environment)?", "bool"
    ),
)


def default_value(key: str) -> Any:
    """A key's default, or its example for required keys."""
    field = Config.model_fields[key]
    if field.is_required():
        return (field.examples or [""])[0]
    return field.get_default(call_default_factory=True)


def _dump_entry(key: str, value: Any) -> list[str]:
    import yaml

    text = yaml.safe_dump(
        {key: value}, default_flow_style=False, sort_keys=False, allow_unicode=True, width=1000
    )
    return text.rstrip("\n").splitlines()


def _flow(value: Any) -> str:
    import yaml

    return (
        str(yaml.safe_dump(value, default_flow_style=True, width=1000))
        .removesuffix("\n...\n")
        .strip()
    )


def _comment(key: str) -> list[str]:
    field = Config.model_fields[key]
    description = field.description or ""
    if field.is_required():
        text = f"Required. {description}"
    elif key == "environment":
        text = description
    else:
        text = f"{description} Default: {_flow(field.get_default(call_default_factory=True))}"
    return textwrap.wrap(text, width=94, initial_indent="# ", subsequent_indent="#   ")


def render_config(environment: str, values: dict[str, Any] | None = None) -> str:
    """A complete config file: every key with a comment, its value or default."""
    values = values or {}
    lines = [HEADER, f"{environment}:"]
    for key in Config.model_fields:
        value = values.get(key, environment if key == "environment" else default_value(key))
        lines.extend(f"  {line}" for line in _comment(key))
        lines.extend(f"  {line}" for line in _dump_entry(key, value))
    return "\n".join(lines) + "\n"


def ask(prompt: Callable[..., Any], confirm: Callable[..., bool]) -> tuple[str, dict[str, Any]]:
    """Ask for the important keys; ``prompt``/``confirm`` behave like typer's."""
    environment = str(prompt("Environment name", default=DEFAULT_ENVIRONMENT)).strip()
    values: dict[str, Any] = {}
    for question in QUESTIONS:
        field = Config.model_fields[question.key]
        if question.kind == "bool":
            values[question.key] = confirm(question.text, default=default_value(question.key))
        elif question.kind == "optional":
            answer = str(prompt(question.text, default="", show_default=False)).strip()
            if question.key == "image_prefix":
                values[question.key] = answer
            else:
                values[question.key] = answer or None
        elif field.is_required():
            values[question.key] = str(prompt(question.text)).strip()
        else:
            values[question.key] = str(
                prompt(question.text, default=default_value(question.key))
            ).strip()
    return environment or DEFAULT_ENVIRONMENT, values


def write_config(path: Path, text: str, force: bool) -> None:
    """Write ``text`` to ``path`` (refusing to overwrite without ``force``), then check that
    it loads."""
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; pass --force to overwrite it.")
    if not path.parent.is_dir():
        raise UsageError(f"Directory {path.parent} does not exist; create it first.")
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise UsageError(f"Cannot write {path}: {exc.strerror or exc}.") from None


def check_written(path: Path, environment: str) -> None:
    """Validate the file as load_config would, without the environment-variable layer."""
    data = read_config_file(path)
    defaults, own = layers_from_file(data, environment, path)
    values, sources = merge_layers([defaults, own])
    build_config(values, environment, path, sources)
