"""Registry logins from the files podman and docker write (``podman login``, ``docker login``)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster_uc.errors import ConfigError
from dagster_uc.registry.names import parse_registry


@dataclass(frozen=True)
class Credentials:
    """Login for one registry. The password never appears in repr or logs."""

    username: str
    password: str = field(repr=False)
    identity_token: str | None = field(default=None, repr=False)
    source: str | None = None


def auth_file_candidates(
    env: Mapping[str, str] | None = None, home: Path | None = None
) -> list[Path]:
    """The credential files podman and docker read, in the order dagster-uc searches them."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    paths: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        paths.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    elif hasattr(os, "getuid"):
        paths.append(Path(f"/run/containers/{os.getuid()}/auth.json"))
    paths.append(home / ".config" / "containers" / "auth.json")
    docker_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    paths.append(docker_dir / "config.json")
    return paths


def _normalize_auth_key(key: str) -> str:
    key = key.strip()
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    key = key.rstrip("/")
    for suffix in ("/v1", "/v2"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    return key


def _entry_credentials(entry: Any, path: Path, key: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    identity = entry.get("identitytoken") or None
    username = entry.get("username")
    password = entry.get("password")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=False).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise ConfigError(
                f'credentials file {path} has an invalid "auth" value for {key}: '
                f"log in again with `podman login {key}`."
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise ConfigError(
                f'credentials file {path} has an "auth" value for {key} without a colon: '
                f"log in again with `podman login {key}`."
            )
    if identity and not username:
        username = "<token>"
    if not username and not identity:
        return None
    return Credentials(
        username=str(username),
        password=str(password or ""),
        identity_token=str(identity) if identity else None,
        source=str(path),
    )


def _read_auths(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read credentials file {path}: {exc.strerror}.") from None
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"credentials file {path} is not valid JSON (line {exc.lineno}): fix or remove it."
        ) from None
    auths = data.get("auths") if isinstance(data, dict) else None
    return auths if isinstance(auths, dict) else None


def _match_score(key: str, hosts: tuple[str, ...], repository: str | None) -> int | None:
    """0 for the bare host, the namespace length for a matching ``host/namespace`` key."""
    norm = _normalize_auth_key(key)
    for host in hosts:
        if norm == host:
            return 0
        if repository and norm.startswith(host + "/"):
            namespace = norm[len(host) + 1 :]
            if repository == namespace or repository.startswith(namespace + "/"):
                return len(namespace)
    return None


def load_credentials(
    registry: str,
    env: Mapping[str, str] | None = None,
    *,
    repository: str | None = None,
    home: Path | None = None,
) -> Credentials | None:
    """Credentials for ``registry`` from the first file that has an entry for it.

    Files are searched in the order of :func:`auth_file_candidates`. Keys may carry an
    ``https://`` prefix or a ``/v1/`` suffix (docker; Docker Hub's key is
    ``https://index.docker.io/v1/``); a key scoped to a repository namespace (``host/team``)
    wins over the bare host within the same file when it matches ``repository``. An
    ``identitytoken`` (Azure Container Registry) is used as an OAuth2 refresh token.
    """
    address = parse_registry(registry)
    hosts = address.credential_hosts
    for path in auth_file_candidates(env, home):
        auths = _read_auths(path)
        if not auths:
            continue
        best: tuple[int, Any] | None = None
        for key, entry in auths.items():
            score = _match_score(str(key), hosts, repository)
            if score is not None and (best is None or score > best[0]):
                best = (score, entry)
        if best is not None:
            creds = _entry_credentials(best[1], path, address.host)
            if creds is not None:
                return creds
    return None
