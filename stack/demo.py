"""`make demo`: the main job on the embedded local stack, narrated step by step.

Starts a private local stack (Kubernetes API emulator seeded with a Dagster instance, a real
registry, real Helm and kubectl), then runs the installed `dagster-uc` on a git checkout of
examples/demo-project: deploy, deploy again (new tag), deploy a second branch, list, check,
delete, and stops the stack. Exits non-zero at the first step that fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stack import stackctl

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "demo-project"
DAGSTER_UC = Path(sys.executable).parent / "dagster-uc"
STATE_DIR = ROOT / ".cache" / "demo-stack"


def banner(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def read_env_file(path: Path, base: dict[str, str]) -> dict[str, str]:
    """The `export K=V` lines `stackctl up` writes, applied to `base`."""
    env = dict(base)
    for line in path.read_text().splitlines():
        if not line.startswith("export "):
            continue
        key, _, value = line[len("export ") :].partition("=")
        value = value.replace('"$PATH"', env.get("PATH", "")).strip('"')
        env[key] = value
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], input: str | None = None) -> None:
    shown = " ".join(["dagster-uc", *cmd[1:]] if cmd[0] == str(DAGSTER_UC) else cmd)
    print(f"$ {shown}", flush=True)
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, env=env, input=input, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"demo failed: `{shown}` exited with {done.returncode}")
    print(f"  ({time.monotonic() - started:.1f} s)", flush=True)


def main() -> int:
    started = time.monotonic()
    cluster = os.environ.get("CLUSTER") or "emulator"
    what = "API emulator" if cluster == "emulator" else "real control plane"
    banner(f"Starting the local stack ({what} with a seeded Dagster 1.8.4, registry, Helm)")
    stackctl.down(STATE_DIR, quiet=True)
    stackctl.up(STATE_DIR, cluster=cluster)
    workdir = Path(tempfile.mkdtemp(prefix="dagster-uc-demo-"))
    try:
        env = read_env_file(STATE_DIR / "env", dict(os.environ))
        env["CONTAINER_REGISTRY"] = env["DAGSTER_UC_REGISTRY"]
        env["HELM_CHART_PATH"] = env["DAGSTER_UC_CHART"]
        for key in ("CICD", "VERBOSE", "ENVIRONMENT", "NAMESPACE"):
            env.pop(key, None)
        project = workdir / "demo-project"
        shutil.copytree(EXAMPLE, project)
        git = ["git", "-c", "user.email=demo@example.com", "-c", "user.name=Demo"]
        banner(f"A git checkout of examples/demo-project in {project}, branch feat/hello-world")
        run([*git, "init", "-q", "-b", "feat/hello-world"], project, env)
        run([*git, "add", "-A"], project, env)
        run([*git, "commit", "-q", "-m", "Demo project"], project, env)
        uc = [str(DAGSTER_UC)]

        banner("The effective configuration (registry and chart come from the stack's environment)")
        run([*uc, "show-config", "--sources"], project, env)
        banner("The names this checkout deploys under")
        run([*uc, "deployment", "name"], project, env)
        banner("Deploy the branch: build, push with a fresh tag, register, roll out, wait")
        run([*uc, "deployment", "deploy", "--timeout", "120"], project, env)
        banner("Deploy again after a commit: a new tag, and Dagster is not reloaded")
        run([*git, "commit", "-q", "--allow-empty", "-m", "A second commit"], project, env)
        run([*uc, "deployment", "deploy", "--timeout", "120"], project, env)
        banner("Deploy a second branch next to the first")
        run([*git, "checkout", "-q", "-b", "feat/second-idea"], project, env)
        run([*uc, "deployment", "deploy", "--timeout", "120"], project, env)
        banner("List the code locations on the cluster")
        run([*uc, "deployment", "list"], project, env)
        banner("Check the first branch's code server")
        run(
            [*uc, "deployment", "check", "-n", "demo-project:feat-hello-world", "-t", "30"],
            project,
            env,
        )
        banner("Delete the second branch's deployment (the checked-out branch)")
        run([*uc, "deployment", "delete"], project, env)
        banner("Delete everything that is left (confirmation answered on stdin)")
        run([*uc, "deployment", "delete", "--all"], project, env, input="y\n")
        run([*uc, "deployment", "list"], project, env)
    finally:
        banner("Stopping the local stack")
        stackctl.down(STATE_DIR, quiet=True)
        shutil.rmtree(workdir, ignore_errors=True)
    banner(f"Demo finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
