"""Authentication against the real docker-registry: auth files, Basic, Bearer tokens."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from dagster_uc.errors import ConfigError, OperationError
from dagster_uc.registry import (
    Credentials,
    RegistryClient,
    auth_file_candidates,
    connect,
    load_credentials,
)
from stack.registry import LocalRegistry, push_many_tags


def auth_json(entries: dict[str, dict[str, str]]) -> str:
    return json.dumps({"auths": entries})


def entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path / "run")}


def locations(env: dict[str, str], tmp_path: Path) -> dict[str, Path]:
    home = Path(env["HOME"])
    return {
        "REGISTRY_AUTH_FILE": tmp_path / "custom" / "auth.json",
        "XDG_RUNTIME_DIR": Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json",
        "config": home / ".config" / "containers" / "auth.json",
        "docker": home / ".docker" / "config.json",
    }


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_candidate_order(env: dict[str, str], tmp_path: Path) -> None:
    env["REGISTRY_AUTH_FILE"] = str(tmp_path / "custom" / "auth.json")
    assert auth_file_candidates(env) == list(locations(env, tmp_path).values())
    env["DOCKER_CONFIG"] = str(tmp_path / "dockercfg")
    assert auth_file_candidates(env)[-1] == tmp_path / "dockercfg" / "config.json"


def test_anonymous_access_to_protected_registry_says_log_in(
    basic_registry: LocalRegistry, repo: str
) -> None:
    with RegistryClient(basic_registry.host) as client, pytest.raises(OperationError) as info:
        client.list_tags(repo)
    assert str(info.value) == (
        f"registry {basic_registry.host} refused access to repository {repo} (HTTP 401): "
        f"log in with `podman login {basic_registry.host}`."
    )


@pytest.mark.parametrize("where", ["REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "config", "docker"])
def test_basic_auth_from_each_file(
    basic_registry: LocalRegistry, repo: str, env: dict[str, str], tmp_path: Path, where: str
) -> None:
    push_many_tags(basic_registry, repo, ["1.0.0-0", "1.0.0-1"])
    path = locations(env, tmp_path)[where]
    if where == "REGISTRY_AUTH_FILE":
        env["REGISTRY_AUTH_FILE"] = str(path)
    key = f"https://{basic_registry.host}" if where == "docker" else basic_registry.host
    write(
        path, auth_json({key: entry(basic_registry.username or "", basic_registry.password or "")})
    )
    creds = load_credentials(basic_registry.host, env)
    assert creds is not None and creds.source == str(path)
    with RegistryClient(basic_registry.host, credentials=creds) as client:
        assert sorted(client.list_tags(repo)) == ["1.0.0-0", "1.0.0-1"]
        assert client.tag_exists(repo, "1.0.0-1")
    with connect(basic_registry.host, env=env) as client:
        assert client.tag_exists(repo, "1.0.0-0")


def test_first_file_with_an_entry_wins(
    basic_registry: LocalRegistry, repo: str, env: dict[str, str], tmp_path: Path
) -> None:
    paths = locations(env, tmp_path)
    env["REGISTRY_AUTH_FILE"] = str(paths["REGISTRY_AUTH_FILE"])
    good = entry(basic_registry.username or "", basic_registry.password or "")
    # the first file has entries for other registries only: skipped
    write(paths["REGISTRY_AUTH_FILE"], auth_json({"other.example.com": entry("a", "b")}))
    write(paths["XDG_RUNTIME_DIR"], auth_json({basic_registry.host: good}))
    write(paths["config"], auth_json({basic_registry.host: entry("tester", "wrong")}))
    write(paths["docker"], "{ not json")  # never read: an earlier file matched
    creds = load_credentials(basic_registry.host, env)
    assert creds is not None and creds.source == str(paths["XDG_RUNTIME_DIR"])
    with RegistryClient(basic_registry.host, credentials=creds) as client:
        assert client.list_tags(repo) == []

    write(paths["XDG_RUNTIME_DIR"], auth_json({}))
    creds = load_credentials(basic_registry.host, env)
    assert creds is not None and creds.source == str(paths["config"])


def test_wrong_password_is_a_clear_error(
    basic_registry: LocalRegistry, repo: str, env: dict[str, str], tmp_path: Path
) -> None:
    path = locations(env, tmp_path)["config"]
    write(path, auth_json({basic_registry.host: entry("tester", "s3cret-wrong")}))
    with connect(basic_registry.host, env=env) as client, pytest.raises(OperationError) as info:
        client.list_tags(repo)
    message = str(info.value)
    assert message == (
        f"registry {basic_registry.host} refused access to repository {repo} with the "
        f"credentials from {path} (HTTP 401): log in again with `podman login {basic_registry.host}`."
    )
    assert "s3cret" not in message


def test_broken_auth_file_is_a_config_error(env: dict[str, str], tmp_path: Path) -> None:
    path = locations(env, tmp_path)["config"]
    write(path, "{ not json")
    with pytest.raises(ConfigError, match=r"is not valid JSON"):
        load_credentials("registry.example.com", env)
    write(
        path, auth_json({"registry.example.com": {"auth": base64.b64encode(b"nocolon").decode()}})
    )
    with pytest.raises(ConfigError, match="without a colon"):
        load_credentials("registry.example.com", env)


def test_repository_scoped_entry_wins(env: dict[str, str], tmp_path: Path) -> None:
    path = locations(env, tmp_path)["config"]
    write(
        path,
        auth_json(
            {
                "reg.example.com": entry("host-user", "p1"),
                "reg.example.com/team": entry("team-user", "p2"),
                "reg.example.com/other": entry("other-user", "p3"),
            }
        ),
    )
    host = load_credentials("reg.example.com", env, repository="x/app")
    team = load_credentials("reg.example.com", env, repository="team/app")
    assert host is not None and host.username == "host-user"
    assert team is not None and team.username == "team-user"
    assert load_credentials("reg2.example.com", env) is None


def test_credentials_repr_hides_secrets() -> None:
    creds = Credentials("me", "hunter2", identity_token="tok-xyz", source="/x/auth.json")
    assert "hunter2" not in repr(creds) and "tok-xyz" not in repr(creds)
    assert "me" in repr(creds)


def test_bearer_token_flow(token_registry: LocalRegistry, repo: str) -> None:
    assert token_registry.token_server is not None
    digests = push_many_tags(token_registry, repo, ["1.0.0-0", "1.0.0-1"], distinct_digests=True)
    creds = Credentials(token_registry.username or "", token_registry.password or "")
    with RegistryClient(token_registry.host, credentials=creds) as client:
        before = len(token_registry.token_server.requests)
        assert sorted(client.list_tags(repo)) == ["1.0.0-0", "1.0.0-1"]
        assert client.tag_exists(repo, "1.0.0-1")
        assert client.manifest_digest(repo, "1.0.0-0") == digests["1.0.0-0"]
        assert client.list_tags(repo) != []
        # one token for the pull scope, reused for every read
        assert len(token_registry.token_server.requests) == before + 1
        assert token_registry.token_server.requests[-1]["scope"] == [f"repository:{repo}:pull"]
        assert client.delete_manifest(repo, digests["1.0.0-0"])
        assert len(token_registry.token_server.requests) == before + 2
        assert client.list_tags(repo) == ["1.0.0-1"]
        assert repo in client.catalog("team")


def test_bearer_token_with_identity_token(token_registry: LocalRegistry, repo: str) -> None:
    assert token_registry.identity_token is not None
    push_many_tags(token_registry, repo, ["1.0.0-0"])
    creds = Credentials("<token>", "", identity_token=token_registry.identity_token)
    with RegistryClient(token_registry.host, credentials=creds) as client:
        assert client.list_tags(repo) == ["1.0.0-0"]
    assert token_registry.token_server is not None
    assert token_registry.token_server.requests[-1]["method"] == "POST"


def test_bearer_token_refused(token_registry: LocalRegistry, repo: str) -> None:
    push_many_tags(token_registry, repo, ["1.0.0-0"])
    with (
        RegistryClient(token_registry.host) as client,
        pytest.raises(
            OperationError, match=r"refused access to repository .* \(HTTP 401\): log in with"
        ),
    ):
        client.list_tags(repo)
    wrong = Credentials(token_registry.username or "", "wrong", source="/tmp/a.json")
    with (
        RegistryClient(token_registry.host, credentials=wrong) as client,
        pytest.raises(OperationError) as info,
    ):
        client.list_tags(repo)
    assert str(info.value) == (
        f"registry {token_registry.host} refused access to repository {repo} with the "
        f"credentials from /tmp/a.json (HTTP 401): log in again with `podman login {token_registry.host}`."
    )
