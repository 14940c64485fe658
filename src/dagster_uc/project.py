"""The project name from ``pyproject.toml`` (for ``use_project_name``)."""

from __future__ import annotations

import sys
from pathlib import Path

from dagster_uc.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def project_name(directory: Path) -> str:
    """``[project].name`` (or ``[tool.poetry].name``) of ``directory/pyproject.toml``."""
    path = directory / "pyproject.toml"
    advice = "or set use_project_name: false in the configuration"
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise UsageError(
            f"use_project_name is true but there is no pyproject.toml in {directory}; "
            f"run dagster-uc from the project directory {advice}."
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"Cannot read {path}: {exc}; fix the file {advice}.") from None
    name = data.get("project", {}).get("name") or data.get("tool", {}).get("poetry", {}).get("name")
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{path} has no [project].name; add one {advice}.")
    return name.strip()
