"""Thin adapter over the `helm` binary (Helm 3 and Helm 4).

Every call is an argument list (never a shell string). Helm's own error text is kept and put
in an `OperationError`; values documents go through a private temp file (mode 0600), never on
the command line. `KUBECONFIG` and the `HELM_*` variables are inherited from the environment.

Flags used, all present in both Helm 3.17 and Helm 4.1: `upgrade --install`, `-n`,
`--kube-context`, `--kubeconfig`, `--values`, `--version`, `--repo`, `--plain-http`,
`--disable-openapi-validation`, `--skip-schema-validation`, `--timeout`, `-o json`,
`history -o json --max`, `rollback`, `uninstall --ignore-not-found`,
`registry login --password-stdin`, `pull --untar --untardir`. Differences handled per major
version:

- `--wait`: a boolean in Helm 3; a strategy in Helm 4 (`--wait=watcher`).
- `registry login` to a plain-HTTP registry: `--plain-http` exists only in Helm 4; Helm 3
  gets `--insecure`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from dagster_uc import output
from dagster_uc.errors import OperationError, UsageError, permission_note
from dagster_uc.helm_schema import (
    drop_external_refs,
    is_schema_fetch_failure,
    skipped_schema_warning,
)

#: Release statuses meaning an earlier Helm run was interrupted and the release is locked.
PENDING_STATUSES = frozenset({"pending-install", "pending-upgrade", "pending-rollback"})
#: Extra seconds the subprocess gets beyond Helm's own `--timeout`.
_GRACE_S = 60
_DEFAULT_TIMEOUT_S = 300
#: Seconds Helm gets to record a cancelled operation after Ctrl-C.
_INTERRUPT_GRACE_S = 15


class ChartConfig(Protocol):
    """The config keys `chart_source` reads (satisfied by `dagster_uc.config.Config`)."""

    helm_chart_path: str | None
    container_registry_chart_path: str | None
    container_registry: str
    container_registry_insecure: bool
    helm_chart_repository: str
    helm_chart_name: str
    dagster_version: str
    use_latest_chart_version: bool


class HelmConfig(Protocol):
    """The config keys `HelmOptions.from_config` reads."""

    kubernetes_context: str
    namespace: str
    helm_disable_openapi_validation: bool
    helm_skip_schema_validation: bool


@dataclass(frozen=True)
class ChartSource:
    """Where the chart comes from: `ref` is what follows the release name on the command line."""

    ref: str
    version: str | None = None
    repo_url: str | None = None
    plain_http: bool = False

    @property
    def is_local(self) -> bool:
        return self.repo_url is None and not self.ref.startswith("oci://")

    def describe(self) -> str:
        """One line for plans and progress output."""
        where = f"{self.ref} from {self.repo_url}" if self.repo_url else self.ref
        return f"{where} version {self.version}" if self.version else where


def is_loopback_host(registry: str) -> bool:
    """True for `localhost[:port]`, `127.x.x.x[:port]`, `[::1][:port]` (with an optional path)."""
    host = registry.split("/", 1)[0]
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def chart_source(config: ChartConfig) -> ChartSource:
    """The chart to install: a local path wins, then the OCI path in the registry, then the repo."""
    version = None if config.use_latest_chart_version else config.dagster_version
    if config.helm_chart_path:
        return ChartSource(ref=os.path.expanduser(config.helm_chart_path))
    if config.container_registry_chart_path:
        registry = config.container_registry.rstrip("/")
        path = config.container_registry_chart_path.strip("/")
        plain = config.container_registry_insecure or is_loopback_host(registry)
        return ChartSource(ref=f"oci://{registry}/{path}", version=version, plain_http=plain)
    return ChartSource(
        ref=config.helm_chart_name, version=version, repo_url=config.helm_chart_repository
    )


@dataclass
class HelmOptions:
    """Connection and validation settings shared by every Helm call."""

    kube_context: str
    namespace: str
    kubeconfig: str | None = None
    binary: str = "helm"
    disable_openapi_validation: bool = False
    skip_schema_validation: bool = False

    @classmethod
    def from_config(
        cls, config: HelmConfig, *, kubeconfig: str | None = None, binary: str = "helm"
    ) -> HelmOptions:
        return cls(
            kube_context=config.kubernetes_context,
            namespace=config.namespace,
            kubeconfig=kubeconfig,
            binary=binary,
            disable_openapi_validation=config.helm_disable_openapi_validation,
            skip_schema_validation=config.helm_skip_schema_validation,
        )


@dataclass(frozen=True)
class HelmResult:
    """Outcome of `upgrade --install`: the new revision and its status."""

    release: str
    revision: int | None
    status: str | None


@dataclass(frozen=True)
class Revision:
    """One entry of `helm history`."""

    revision: int
    status: str
    updated: str = ""
    chart: str = ""
    app_version: str = ""
    description: str = ""


@dataclass(frozen=True)
class _Run:
    returncode: int
    stdout: str
    stderr: str


def parse_major_version(text: str) -> int:
    """`v3.17.2+gcc0bbbd` -> 3."""
    match = re.search(r"v?(\d+)\.\d+", text)
    if not match:
        raise UsageError(
            f"Cannot read the Helm version from {text.strip()!r}; install Helm 3 or 4."
        )
    return int(match.group(1))


def helm_error_text(stderr: str, stdout: str = "") -> str:
    """Helm's own message: its `Error: ...` line(s) without the prefix, else its last lines;
    a permission the API server refused is named (see `errors.permission_note`)."""
    lines = [
        line.rstrip()
        for line in stderr.splitlines()
        if line.strip() and not line.startswith("Use --debug flag")
    ]
    for i, line in enumerate(lines):
        if line.startswith("Error:"):
            message = " ".join(part.strip() for part in lines[i:]).removeprefix("Error:")
            return message.strip() + permission_note(message)
    tail = lines[-5:] or [line for line in stdout.splitlines() if line.strip()][-5:]
    return " ".join(part.strip() for part in tail) or "no error output"


def _connection_args(options: HelmOptions) -> list[str]:
    args = ["-n", options.namespace, "--kube-context", options.kube_context]
    if options.kubeconfig:
        args += ["--kubeconfig", options.kubeconfig]
    return args


def _chart_args(chart: ChartSource) -> list[str]:
    args: list[str] = []
    if chart.version and not chart.is_local:
        args += ["--version", chart.version]
    if chart.repo_url:
        args += ["--repo", chart.repo_url]
    if chart.plain_http:
        args += ["--plain-http"]
    return args


def _wait_args(major: int | None, wait: bool) -> list[str]:
    if not wait:
        return []
    return ["--wait"] if major is not None and major < 4 else ["--wait=watcher"]


def upgrade_command(
    options: HelmOptions,
    major: int | None,
    release: str,
    chart: ChartSource,
    values_path: str,
    *,
    timeout_s: int | None = None,
    wait: bool = False,
) -> list[str]:
    """The `helm upgrade --install` argument list (pure)."""
    cmd = [options.binary, "upgrade", "--install", release, chart.ref]
    cmd += _connection_args(options)
    cmd += ["--values", values_path]
    cmd += _chart_args(chart)
    if options.disable_openapi_validation:
        cmd.append("--disable-openapi-validation")
    if options.skip_schema_validation:
        cmd.append("--skip-schema-validation")
    cmd += _wait_args(major, wait)
    if timeout_s is not None:
        cmd += ["--timeout", f"{int(timeout_s)}s"]
    cmd += ["-o", "json"]
    return cmd


def template_command(
    options: HelmOptions, release: str, chart: ChartSource, values_path: str
) -> list[str]:
    """`helm template`: renders the chart locally, no cluster needed (pure)."""
    cmd = [options.binary, "template", release, chart.ref, "-n", options.namespace]
    cmd += ["--values", values_path]
    cmd += _chart_args(chart)
    if options.skip_schema_validation:
        cmd.append("--skip-schema-validation")
    return cmd


def show_chart_command(binary: str, chart: ChartSource) -> list[str]:
    """`helm show chart`: resolves the chart (and its version) without a cluster (pure)."""
    return [binary, "show", "chart", chart.ref, *_chart_args(chart)]


def registry_login_command(
    binary: str, major: int, registry: str, username: str, *, plain_http: bool = False
) -> list[str]:
    """`helm registry login` reading the password from stdin (pure)."""
    cmd = [binary, "registry", "login", registry, "--username", username, "--password-stdin"]
    if plain_http:
        cmd.append("--plain-http" if major >= 4 else "--insecure")
    return cmd


def parse_history(text: str) -> list[Revision]:
    """`helm history -o json` -> revisions, oldest first."""
    try:
        raw = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise OperationError(f"helm history printed something that is not JSON: {exc}.") from exc
    revisions = [
        Revision(
            revision=int(item["revision"]),
            status=str(item.get("status", "")),
            updated=str(item.get("updated", "")),
            chart=str(item.get("chart", "")),
            app_version=str(item.get("app_version", "")),
            description=str(item.get("description", "")),
        )
        for item in raw or []
    ]
    return sorted(revisions, key=lambda r: r.revision)


def _is_release_not_found(message: str) -> bool:
    return "release: not found" in message.lower()


@dataclass
class Helm:
    """Runs helm for one context and namespace."""

    options: HelmOptions
    _major: int | None = field(default=None, init=False, repr=False)
    #: Helm's error when a schema the chart refers to could not be fetched (seen once, the
    #: later calls of this process skip the failing attempt).
    _unreachable_schema: str | None = field(default=None, init=False, repr=False)

    def _binary(self) -> str:
        binary = self.options.binary
        found = shutil.which(binary)
        if found is None:
            raise UsageError(
                f"helm was not found ({binary!r} is not an executable on PATH); "
                "install Helm 3 or 4 (https://helm.sh/docs/intro/install/)."
            )
        return found

    def _run(
        self, args: Sequence[str], *, stdin: str | None = None, timeout_s: float | None = None
    ) -> _Run:
        cmd = [self._binary(), *args[1:]]
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as exc:
            raise UsageError(f"helm could not be started ({exc}); install Helm 3 or 4.") from exc
        try:
            try:
                stdout, stderr = proc.communicate(stdin, timeout=timeout_s)
            except KeyboardInterrupt:
                # Helm cancels cleanly on SIGINT (the release is marked failed, not left
                # pending-*, which would block every later upgrade): let it finish that.
                proc.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.communicate(timeout=_INTERRUPT_GRACE_S)
                raise
        except subprocess.TimeoutExpired as exc:
            raise OperationError(
                f"helm {args[1]} did not finish within {int(timeout_s or 0)} seconds; "
                "check that the cluster is reachable."
            ) from exc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return _Run(proc.returncode, stdout, stderr)

    def major_version(self) -> int:
        """Helm's major version (3 or 4), read once from `helm version --short`."""
        if self._major is None:
            run = self._run([self.options.binary, "version", "--short"], timeout_s=60)
            if run.returncode != 0:
                raise UsageError(
                    f"helm version failed: {helm_error_text(run.stderr, run.stdout)}; "
                    "check the helm installation."
                )
            major = parse_major_version(run.stdout)
            if major < 3:
                raise UsageError(f"Helm {run.stdout.strip()} is too old; install Helm 3 or 4.")
            self._major = major
        return self._major

    def upgrade_install(
        self,
        release: str,
        chart: ChartSource,
        values_yaml: str,
        *,
        timeout_s: int | None = None,
        wait: bool = False,
    ) -> HelmResult:
        """`helm upgrade --install` with `values_yaml`; raises OperationError with Helm's text.

        Helm's version is asked only when `--wait` needs it (it is spelled differently in 4)."""
        major = self.major_version() if wait else None
        options = self.options
        if self._unreachable_schema and not options.skip_schema_validation:
            self._check_values_offline(release, chart, values_yaml, self._unreachable_schema)
            options = replace(options, skip_schema_validation=True)

        def upgrade(options: HelmOptions) -> _Run:
            with _private_values_file(values_yaml) as values_path:
                cmd = upgrade_command(
                    options, major, release, chart, values_path, timeout_s=timeout_s, wait=wait
                )
                return self._run(cmd, timeout_s=(timeout_s or _DEFAULT_TIMEOUT_S) + _GRACE_S)

        run = upgrade(options)
        message = helm_error_text(run.stderr, run.stdout) if run.returncode != 0 else ""
        if not options.skip_schema_validation and is_schema_fetch_failure(message):
            self._check_values_offline(release, chart, values_yaml, message)
            run = upgrade(replace(options, skip_schema_validation=True))
        if run.returncode != 0:
            raise OperationError(
                f"helm upgrade of release {release} failed: "
                f"{helm_error_text(run.stderr, run.stdout)}"
            )
        revision: int | None = None
        status: str | None = None
        try:
            doc = json.loads(run.stdout)
            revision = int(doc.get("version")) if doc.get("version") is not None else None
            status = (doc.get("info") or {}).get("status")
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            pass
        return HelmResult(release=release, revision=revision, status=status)

    def template(self, release: str, chart: ChartSource, values_yaml: str) -> str:
        """The manifests the chart renders for `values_yaml` (no cluster access).

        When the chart's schema refers to a schema that cannot be fetched, the values are
        checked against the rest of it and rendered without it (one warning)."""
        if self._unreachable_schema and not self.options.skip_schema_validation:
            return self._check_values_offline(release, chart, values_yaml, self._unreachable_schema)
        run = self._template_run(self.options, release, chart, values_yaml)
        if run.returncode == 0:
            return run.stdout
        message = helm_error_text(run.stderr, run.stdout)
        if not self.options.skip_schema_validation and is_schema_fetch_failure(message):
            return self._check_values_offline(release, chart, values_yaml, message)
        raise OperationError(f"helm template of release {release} failed: {message}")

    def _template_run(
        self, options: HelmOptions, release: str, chart: ChartSource, values_yaml: str
    ) -> _Run:
        with _private_values_file(values_yaml) as values_path:
            return self._run(
                template_command(options, release, chart, values_path),
                timeout_s=_DEFAULT_TIMEOUT_S,
            )

    def _check_values_offline(
        self, release: str, chart: ChartSource, values_yaml: str, fetch_error: str
    ) -> str:
        """Render a copy of the chart whose schemas lost their references to other documents:
        a real violation of the rest of the schema still fails. Returns the manifests and
        warns (once per process) that Helm goes on with `--skip-schema-validation`."""
        with tempfile.TemporaryDirectory(prefix="dagster-uc-chart-") as tmp:
            local = _local_chart_copy(self, chart, Path(tmp))
            referenced = drop_external_refs(local)
            run = self._template_run(self.options, release, ChartSource(str(local)), values_yaml)
        if run.returncode != 0:
            raise OperationError(
                f"helm template of release {release} failed: "
                f"{helm_error_text(run.stderr, run.stdout)}"
            )
        if self._unreachable_schema is None:
            self._unreachable_schema = fetch_error
            output.warning(skipped_schema_warning(fetch_error, referenced))
        return run.stdout

    def history(self, release: str, max_revisions: int = 256) -> list[Revision]:
        """Revisions of `release`, oldest first; [] when the release does not exist."""
        cmd = [self.options.binary, "history", release, *_connection_args(self.options)]
        cmd += ["--max", str(max_revisions), "-o", "json"]
        run = self._run(cmd, timeout_s=_DEFAULT_TIMEOUT_S)
        if run.returncode != 0:
            message = helm_error_text(run.stderr, run.stdout)
            if _is_release_not_found(message):
                return []
            raise OperationError(f"helm history of release {release} failed: {message}")
        return parse_history(run.stdout)

    def rollback(
        self, release: str, revision: int, *, timeout_s: int | None = None, wait: bool = False
    ) -> None:
        """`helm rollback <release> <revision>` (creates a new revision with the old content)."""
        major = self.major_version() if wait else None
        cmd = [self.options.binary, "rollback", release, str(revision)]
        cmd += _connection_args(self.options) + _wait_args(major, wait)
        if timeout_s is not None:
            cmd += ["--timeout", f"{int(timeout_s)}s"]
        run = self._run(cmd, timeout_s=(timeout_s or _DEFAULT_TIMEOUT_S) + _GRACE_S)
        if run.returncode != 0:
            raise OperationError(
                f"helm rollback of release {release} to revision {revision} failed: "
                f"{helm_error_text(run.stderr, run.stdout)}"
            )

    def uninstall(self, *releases: str, timeout_s: int | None = None) -> None:
        """`helm uninstall`; a release that does not exist is not an error. Several releases
        go in one Helm process (one client setup instead of one each); Helm removes them in
        order and stops at the first failure."""
        cmd = [self.options.binary, "uninstall", *releases, *_connection_args(self.options)]
        cmd += ["--ignore-not-found"]
        if timeout_s is not None:
            cmd += ["--timeout", f"{int(timeout_s)}s"]
        run = self._run(cmd, timeout_s=(timeout_s or _DEFAULT_TIMEOUT_S) + _GRACE_S)
        if run.returncode != 0:
            raise OperationError(
                f"helm uninstall of release {', '.join(releases)} failed: "
                f"{helm_error_text(run.stderr, run.stdout)}"
            )

    def recover_pending(self, release: str) -> str | None:
        """Unlock a release left `pending-*` by an interrupted Helm run (call under the deploy lock).

        Rolls back to the newest `deployed`/`superseded` revision, or uninstalls a release whose
        first install never completed. Returns what was done, or None when nothing was needed.
        """
        revisions = self.history(release)
        if not revisions or revisions[-1].status not in PENDING_STATUSES:
            return None
        stuck = revisions[-1]
        good = [r for r in revisions[:-1] if r.status in ("deployed", "superseded")]
        if good:
            self.rollback(release, good[-1].revision)
            return f"rolled back {stuck.status} revision {stuck.revision} to {good[-1].revision}"
        self.uninstall(release)
        return f"uninstalled release stuck in {stuck.status}"

    def registry_login(
        self, registry: str, username: str, password: str, *, plain_http: bool | None = None
    ) -> None:
        """`helm registry login` with the password on stdin (plain HTTP for loopback by default)."""
        if plain_http is None:
            plain_http = is_loopback_host(registry)
        host = registry.split("/", 1)[0]
        cmd = registry_login_command(
            self.options.binary, self.major_version(), host, username, plain_http=plain_http
        )
        run = self._run(cmd, stdin=password + "\n", timeout_s=_DEFAULT_TIMEOUT_S)
        if run.returncode != 0:
            message = helm_error_text(run.stderr, run.stdout).replace(password, "***")
            raise OperationError(f"helm registry login to {host} failed: {message}")


def _local_chart_copy(helm: Helm, chart: ChartSource, dest: Path) -> Path:
    """The chart as a directory under `dest`: a copy of a local directory or `.tgz`, or
    `helm pull --untar` of a repository or OCI chart."""
    if chart.is_local:
        source = Path(chart.ref)
        if source.is_dir():
            return Path(shutil.copytree(source, dest / source.name))
        with tarfile.open(source) as archive:
            archive.extractall(dest, filter="data")
    else:
        cmd = [helm.options.binary, "pull", chart.ref, *_chart_args(chart)]
        run = helm._run([*cmd, "--untar", "--untardir", str(dest)], timeout_s=_DEFAULT_TIMEOUT_S)
        if run.returncode != 0:
            raise OperationError(
                f"helm pull of {chart.describe()} failed: {helm_error_text(run.stderr, run.stdout)}"
            )
    unpacked = [p for p in dest.iterdir() if p.is_dir()]
    if len(unpacked) != 1:
        raise OperationError(f"The chart {chart.describe()} did not unpack to one directory.")
    return unpacked[0]


class _private_values_file:
    """A temp file only the current user can read, removed afterwards."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._path: Path | None = None

    def __enter__(self) -> str:
        fd, name = tempfile.mkstemp(prefix="dagster-uc-values-", suffix=".yaml")
        self._path = Path(name)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self._text)
        except BaseException:
            self._path.unlink(missing_ok=True)
            raise
        return name

    def __exit__(self, *exc: object) -> None:
        if self._path is not None:
            self._path.unlink(missing_ok=True)
