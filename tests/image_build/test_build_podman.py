"""The podman adapter against the real podman and a real local registry."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from dagster_uc.build import BuildRequest, BuildSecret, Podman
from dagster_uc.errors import OperationError, UsageError
from tests.image_build.conftest import Registry
from tests.image_build.helpers_build import read_image_file, saved_image, write_project

pytestmark = pytest.mark.e2e


class Recorder:
    """Collects forwarded output lines and the (masked) command lines podman was run with."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.commands: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.lines)


def _podman(rec: Recorder) -> Podman:
    return Podman(on_command=rec.commands.append)


def test_branch_name_and_env_vars_reach_run_steps(
    tmp_path: Path, base_image: str, image_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    declared = f"declared value {uuid.uuid4().hex}"
    from_env = f"env-{uuid.uuid4().hex}"
    monkeypatch.setenv("UC_FROM_ENV", from_env)
    ctx = write_project(
        tmp_path / "proj",
        f"""FROM {base_image}
ARG BRANCH_NAME
ARG UC_DECLARED
RUN echo "$BRANCH_NAME" > /branch && echo "$UC_DECLARED" > /declared && echo "value is $UC_DECLARED"
RUN echo "$UC_FROM_ENV" > /from_env
ENV BRANCH_NAME=${{BRANCH_NAME}}
""",
    )
    rec = Recorder()
    _podman(rec).build(
        BuildRequest(
            context_dir=str(ctx),
            dockerfile="Dockerfile",
            image=image_name,
            branch_part="feat-my-amazing-feature",
            env_vars=[f"UC_DECLARED={declared}", "UC_FROM_ENV"],
        ),
        on_output=rec.lines.append,
    )
    assert read_image_file(image_name, "/branch").strip() == "feat-my-amazing-feature"
    assert read_image_file(image_name, "/declared").strip() == declared
    assert read_image_file(image_name, "/from_env").strip() == from_env
    env = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{json .Config.Env}}", image_name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "BRANCH_NAME=feat-my-amazing-feature" in env
    assert f"UC_FROM_ENV={from_env}" in env
    assert "STEP" in rec.text
    assert "value is ***" in rec.text
    assert declared not in rec.text and from_env not in rec.text
    assert len(rec.commands) == 1
    assert declared not in rec.commands[0] and from_env not in rec.commands[0]
    assert "--build-arg BRANCH_NAME=feat-my-amazing-feature" in rec.commands[0]


def test_changed_declared_value_is_rebuilt_not_taken_from_cache(
    tmp_path: Path, base_image: str, image_name: str
) -> None:
    ctx = write_project(
        tmp_path / "proj",
        f'FROM {base_image}\nARG UC_VALUE\nRUN echo "$UC_VALUE" > /value\n',
    )
    for value in (f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}"):
        Podman().build(
            BuildRequest(
                str(ctx), "Dockerfile", image_name, "main", env_vars=[f"UC_VALUE={value}"]
            ),
            on_output=lambda _line: None,
        )
        assert read_image_file(image_name, "/value").strip() == value


def test_missing_env_var_is_a_usage_error_before_podman_runs(
    tmp_path: Path, image_name: str
) -> None:
    ctx = write_project(tmp_path / "proj", "FROM scratch\n")
    rec = Recorder()
    with pytest.raises(UsageError, match="UC_SURELY_NOT_SET") as err:
        _podman(rec).build(
            BuildRequest(
                str(ctx),
                "Dockerfile",
                image_name,
                "main",
                env_vars=["OK=fine-value", "UC_SURELY_NOT_SET"],
            ),
            on_output=rec.lines.append,
        )
    assert "fine-value" not in str(err.value)
    assert rec.commands == [] and rec.lines == []


def test_build_secrets_are_usable_but_absent_from_the_image(
    tmp_path: Path,
    base_image: str,
    image_name: str,
    monkeypatch: pytest.MonkeyPatch,
    registry: Registry,
) -> None:
    env_secret = f"envsecret-{uuid.uuid4().hex}"
    file_secret = f"filesecret-{uuid.uuid4().hex}"
    monkeypatch.setenv("UC_TOKEN", env_secret)
    secret_file = tmp_path / "outside" / "netrc"
    secret_file.parent.mkdir()
    secret_file.write_text(file_secret)
    ctx = write_project(
        tmp_path / "proj",
        f"""FROM {base_image}
RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null && wc -c < /run/secrets/tok > /tok_len
RUN --mount=type=secret,id=netrc wc -c < /run/secrets/netrc > /netrc_len && ls /run/secrets
""",
    )
    rec = Recorder()
    _podman(rec).build(
        BuildRequest(
            str(ctx),
            "Dockerfile",
            image_name,
            "main",
            build_secrets=[
                BuildSecret(id="tok", env="UC_TOKEN"),
                BuildSecret(id="netrc", src=str(secret_file)),
            ],
        ),
        on_output=rec.lines.append,
    )
    assert int(read_image_file(image_name, "/tok_len")) == len(env_secret)
    assert int(read_image_file(image_name, "/netrc_len")) == len(file_secret)

    archive = saved_image(image_name)
    inspect = subprocess.run(
        ["podman", "image", "inspect", image_name], check=True, capture_output=True
    ).stdout
    history = subprocess.run(
        ["podman", "history", "--no-trunc", "--format", "{{.CreatedBy}} {{.Comment}}", image_name],
        check=True,
        capture_output=True,
    ).stdout
    for secret in (env_secret, file_secret):
        raw = secret.encode()
        assert raw not in archive
        assert raw not in inspect
        assert raw not in history
        assert secret not in rec.text
        assert secret not in "".join(rec.commands)

    remote = f"{registry.host}/team/secret-test:1"
    subprocess.run(["podman", "tag", image_name, remote], check=True)
    try:
        Podman().push(remote, tls_verify=False, on_output=lambda _line: None)
    finally:
        subprocess.run(["podman", "rmi", remote], capture_output=True, check=False)
    blobs = list((Path(registry.data_dir) / "docker").rglob("data"))
    assert blobs
    for blob in blobs:
        data = blob.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        assert env_secret.encode() not in data and file_secret.encode() not in data


def test_push_to_local_registry(tmp_path: Path, base_image: str, registry: Registry) -> None:
    ctx = write_project(tmp_path / "proj", f"FROM {base_image}\nRUN echo pushed > /marker\n")
    image = f"{registry.host}/team/demo-project--main:1.9.0-0"
    try:
        Podman().build(
            BuildRequest(str(ctx), "Dockerfile", image, "main"), on_output=lambda _l: None
        )
        lines: list[str] = []
        Podman().push(image, tls_verify=False, on_output=lines.append)
    finally:
        subprocess.run(["podman", "rmi", "-f", image], capture_output=True, check=False)
    tags = httpx.get(f"{registry.url}/v2/team/demo-project--main/tags/list", trust_env=False).json()
    assert tags["tags"] == ["1.9.0-0"]


def test_login_with_password_on_stdin_then_push(
    tmp_path: Path, base_image: str, auth_registry: Registry
) -> None:
    assert auth_registry.username and auth_registry.password
    ctx = write_project(tmp_path / "proj", f"FROM {base_image}\nRUN echo auth > /marker\n")
    image = f"{auth_registry.host}/team/authed:1.9.0-0"
    rec = Recorder()
    podman = _podman(rec)
    try:
        podman.build(BuildRequest(str(ctx), "Dockerfile", image, "main"), on_output=lambda _l: None)
        with pytest.raises(OperationError, match=r"podman push of .* failed \(exit \d+\): .+"):
            podman.push(image, tls_verify=False, on_output=lambda _l: None)

        with pytest.raises(OperationError, match=r"podman login to .* failed") as err:
            podman.login(
                auth_registry.host, auth_registry.username, "wrong-password-123", tls_verify=False
            )
        assert "wrong-password-123" not in str(err.value)

        podman.login(
            auth_registry.host, auth_registry.username, auth_registry.password, tls_verify=False
        )
        auth_file = Path(tmp_path / "auth.json").read_text()
        assert auth_registry.host in auth_file
        podman.push(image, tls_verify=False, on_output=lambda _l: None)
    finally:
        subprocess.run(["podman", "rmi", "-f", image], capture_output=True, check=False)
    assert all(auth_registry.password not in c for c in rec.commands)
    assert any("--password-stdin" in c for c in rec.commands)
    response = httpx.get(
        f"{auth_registry.url}/v2/team/authed/tags/list",
        auth=(auth_registry.username, auth_registry.password),
        trust_env=False,
    )
    assert response.json()["tags"] == ["1.9.0-0"]


def test_build_failure_is_one_sentence_after_streamed_output(
    tmp_path: Path, base_image: str, image_name: str
) -> None:
    ctx = write_project(tmp_path / "proj", f"FROM {base_image}\nRUN echo about-to-fail && exit 3\n")
    lines: list[str] = []
    with pytest.raises(OperationError) as err:
        Podman().build(
            BuildRequest(str(ctx), "Dockerfile", image_name, "main"), on_output=lines.append
        )
    assert str(err.value).startswith("podman build failed (exit ")
    assert str(err.value).endswith("; see its output above.")
    assert any("about-to-fail" in line for line in lines)


def test_missing_dockerfile_and_missing_podman_are_usage_errors(tmp_path: Path) -> None:
    ctx = write_project(tmp_path / "proj", "FROM scratch\n")
    with pytest.raises(UsageError, match="does not exist"):
        Podman().build(BuildRequest(str(ctx), "nope/Dockerfile", "localhost/x:1", "main"))
    with pytest.raises(UsageError, match="podman is not installed"):
        Podman(executable="podman-not-installed-here").build(
            BuildRequest(str(ctx), "Dockerfile", "localhost/x:1", "main")
        )
    with pytest.raises(UsageError, match="podman is not installed"):
        Podman(executable="podman-not-installed-here").push("localhost/x:1")


def test_push_to_unreachable_registry_fails_clearly(base_image: str) -> None:
    image = f"127.0.0.1:9/team/never:{uuid.uuid4().hex[:8]}"
    subprocess.run(["podman", "tag", base_image, image], check=True)
    try:
        with pytest.raises(
            OperationError, match=r"podman push of .* failed \(exit \d+\): \S"
        ) as err:
            Podman().push(image, tls_verify=False, on_output=lambda _l: None)
    finally:
        subprocess.run(["podman", "rmi", image], capture_output=True, check=False)
    assert "\n" not in str(err.value)


FAKE_SUDO = """#!{python}
import os, sys
args = sys.argv[1:]
keep = {{"PATH", "HOME"}}
if args and args[0].startswith("--preserve-env="):
    keep |= set(args.pop(0).split("=", 1)[1].split(","))
with open(os.environ["FAKE_SUDO_LOG"], "a") as log:
    log.write(" ".join(sorted(keep)) + "\\n")
env = {{k: v for k, v in os.environ.items() if k in keep}}
os.execvpe(args[0], args, env)
"""


def test_use_sudo_passes_only_the_named_variables_and_they_suffice(
    tmp_path: Path, base_image: str, image_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake sudo that resets the environment like sudo does, except --preserve-env names."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text(FAKE_SUDO.format(python=sys.executable))
    (bin_dir / "sudo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SUDO_LOG", str(tmp_path / "sudo.log"))
    value = f"sudo-{uuid.uuid4().hex}"
    secret = f"sudosecret-{uuid.uuid4().hex}"
    monkeypatch.setenv("UC_SUDO_VAR", value)
    monkeypatch.setenv("UC_SUDO_SECRET", secret)
    monkeypatch.setenv("UC_UNRELATED", "must-not-pass")
    ctx = write_project(
        tmp_path / "proj",
        f"""FROM {base_image}
ARG UC_SUDO_VAR
RUN echo "$UC_SUDO_VAR" > /value
RUN --mount=type=secret,id=s wc -c < /run/secrets/s > /secret_len
""",
    )
    Podman().build(
        BuildRequest(
            str(ctx),
            "Dockerfile",
            image_name,
            "main",
            env_vars=["UC_SUDO_VAR"],
            build_secrets=[BuildSecret(id="s", env="UC_SUDO_SECRET")],
            use_sudo=True,
            extra_env={"BUILDAH_ISOLATION": "chroot"},
        ),
        on_output=lambda _line: None,
    )
    assert read_image_file(image_name, "/value").strip() == value
    assert int(read_image_file(image_name, "/secret_len")) == len(secret)
    kept = (tmp_path / "sudo.log").read_text().split()
    assert sorted(kept) == ["BUILDAH_ISOLATION", "HOME", "PATH", "UC_SUDO_SECRET", "UC_SUDO_VAR"]


def test_use_sudo_without_sudo_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    podman_dir = tmp_path / "only-podman"
    podman_dir.mkdir()
    (podman_dir / "podman").symlink_to(shutil.which("podman") or "/usr/bin/podman")
    monkeypatch.setenv("PATH", str(podman_dir))
    with pytest.raises(UsageError, match="--use-sudo needs sudo"):
        Podman().push("localhost/x:1", use_sudo=True)
