"""Pure parts of the podman and az adapters: argument lists, env resolution, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_uc.azure import acr_name, registry_host
from dagster_uc.build import (
    BuildRequest,
    BuildSecret,
    build_command,
    check_build_secrets,
    display_command,
    login_command,
    mask_command,
    push_command,
    resolve_build_env_vars,
    scrub,
)
from dagster_uc.errors import UsageError


def test_resolve_literal_and_environment_values() -> None:
    env = {"FROM_ENV": "value-from-env", "EMPTY": ""}
    assert resolve_build_env_vars(["A=1", "B=x=y", "FROM_ENV", "EMPTY", "C="], env) == {
        "A": "1",
        "B": "x=y",
        "FROM_ENV": "value-from-env",
        "EMPTY": "",
        "C": "",
    }


def test_resolve_missing_variables_named_all_at_once_without_values() -> None:
    with pytest.raises(UsageError) as err:
        resolve_build_env_vars(["SET=topsecretvalue", "MISSING_ONE", "MISSING_TWO"], {})
    message = str(err.value)
    assert "MISSING_ONE, MISSING_TWO" in message
    assert "topsecretvalue" not in message
    assert err.value.exit_code == 2


@pytest.mark.parametrize("entry", ["1BAD=x", "=x", "WITH SPACE", "A-B=1", ""])
def test_resolve_rejects_invalid_names(entry: str) -> None:
    with pytest.raises(UsageError, match="not a valid environment variable name"):
        resolve_build_env_vars([entry], {})


def _req(**kw: object) -> BuildRequest:
    base: dict[str, object] = {
        "context_dir": "/src/proj",
        "dockerfile": "docker/Dockerfile",
        "image": "reg.example:5000/team/proj--main:1.9.0-3",
        "branch_part": "main",
    }
    base.update(kw)
    return BuildRequest(**base)  # type: ignore[arg-type]


def test_build_command_shape_and_no_values() -> None:
    req = _req(
        env_vars=["TOKEN=abc123secret", "PLAIN"],
        build_secrets=[
            BuildSecret(id="pip", env="PIP_TOKEN"),
            BuildSecret(id="netrc", src="n/.netrc"),
        ],
    )
    cmd = build_command(req, {"TOKEN": "abc123secret", "PLAIN": "plainvalue"})
    assert cmd == [
        "podman",
        "build",
        "-f",
        "/src/proj/docker/Dockerfile",
        "-t",
        "reg.example:5000/team/proj--main:1.9.0-3",
        "--build-arg",
        "BRANCH_NAME=main",
        "--env",
        "TOKEN",
        "--build-arg",
        "TOKEN",
        "--env",
        "PLAIN",
        "--build-arg",
        "PLAIN",
        "--secret",
        "id=pip,env=PIP_TOKEN",
        "--secret",
        "id=netrc,src=/src/proj/n/.netrc",
        "/src/proj",
    ]
    assert not any("abc123secret" in a or "plainvalue" in a for a in cmd)


def test_build_command_absolute_dockerfile_and_insecure_registry() -> None:
    cmd = build_command(_req(dockerfile="/elsewhere/Dockerfile", tls_verify=False), {})
    assert cmd[3] == "/elsewhere/Dockerfile"
    assert "--tls-verify=false" in cmd
    assert cmd[-1] == "/src/proj"


def test_use_sudo_preserves_exactly_the_needed_variables() -> None:
    req = _req(
        use_sudo=True,
        build_secrets=[BuildSecret(id="t", env="TOK")],
        extra_env={"BUILDAH_ISOLATION": "chroot"},
    )
    cmd = build_command(req, {"B": "1", "A": "2"})
    assert cmd[:3] == ["sudo", "--preserve-env=A,B,BUILDAH_ISOLATION,TOK", "podman"]
    assert build_command(_req(use_sudo=True), {})[:2] == ["sudo", "podman"]


def test_push_and_login_commands() -> None:
    assert push_command("r/i:1") == ["podman", "push", "r/i:1"]
    assert push_command("r/i:1", tls_verify=False, use_sudo=True) == [
        "sudo",
        "podman",
        "push",
        "--tls-verify=false",
        "r/i:1",
    ]
    cmd = login_command("reg:5000", "user", tls_verify=False)
    assert cmd == [
        "podman",
        "login",
        "--username",
        "user",
        "--password-stdin",
        "--tls-verify=false",
        "reg:5000",
    ]


def test_mask_command_hides_values_but_not_branch_name() -> None:
    cmd = [
        "podman",
        "build",
        "--build-arg",
        "BRANCH_NAME=feat-x",
        "--build-arg",
        "KEY=hunter22",
        "--env",
        "KEY=hunter22",
        "--env=OTHER=s3cr3tval",
        "--env",
        "NAMEONLY",
        "--password",
        "pw123456",
        "--password=pw123456",
    ]
    masked = mask_command(cmd)
    line = display_command(cmd)
    assert "BRANCH_NAME=feat-x" in masked
    assert "KEY=***" in masked and "--env=OTHER=***" in masked and "NAMEONLY" in masked
    assert "hunter22" not in line and "s3cr3tval" not in line and "pw123456" not in line


def test_scrub_long_and_short_values() -> None:
    text = "Error: bad token abcdef123456 and short 42 in exit 142"
    out = scrub(text, ["abcdef123456", "42", ""])
    assert out == "Error: bad token *** and short *** in exit 142"


def test_check_build_secrets(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("x")
    checked = check_build_secrets(
        [BuildSecret(id="a", env="TOK"), BuildSecret(id="b", src="secret.txt")],
        {"TOK": "v"},
        str(tmp_path),
    )
    assert checked[1].src == str(tmp_path / "secret.txt")
    cases = [
        ([BuildSecret(id="a", env="NOPE")], "NOPE"),
        ([BuildSecret(id="a", src="missing.txt")], "does not exist"),
        ([BuildSecret(id="a")], "exactly one"),
        ([BuildSecret(id="a", env="TOK", src="secret.txt")], "exactly one"),
        ([BuildSecret(id="a b", env="TOK")], "invalid"),
        ([BuildSecret(id="a", env="TOK"), BuildSecret(id="a", env="TOK")], "twice"),
    ]
    for secrets, fragment in cases:
        with pytest.raises(UsageError, match=fragment):
            check_build_secrets(secrets, {"TOK": "v"}, str(tmp_path))


@pytest.mark.parametrize(
    ("registry", "name", "host"),
    [
        ("myreg.azurecr.io", "myreg", "myreg.azurecr.io"),
        ("https://MyReg.azurecr.io/team", "MyReg", "MyReg.azurecr.io"),
        ("localhost:5000", "localhost:5000", "localhost:5000"),
    ],
)
def test_acr_name(registry: str, name: str, host: str) -> None:
    assert acr_name(registry) == name
    assert registry_host(registry) == host
