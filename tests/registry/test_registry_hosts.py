"""Registries configured with a path (``ghcr.io/myorg``) and Docker Hub's names and answers."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dagster_uc.errors import OperationError, UsageError
from dagster_uc.registry import RegistryClient, connect, is_loopback, load_credentials
from stack.registry import LocalRegistry, push_many_tags

# --- a registry with a path ---------------------------------------------------------------


def test_registry_with_a_path_connects_to_the_host(
    plain_registry: LocalRegistry, repo: str
) -> None:
    push_many_tags(plain_registry, f"myorg/{repo}", ["1.8.4-0", "1.8.4-1"])
    with connect(f"{plain_registry.host}/myorg") as client:
        assert client.registry == plain_registry.host
        assert sorted(client.list_tags(f"myorg/{repo}")) == ["1.8.4-0", "1.8.4-1"]
        assert client.base_url == f"http://{plain_registry.host}"
    assert is_loopback(f"{plain_registry.host}/myorg")


def test_registry_paths_and_their_logins(tmp_path: Path) -> None:
    assert RegistryClient("ghcr.io/myorg").base_url == "https://ghcr.io"
    assert RegistryClient("myacr.azurecr.io/team/sub/").base_url == "https://myacr.azurecr.io"
    assert not is_loopback("myacr.azurecr.io/team")
    auth = tmp_path / "auth.json"
    auth.write_text(
        json.dumps({"auths": {"ghcr.io": {"auth": base64.b64encode(b"me:pat").decode()}}})
    )
    creds = load_credentials("ghcr.io/myorg", {"REGISTRY_AUTH_FILE": str(auth), "HOME": "/x"})
    assert creds is not None and creds.username == "me"
    for bad in ("ghcr.io/My Org", "ghcr.io/MyOrg", "/myorg", ""):
        with pytest.raises(UsageError, match=r"host\[:port\]\[/path\]"):
            RegistryClient(bad)


# --- Docker Hub ---------------------------------------------------------------------------


def test_docker_io_talks_to_registry_1_and_reads_the_index_login(tmp_path: Path) -> None:
    assert RegistryClient("docker.io").base_url == "https://registry-1.docker.io"
    assert RegistryClient("docker.io/myuser").base_url == "https://registry-1.docker.io"
    assert RegistryClient("index.docker.io").base_url == "https://registry-1.docker.io"
    docker_config = tmp_path / "docker"
    docker_config.mkdir()
    (docker_config / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"me:pw").decode()}
                }
            }
        )
    )
    env = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(docker_config)}
    creds = load_credentials("docker.io", env)
    assert creds is not None and (creds.username, creds.password) == ("me", "pw")
    assert load_credentials("docker.io/myuser", env) == creds
    # podman writes the key "docker.io"
    podman_file = tmp_path / "podman-auth.json"
    podman_file.write_text(
        json.dumps({"auths": {"docker.io": {"auth": base64.b64encode(b"pod:pw2").decode()}}})
    )
    podman = load_credentials(
        "docker.io", {"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": str(podman_file)}
    )
    assert podman is not None and podman.username == "pod"


class DockerHubReplay:
    """Replays Docker Hub's answers for a repository that was never pushed.

    The exchange follows Docker Hub's documented token flow (the realm and service are Docker
    Hub's, pointed at this server): the anonymous request is challenged with the repository's
    pull scope; the token service hands out a token to the login; with it, the registry answers
    401 ``insufficient_scope`` because the repository does not exist yet.
    """

    def __init__(self) -> None:
        self.log: list[tuple[str, str, str]] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(
                self, status: int, body: dict[str, object], headers: dict[str, str]
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def do_GET(self) -> None:
                split = urllib.parse.urlsplit(self.path)
                auth = self.headers.get("Authorization", "").split(" ")[0]
                replay.log.append((self.command, split.path, auth))
                realm = f"http://{replay.host}/token"
                if split.path == "/token":
                    query = urllib.parse.parse_qs(split.query)
                    assert query["service"] == ["registry.docker.io"]
                    self._answer(
                        200,
                        {
                            "token": "hub-token",
                            "access_token": "hub-token",
                            "expires_in": 300,
                            "issued_at": "2026-12-03T08:00:00.000000000Z",
                        },
                        {},
                    )
                    return
                name = (
                    split.path.removeprefix("/v2/").rpartition("/tags/list")[0]
                    or (split.path.removeprefix("/v2/").rpartition("/manifests/")[0])
                )
                challenge = (
                    f'Bearer realm="{realm}",service="registry.docker.io",'
                    f'scope="repository:{name}:pull"'
                )
                if auth == "Bearer":
                    challenge += ',error="insufficient_scope"'
                self._answer(
                    401,
                    {
                        "errors": [
                            {
                                "code": "UNAUTHORIZED",
                                "message": "authentication required",
                                "detail": [
                                    {
                                        "Type": "repository",
                                        "Class": "",
                                        "Name": name,
                                        "Action": "pull",
                                    }
                                ],
                            }
                        ]
                    },
                    {
                        "WWW-Authenticate": challenge,
                        "Docker-Distribution-Api-Version": "registry/2.0",
                    },
                )

            do_HEAD = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def hub() -> Iterator[DockerHubReplay]:
    replay = DockerHubReplay()
    yield replay
    replay.close()


def test_insufficient_scope_for_a_repository_never_pushed_means_no_tags(
    hub: DockerHubReplay, tmp_path: Path
) -> None:
    auth = tmp_path / "auth.json"
    auth.write_text(
        json.dumps({"auths": {hub.host: {"auth": base64.b64encode(b"me:pw").decode()}}})
    )
    with connect(hub.host, env={"REGISTRY_AUTH_FILE": str(auth), "HOME": str(tmp_path)}) as client:
        assert client.list_tags("myuser/never-pushed") == []
        assert client.tag_exists("myuser/never-pushed", "1.8.4-0") is False
    assert ("GET", "/token", "Basic") in hub.log
    assert ("GET", "/v2/myuser/never-pushed/tags/list", "Bearer") in hub.log


def test_insufficient_scope_without_a_login_says_log_in(hub: DockerHubReplay) -> None:
    with (
        RegistryClient(hub.host) as client,
        pytest.raises(OperationError, match=f"log in with `podman login {hub.host}`"),
    ):
        client.list_tags("myuser/never-pushed")
