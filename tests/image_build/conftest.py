"""Fixtures for the podman/az adapter tests: base image, local registries, image helpers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stack.podman import ensure_base_image

REGISTRY_BIN = "/usr/bin/docker-registry"


@pytest.fixture(autouse=True)
def podman_test_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Chroot isolation for builds here; a private auth file so logins never touch the user's."""
    monkeypatch.setenv("BUILDAH_ISOLATION", "chroot")
    auth_file = tmp_path / "auth.json"
    auth_file.write_text('{"auths": {}}')
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))


@pytest.fixture(scope="session")
def base_image() -> str:
    return ensure_base_image()


@pytest.fixture
def image_name() -> Iterator[str]:
    """A unique local image name; the image is removed afterwards."""
    name = f"localhost/dagster-uc-build-test-{uuid.uuid4().hex[:12]}:1"
    yield name
    subprocess.run(["podman", "rmi", "-f", name], capture_output=True, check=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Registry:
    host: str
    data_dir: str
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def _registry_env() -> dict[str, str]:
    """docker-registry reads REGISTRY_* variables as config overrides (REGISTRY_AUTH_FILE!)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


def _start_registry(root: Path, htpasswd: Path | None) -> tuple[subprocess.Popen[bytes], str]:
    for _attempt in range(5):
        port = _free_port()
        config = {
            "version": 0.1,
            "log": {"level": "error"},
            "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
            "http": {"addr": f"127.0.0.1:{port}"},
        }
        if htpasswd is not None:
            config["auth"] = {"htpasswd": {"realm": "dagster-uc-test", "path": str(htpasswd)}}
        config_path = root / "config.yml"
        config_path.write_text(json.dumps(config))
        proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_registry_env(),
        )
        for _ in range(200):
            if proc.poll() is not None:
                break
            try:
                httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1, trust_env=False)
                return proc, f"127.0.0.1:{port}"
            except httpx.HTTPError:
                time.sleep(0.05)
        proc.kill()
        proc.wait()
    raise RuntimeError("could not start docker-registry")


@contextmanager
def running_registry(root: Path, credentials: tuple[str, str] | None = None) -> Iterator[Registry]:
    """A docker-registry on a free loopback port (plain HTTP), htpasswd auth when ``credentials``."""
    root.mkdir(parents=True, exist_ok=True)
    htpasswd = None
    if credentials is not None:
        line = subprocess.run(
            ["htpasswd", "-Bbn", *credentials], check=True, capture_output=True, text=True
        ).stdout.strip()
        htpasswd = root / "htpasswd"
        htpasswd.write_text(line + "\n")
    proc, host = _start_registry(root, htpasswd)
    try:
        user, password = credentials or (None, None)
        yield Registry(host, str(root / "data"), user, password)
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A plain-HTTP loopback registry without authentication."""
    with running_registry(tmp_path / "registry") as reg:
        yield reg


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[Registry]:
    """A plain-HTTP loopback registry with htpasswd basic authentication."""
    with running_registry(tmp_path / "auth-registry", ("uc-user", f"pw-{uuid.uuid4().hex}")) as reg:
        yield reg
