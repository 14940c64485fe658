"""Checks of this machine: the checkout (git branch, project name), podman, Helm and the
chart, and the Azure CLI. Each runs one short command; none changes anything."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dagster_uc import git
from dagster_uc.context import image_repository_for, resolve_deployment_name
from dagster_uc.doctor.model import CheckResult, failed, from_error, ok, skipped, warning
from dagster_uc.errors import DagsterUcError
from dagster_uc.helm import chart_source, helm_error_text, show_chart_command
from dagster_uc.project import project_name

if TYPE_CHECKING:
    from dagster_uc.config import Config

#: Seconds for `helm show chart`: a chart repository or OCI registry that does not answer.
CHART_TIMEOUT_S = 20.0
TOOL_TIMEOUT_S = 15.0
MIN_PODMAN = (4, 0)
HELM_MAJORS = (3, 4)
PODMAN_INSTALL = "https://podman.io/docs/installation"
HELM_INSTALL = "https://helm.sh/docs/intro/install/"


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run(argv: list[str], timeout_s: float = TOOL_TIMEOUT_S) -> Ran | None:
    """Run a tool with an argument list; None when it is not on PATH."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Ran(124, "", f"{argv[0]} did not answer within {timeout_s:g} s")
    except OSError as exc:
        return Ran(126, "", str(exc))
    return Ran(done.returncode, done.stdout, done.stderr)


def version_tuple(text: str) -> tuple[int, ...] | None:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(p) for p in match.groups() if p is not None) if match else None


def checkout_checks(config: Config, cwd: Path) -> tuple[list[CheckResult], str | None]:
    """`git` (repository and branch) and `project` (name prefix); also the image repository
    of the deployment (None when the name cannot be computed)."""
    results = []
    if config.cicd:
        results.append(
            ok("git", f"cicd: true, the deployment is named after '{config.environment}'")
        )
    else:
        try:
            root = git.repo_root(cwd)
            branch = git.current_branch(cwd)
            results.append(ok("git", f"branch {branch} in {root}", branch=branch))
        except DagsterUcError as exc:
            results.append(from_error("git", exc))
    if config.use_project_name:
        try:
            results.append(ok("project", f"project {project_name(cwd)} (pyproject.toml)"))
        except DagsterUcError as exc:
            results.append(from_error("project", exc))
    else:
        results.append(ok("project", "use_project_name is false: names have no project part"))
    if any(r.status == "failed" for r in results):
        return results, None
    try:
        name = resolve_deployment_name(config, cwd)
    except DagsterUcError as exc:
        return [*results, from_error("deployment-name", exc)], None
    results.append(ok("deployment-name", f"{name.name} (Dagster UI: {name.ui_name})"))
    return results, image_repository_for(config, name)


def check_podman() -> CheckResult:
    ran = run(["podman", "--version"])
    if ran is None:
        return failed("podman", "podman is not on PATH", f"Install podman ({PODMAN_INSTALL}).")
    version = version_tuple(ran.stdout)
    if ran.returncode != 0 or version is None:
        detail = (ran.stderr or ran.stdout).strip().splitlines()[-1:] or ["no output"]
        return failed(
            "podman", f"podman --version failed: {detail[0]}", "Repair the podman installation."
        )
    shown = ".".join(map(str, version))
    if version < MIN_PODMAN:
        return warning(
            "podman",
            f"podman {shown} is older than the supported {MIN_PODMAN[0]}.{MIN_PODMAN[1]}",
            f"Upgrade podman ({PODMAN_INSTALL}); build secrets and layer caching may misbehave.",
        )
    return ok("podman", f"podman {shown}", version=shown)


def check_helm(config: Config) -> list[CheckResult]:
    """`helm` (installed, Helm 3 or 4) and `chart` (`helm show chart` resolves it)."""
    ran = run(["helm", "version", "--short"])
    if ran is None:
        return [
            failed("helm", "helm is not on PATH", f"Install Helm 3 or 4 ({HELM_INSTALL})."),
            skipped("chart", "Helm is missing"),
        ]
    version = version_tuple(ran.stdout)
    if ran.returncode != 0 or version is None:
        text = helm_error_text(ran.stderr, ran.stdout)
        return [
            failed("helm", f"helm version failed: {text}", "Repair the Helm installation."),
            skipped("chart", "Helm does not run"),
        ]
    shown = ran.stdout.strip().split("+", 1)[0]
    if version[0] not in HELM_MAJORS:
        return [
            failed(
                "helm", f"Helm {shown} is not supported", f"Install Helm 3 or 4 ({HELM_INSTALL})."
            ),
            skipped("chart", "unsupported Helm"),
        ]
    return [ok("helm", f"Helm {shown}", version=shown), check_chart(config)]


def check_chart(config: Config) -> CheckResult:
    chart = chart_source(config)
    if chart.is_local and not Path(chart.ref).exists():
        return failed(
            "chart",
            f"helm_chart_path {chart.ref} does not exist",
            "Fix helm_chart_path (a chart directory or .tgz), or remove it to use the chart repository.",
        )
    ran = run(show_chart_command("helm", chart), timeout_s=CHART_TIMEOUT_S)
    if ran is None or ran.returncode != 0:
        detail = helm_error_text(ran.stderr, ran.stdout) if ran else "helm is missing"
        fix = "Check dagster_version (the chart version) and the chart's source keys"
        if chart.ref.startswith("oci://"):
            fix += " (container_registry_chart_path"
            fix += (
                "; with use_az_login, `helm registry login` happens at deploy)"
                if config.use_az_login
                else ")"
            )
        elif not chart.is_local:
            fix += " (helm_chart_repository, helm_chart_name)"
        return failed(
            "chart", f"the chart {chart.describe()} does not resolve: {detail}", fix + "."
        )
    fields = dict(
        line.split(":", 1)
        for line in ran.stdout.splitlines()
        if ":" in line and not line.startswith(" ")
    )
    found = fields.get("version", "?").strip()
    return ok("chart", f"{chart.describe()} resolves (chart version {found})", version=found)


def check_az(config: Config) -> CheckResult:
    if not config.use_az_login:
        return ok("az", "use_az_login is false: the Azure CLI is not needed")
    ran = run(["az", "account", "show", "--output", "json"], timeout_s=30)
    if ran is None:
        return failed(
            "az",
            "use_az_login is true but the Azure CLI (az) is not on PATH",
            "Install it (https://aka.ms/azure-cli) or set use_az_login: false.",
        )
    if ran.returncode != 0:
        detail = (ran.stderr.strip().splitlines() or ["not logged in"])[-1]
        return failed("az", f"az is not logged in: {detail}", "Run `az login`.")
    import json

    try:
        account = json.loads(ran.stdout)
        who = (account.get("user") or {}).get("name") or "unknown user"
        where = account.get("name") or account.get("id") or "unknown subscription"
    except (ValueError, AttributeError):
        who, where = "unknown user", "unknown subscription"
    return ok("az", f"az is logged in as {who} ({where})")
