"""Thin adapter over podman: build, push and login, always with argument lists.

How ``docker_env_vars`` reach the build (compatible with the original dagster-uc, which passed
each entry as ``podman build --env``): every entry becomes ``--env NAME`` *and*
``--build-arg NAME``, and the value travels in the podman process's environment, never on its
command line (so it is not visible in ``ps`` output nor in any command line we print).

* ``--env NAME`` is what the original tool did: the variable is set in the image's config and
  in the environment of RUN steps. Podman/buildah 4.x apply it only from the second executed
  step on and do not key the layer cache on its value.
* ``--build-arg NAME`` fixes both when the Dockerfile declares ``ARG NAME``: the value is then
  visible in every RUN step after the ``ARG`` line and a changed value rebuilds those steps.

``docker_build_secrets`` become ``--secret id=<id>,env=<VAR>`` or ``--secret id=<id>,src=<file>``:
the value is mounted at ``/run/secrets/<id>`` only for ``RUN --mount=type=secret,id=<id>`` steps
and never lands in a layer, the image config or its history.

``--use-sudo`` runs ``sudo --preserve-env=<names> podman ...``: sudo resets the environment, so
the names of the variables podman must read (docker_env_vars, env secrets, ``extra_env``) are
listed explicitly; nothing else from the caller's environment is passed through (no ``sudo -E``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from dagster_uc.config_masking import MASK
from dagster_uc.errors import OperationError, UsageError

OutputCallback = Callable[[str], None]

PODMAN = "podman"
SUDO = "sudo"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_ASSIGNMENT_FLAGS = frozenset({"--env", "-e", "--build-arg"})
_PASSWORD_FLAGS = frozenset({"--password", "-p"})
_UNMASKED_BUILD_ARGS = frozenset({"BRANCH_NAME"})
_SHORT_SECRET = 6


@dataclass(frozen=True)
class BuildSecret:
    """One ``docker_build_secrets`` entry: the value comes from env var ``env`` or file ``src``."""

    id: str
    env: str | None = None
    src: str | None = None


@dataclass
class BuildRequest:
    """Everything ``podman build`` needs; paths relative to ``context_dir`` are resolved there."""

    context_dir: str
    dockerfile: str
    image: str
    branch_part: str
    env_vars: list[str] = field(default_factory=list)
    build_secrets: list[BuildSecret] = field(default_factory=list)
    use_sudo: bool = False
    tls_verify: bool = True
    extra_env: Mapping[str, str] | None = None


def parse_env_var_entry(entry: str) -> tuple[str, str | None]:
    """``VAR=value`` -> (VAR, value); ``VAR`` -> (VAR, None). The name must be a valid variable name."""
    name, sep, value = entry.partition("=")
    if not _NAME_RE.match(name):
        raise UsageError(
            f"docker_env_vars entry {name!r} is not a valid environment variable name; "
            "use VAR=value or VAR (letters, digits and underscores, not starting with a digit)."
        )
    return name, (value if sep else None)


def resolve_build_env_vars(entries: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """Values of the ``docker_env_vars`` entries; ``VAR`` alone takes its value from ``environ``.

    All missing variables are reported at once, by name only.
    """
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for entry in entries:
        name, value = parse_env_var_entry(entry)
        if value is None:
            if name not in environ:
                missing.append(name)
                continue
            value = environ[name]
        resolved[name] = value
    if missing:
        names = ", ".join(missing)
        raise UsageError(
            f"docker_env_vars needs {names} from your environment but it is not set; "
            f"export it or write it as {missing[0]}=value in the config."
        )
    return resolved


def _resolve_path(base_dir: str, path: str) -> str:
    return os.path.abspath(os.path.join(base_dir, os.path.expanduser(path)))


def check_build_secrets(
    secrets: Sequence[BuildSecret], environ: Mapping[str, str], base_dir: str
) -> list[BuildSecret]:
    """Validate ``docker_build_secrets`` before podman runs; ``src`` paths become absolute."""
    checked: list[BuildSecret] = []
    seen: set[str] = set()
    for secret in secrets:
        if not _SECRET_ID_RE.match(secret.id or ""):
            raise UsageError(
                f"docker_build_secrets id {secret.id!r} is invalid; use letters, digits, '.', '_' or '-'."
            )
        if secret.id in seen:
            raise UsageError(
                f"docker_build_secrets has the id {secret.id!r} twice; ids must be unique."
            )
        seen.add(secret.id)
        if (secret.env is None) == (secret.src is None):
            raise UsageError(
                f"docker_build_secrets entry {secret.id!r} needs exactly one of 'env' or 'src'."
            )
        if secret.env is not None:
            if not _NAME_RE.match(secret.env):
                raise UsageError(
                    f"docker_build_secrets entry {secret.id!r}: {secret.env!r} is not a valid environment variable name."
                )
            if secret.env not in environ:
                raise UsageError(
                    f"docker_build_secrets entry {secret.id!r} reads {secret.env} from your environment "
                    "but it is not set; export it and try again."
                )
            checked.append(secret)
        else:
            assert secret.src is not None
            path = _resolve_path(base_dir, secret.src)
            if not os.path.isfile(path):
                raise UsageError(
                    f"docker_build_secrets entry {secret.id!r}: the file {path} does not exist."
                )
            checked.append(BuildSecret(id=secret.id, src=path))
    return checked


def _sudo_prefix(use_sudo: bool, preserve: Iterable[str]) -> list[str]:
    if not use_sudo:
        return []
    names = sorted(set(preserve))
    return [SUDO, f"--preserve-env={','.join(names)}"] if names else [SUDO]


def _tls_args(tls_verify: bool) -> list[str]:
    return [] if tls_verify else ["--tls-verify=false"]


def build_command(req: BuildRequest, resolved_env: Mapping[str, str]) -> list[str]:
    """The ``podman build`` argument list. Holds variable *names* only, never their values."""
    context = os.path.abspath(req.context_dir)
    cmd = [
        PODMAN,
        "build",
        "-f",
        _resolve_path(context, req.dockerfile),
        "-t",
        req.image,
        "--build-arg",
        f"BRANCH_NAME={req.branch_part}",
    ]
    for name in resolved_env:
        cmd += ["--env", name, "--build-arg", name]
    for secret in req.build_secrets:
        if secret.env is not None:
            cmd += ["--secret", f"id={secret.id},env={secret.env}"]
        else:
            cmd += ["--secret", f"id={secret.id},src={_resolve_path(context, secret.src or '')}"]
    cmd += _tls_args(req.tls_verify)
    cmd.append(context)
    preserve = [*resolved_env, *(s.env for s in req.build_secrets if s.env), *(req.extra_env or {})]
    return _sudo_prefix(req.use_sudo, preserve) + cmd


def push_command(
    image: str, tls_verify: bool = True, use_sudo: bool = False, preserve_env: Iterable[str] = ()
) -> list[str]:
    """The ``podman push`` argument list."""
    return [*_sudo_prefix(use_sudo, preserve_env), PODMAN, "push", *_tls_args(tls_verify), image]


def login_command(
    registry: str,
    username: str,
    tls_verify: bool = True,
    use_sudo: bool = False,
    preserve_env: Iterable[str] = (),
) -> list[str]:
    """The ``podman login`` argument list; the password is read from stdin."""
    return [
        *_sudo_prefix(use_sudo, preserve_env),
        PODMAN,
        "login",
        "--username",
        username,
        "--password-stdin",
        *_tls_args(tls_verify),
        registry,
    ]


def _mask_assignment(assignment: str) -> str:
    name, eq, _value = assignment.partition("=")
    return f"{name}={MASK}" if eq and name not in _UNMASKED_BUILD_ARGS else assignment


def mask_command(cmd: Sequence[str]) -> list[str]:
    """A copy of ``cmd`` safe to print: values after ``--env``/``--build-arg``/``--password`` masked."""
    masked: list[str] = []
    previous = ""
    for arg in cmd:
        flag, eq, rest = arg.partition("=")
        if previous in _PASSWORD_FLAGS:
            out = MASK
        elif previous in _ASSIGNMENT_FLAGS:
            out = _mask_assignment(arg)
        elif eq and flag in _PASSWORD_FLAGS:
            out = f"{flag}={MASK}"
        elif eq and flag in _ASSIGNMENT_FLAGS:
            out = f"{flag}={_mask_assignment(rest)}"
        else:
            out = arg
        masked.append(out)
        previous = arg
    return masked


def display_command(cmd: Sequence[str]) -> str:
    """The masked command as one shell-quoted line, for logs."""
    return shlex.join(mask_command(cmd))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***``.

    Values shorter than 6 characters are replaced only as whole words, so that a value such
    as ``1`` does not garble the rest of the message.
    """
    for value in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(value) >= _SHORT_SECRET:
            text = text.replace(value, MASK)
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", MASK, text)
    return text


def _error_line(lines: Sequence[str]) -> str:
    """podman's own error: the last line starting with ``Error``, else the last non-empty line."""
    stripped = [line.strip() for line in lines if line.strip()]
    for line in reversed(stripped):
        if line.lower().startswith("error"):
            return line
    return stripped[-1] if stripped else ""


def _write_stdout(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


@dataclass
class _RunResult:
    returncode: int
    tail: list[str]


class Podman:
    """Runs podman (optionally under sudo) and forwards its output line by line.

    ``extra_env`` is added to the environment of every podman process (for example
    ``REGISTRY_AUTH_FILE`` or ``CONTAINERS_STORAGE_CONF``).
    """

    def __init__(
        self,
        executable: str = PODMAN,
        extra_env: Mapping[str, str] | None = None,
        on_command: OutputCallback | None = None,
    ) -> None:
        self.executable = executable
        self.extra_env = dict(extra_env or {})
        self.on_command = on_command

    def _argv(self, cmd: list[str], use_sudo: bool) -> list[str]:
        """Swap ``podman`` for the configured executable and check the programs exist."""
        index = cmd.index(PODMAN)
        if use_sudo and shutil.which(SUDO) is None:
            raise UsageError(
                "--use-sudo needs sudo, but sudo is not installed; install it or drop --use-sudo."
            )
        if shutil.which(self.executable) is None:
            raise UsageError(
                "podman is not installed (or not on PATH); install podman 4 or later "
                "(https://podman.io/docs/installation) and try again."
            )
        return [*cmd[:index], self.executable, *cmd[index + 1 :]]

    def _env(self, *layers: Mapping[str, str] | None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        for layer in layers:
            env.update(layer or {})
        return env

    def _run(
        self,
        argv: list[str],
        env: Mapping[str, str],
        secrets: Sequence[str],
        on_output: OutputCallback | None,
        stdin_text: str | None = None,
    ) -> _RunResult:
        """Run ``argv``, forward each scrubbed output line to ``on_output`` and keep the tail."""
        if self.on_command is not None:
            self.on_command(display_command(argv))
        forward = on_output or _write_stdout
        tail: list[str] = []
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            text=True,
            errors="replace",
            bufsize=1,
        )
        try:
            if stdin_text is not None:
                assert proc.stdin is not None
                proc.stdin.write(stdin_text)
                proc.stdin.close()
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = scrub(raw, secrets)
                tail = [*tail[-19:], line]
                forward(line)
            returncode = proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
        return _RunResult(returncode, tail)

    def build(self, req: BuildRequest, on_output: OutputCallback | None = None) -> None:
        """``podman build``; output streams to ``on_output`` (default: stdout) as it comes."""
        environ = self._env(req.extra_env)
        resolved = resolve_build_env_vars(req.env_vars, environ)
        context = os.path.abspath(req.context_dir)
        if not os.path.isdir(context):
            raise UsageError(
                f"repository_root {context} is not a directory; fix repository_root in the config."
            )
        dockerfile = _resolve_path(context, req.dockerfile)
        if not os.path.isfile(dockerfile):
            raise UsageError(
                f"The Dockerfile {dockerfile} does not exist; set dockerfile (relative to repository_root) in the config."
            )
        secrets = check_build_secrets(req.build_secrets, environ, context)
        checked = replace(
            req, build_secrets=secrets, extra_env={**self.extra_env, **(req.extra_env or {})}
        )
        argv = self._argv(build_command(checked, resolved), req.use_sudo)
        secret_values = [*resolved.values(), *(environ[s.env] for s in secrets if s.env)]
        result = self._run(argv, {**environ, **resolved}, secret_values, on_output)
        if result.returncode != 0:
            raise OperationError(
                f"podman build failed (exit {result.returncode}); see its output above."
            )

    def push(
        self,
        image: str,
        tls_verify: bool = True,
        use_sudo: bool = False,
        on_output: OutputCallback | None = None,
    ) -> None:
        """``podman push`` of a local image to its registry."""
        argv = self._argv(push_command(image, tls_verify, use_sudo, self.extra_env), use_sudo)
        result = self._run(argv, self._env(), [], on_output)
        if result.returncode != 0:
            raise OperationError(
                f"podman push of {image} failed (exit {result.returncode}): {_error_line(result.tail)}"
            )

    def login(
        self,
        registry: str,
        username: str,
        password: str,
        tls_verify: bool = True,
        use_sudo: bool = False,
        on_output: OutputCallback | None = None,
    ) -> None:
        """``podman login`` with the password on stdin (never on the command line)."""
        argv = self._argv(
            login_command(registry, username, tls_verify, use_sudo, self.extra_env), use_sudo
        )
        result = self._run(
            argv,
            self._env(),
            [password],
            on_output or (lambda _line: None),
            stdin_text=password + "\n",
        )
        if result.returncode != 0:
            raise OperationError(
                f"podman login to {registry} failed (exit {result.returncode}): "
                f"{scrub(_error_line(result.tail), [password])}"
            )
