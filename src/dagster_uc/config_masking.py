"""What `config show` prints: the effective config as plain data with secrets masked.

Pure functions over strings and the loaded config; kept apart from loading and validation
(`config.py`) so that masking rules read on their own.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster_uc.config import LoadedConfig

MASK = "***"
_SECRET_NAME_RE = re.compile(
    r"(token|passw|secret|api[_-]?key|credential|private[_-]?key|auth|pwd)", re.IGNORECASE
)
_SECRET_VALUE_RE = re.compile(
    r"^(gh[pousr]_|github_pat_|glpat-|xox[abprs]-|AKIA[0-9A-Z]{12}|eyJ[A-Za-z0-9_-]{8,}\.)"
)
_URL_PASSWORD_RE = re.compile(r"^([a-z][a-z0-9+.-]*://[^/:@\s]+):[^/@\s]+@", re.IGNORECASE)


def looks_secret_name(name: str) -> bool:
    return _SECRET_NAME_RE.search(name) is not None


def mask_value(value: str) -> str:
    """Mask token-looking strings entirely and the password part of URLs."""
    if _SECRET_VALUE_RE.match(value):
        return MASK
    return _URL_PASSWORD_RE.sub(rf"\1:{MASK}@", value)


def _mask_any(value: Any) -> Any:
    if isinstance(value, str):
        return mask_value(value)
    if isinstance(value, list):
        return [_mask_any(item) for item in value]
    if isinstance(value, dict):
        return {
            k: (MASK if looks_secret_name(str(k)) and isinstance(v, str) else _mask_any(v))
            for k, v in value.items()
        }
    return value


def masked_config(loaded: LoadedConfig) -> dict[str, Any]:
    """The effective config as plain data with secrets masked (for show-config)."""
    data = loaded.config.model_dump(mode="json")
    data["docker_env_vars"] = [
        f"{entry.split('=', 1)[0]}={MASK}" if "=" in entry else entry
        for entry in loaded.config.docker_env_vars
    ]
    data["user_code_deployment_env"] = [
        {
            "name": item.name,
            "value": MASK if looks_secret_name(item.name) else mask_value(item.value),
        }
        for item in loaded.config.user_code_deployment_env
    ]
    data["docker_build_secrets"] = [
        {"id": s.id, **({"env": s.env} if s.env is not None else {"src": s.src})}
        for s in loaded.config.docker_build_secrets
    ]
    skip = {"docker_env_vars", "user_code_deployment_env", "docker_build_secrets"}
    for key, value in data.items():
        if key in skip:
            continue
        if isinstance(value, str) and looks_secret_name(key) and key not in _NON_SECRET_KEYS:
            data[key] = MASK
        else:
            data[key] = _mask_any(value)
    return data


# Keys whose names contain "secret" but hold only names of Kubernetes objects.
_NON_SECRET_KEYS = {"user_code_deployment_env_secrets", "image_pull_secrets"}
