"""Start and stop the local stack in the background, for manual use and the demo.

``python -m stack.stackctl up`` starts the Kubernetes API emulator (seeded with a Dagster
instance) and a container registry as detached processes, provisions helm/kubectl and the
podman base image, and writes ``.stack/env`` (shell ``export`` lines). ``down`` stops exactly
the processes ``up`` started and removes ``.stack/``. Both are idempotent.

``up --cluster real`` starts a real control plane instead of the emulator (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok, built from the Go module
proxy by ``stack.controlplane.build`` on first use), seeded with the same Dagster instance.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stack.chart import CHART_DIR
from stack.controlplane.build import ensure_control_plane
from stack.controlplane.client import RealCluster
from stack.controlplane.cluster import ControlPlane
from stack.emulator.dagster import seed_dagster
from stack.tools import REPO_ROOT, ensure_tools

DEFAULT_STATE_DIR = REPO_ROOT / ".stack"
CONTEXT = "kind-dagster-local"
NAMESPACE = "dagster"
DAGSTER_VERSION = "1.8.4"
REGISTRY_BINARY = Path("/usr/bin/docker-registry")
CONTROL_PLANE_PREFIX = "controlplane-"
POD_LOGS = "controlplane-podlogs"
CLUSTERS = ("emulator", "real")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass
class StackState:
    """What ``up`` started, recorded in ``.stack/state.json`` so ``down`` can stop it."""

    pids: dict[str, int] = field(default_factory=dict)
    emulator_url: str = ""
    registry: str = ""
    kubeconfig: str = ""
    cluster: str = "emulator"

    def save(self, state_dir: Path) -> None:
        (state_dir / "state.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> StackState | None:
        try:
            data = json.loads((state_dir / "state.json").read_text())
        except (OSError, ValueError):
            return None
        return cls(**data)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_ours(pid: int, name: str) -> bool:
    """True while ``pid`` is alive and still the process we started (guards against pid reuse)."""
    cmd = _cmdline(pid)
    if not cmd:
        return False
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
        if status.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        return False
    if name == "emulator":
        return "stack.emulator" in cmd
    if name == POD_LOGS:
        return "stack.controlplane.podlogs" in cmd
    if name.startswith(CONTROL_PLANE_PREFIX):
        return Path(cmd[0]).name == name.removeprefix(CONTROL_PLANE_PREFIX)
    return any("docker-registry" in part for part in cmd) or "stack.registry" in cmd


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a detached process (own session, no terminal) logging to ``log``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env=env,
            start_new_session=True,
        )


def _wait_for(
    predicate: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see {log}")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {START_TIMEOUT:.0f}s; see {log}")


def _start_control_plane(state_dir: Path) -> tuple[dict[str, int], str, Path]:
    """The real control plane, seeded like the emulator; its processes outlive this one."""
    plane = ControlPlane(ensure_control_plane(verbose=True), state_dir / "controlplane")
    plane.start()
    pids = {f"{CONTROL_PLANE_PREFIX}{name}": p.pid for name, p in plane.processes.items()}
    # The pods' log files and exec identities (stack.controlplane.podlogs), for as long as the
    # control plane runs.
    writer = _spawn(
        [sys.executable, "-m", "stack.controlplane.podlogs", "--state-dir", str(plane.state_dir)],
        state_dir / "podlogs.log",
    )
    pids[POD_LOGS] = writer.pid
    cluster = RealCluster(plane, pod_logs=False)
    try:
        seed_dagster(cluster, namespace=NAMESPACE, dagster_version=DAGSTER_VERSION)
        kubeconfig = cluster.write_kubeconfig(
            state_dir / "kubeconfig", context=CONTEXT, namespace=NAMESPACE
        )
    finally:
        cluster.close()
    return pids, plane.url, kubeconfig


def _start_emulator(state_dir: Path) -> tuple[int, str, Path]:
    kubeconfig = state_dir / "kubeconfig"
    ready = state_dir / "emulator.ready"
    log = state_dir / "emulator.log"
    cmd = [
        sys.executable,
        "-m",
        "stack.emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--context",
        CONTEXT,
        "--namespace",
        NAMESPACE,
        "--seed-dagster-version",
        DAGSTER_VERSION,
        "--ready-file",
        str(ready),
    ]
    proc = _spawn(cmd, log)
    _wait_for(lambda: ready.is_file() and kubeconfig.is_file(), proc, "the emulator", log)
    fields = dict(line.split("=", 1) for line in ready.read_text().splitlines() if "=" in line)
    return proc.pid, fields.get("url", ""), kubeconfig


def _registry_config(state_dir: Path) -> Path:
    config = state_dir / "registry.yml"
    data_dir = state_dir / "registry-data"
    data_dir.mkdir(exist_ok=True)
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {json.dumps(str(data_dir))}\n"
        "  delete:\n    enabled: true\n"
        "http:\n  addr: 127.0.0.1:0\n"
    )
    return config


def start_registry(state_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Debian's docker-registry on a free loopback port, deletes enabled, no auth.

    Config, data and log go to ``state_dir``; returns the process and its ``host:port``.
    """
    if not REGISTRY_BINARY.exists():
        raise RuntimeError(f"{REGISTRY_BINARY} not found: run scripts/install-system-deps.sh")
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "registry.log"
    proc = _spawn([str(REGISTRY_BINARY), "serve", str(_registry_config(state_dir))], log)
    pattern = re.compile(r"listening on (127\.0\.0\.1:\d+)")
    found: list[str] = []

    def listening() -> bool:
        match = pattern.search(log.read_text(errors="replace"))
        if match:
            found.append(match.group(1))
        return bool(match)

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://{found[0]}/v2/", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    try:
        _wait_for(listening, proc, "the registry", log)
        _wait_for(answers, proc, "the registry", log)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, found[0]


def _start_detached_registry(workdir: Path) -> tuple[int, str]:
    """Prefer the shared fixture class (stack.registry); it leaves the process running."""
    try:
        from stack.registry import LocalRegistry
    except ImportError:
        proc, host_port = start_registry(workdir)
        return proc.pid, host_port
    workdir.mkdir(parents=True, exist_ok=True)
    registry = LocalRegistry(auth="none", delete_enabled=True, workdir=workdir).start()
    assert registry.process is not None
    return registry.process.pid, registry.host


def _env_lines(state: StackState, bin_dir: Path, base_image: str) -> str:
    values = {
        "KUBECONFIG": state.kubeconfig,
        "DAGSTER_UC_CONTEXT": CONTEXT,
        "DAGSTER_UC_NAMESPACE": NAMESPACE,
        "DAGSTER_UC_REGISTRY": state.registry,
        "DAGSTER_UC_DAGSTER_VERSION": DAGSTER_VERSION,
        "DAGSTER_UC_CHART": str(CHART_DIR),
        "DAGSTER_UC_BASE_IMAGE": base_image,
        "DAGSTER_UC_EMULATOR_URL": state.emulator_url,
        # Podman in this sandbox builds only with chroot isolation (demo/test env, not product).
        "BUILDAH_ISOLATION": "chroot",
    }
    lines = ["# written by `python -m stack.stackctl up`; source it: . .stack/env"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in values.items()]
    lines.append(f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"')
    return "\n".join(lines) + "\n"


def _stop_pid(pid: int, name: str) -> None:
    """SIGTERM the process group we started, then SIGKILL if it lingers."""
    if not _is_ours(pid, name):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not _is_ours(pid, name):
                return
            time.sleep(0.05)
    if _is_ours(pid, name):
        raise RuntimeError(f"could not stop {name} (pid {pid})")


def _running(state: StackState) -> bool:
    return bool(state.pids) and all(_is_ours(pid, name) for name, pid in state.pids.items())


def up(
    state_dir: Path = DEFAULT_STATE_DIR, *, with_base_image: bool = True, cluster: str = "emulator"
) -> StackState:
    if cluster not in CLUSTERS:
        raise RuntimeError(f"unknown cluster {cluster!r}: choose one of {', '.join(CLUSTERS)}")
    state_dir = state_dir.resolve()
    existing = StackState.load(state_dir)
    if existing is not None and _running(existing):
        print(f"stack already up; source {state_dir / 'env'}")
        return existing
    if state_dir.exists():
        down(state_dir, quiet=True)
    state_dir.mkdir(parents=True)
    state = StackState(cluster=cluster)
    try:
        tools = ensure_tools()
        base_image = ""
        if with_base_image:
            from stack.podman import ensure_base_image

            base_image = ensure_base_image()
        if cluster == "real":
            pids, url, kubeconfig = _start_control_plane(state_dir)
            state.pids.update(pids)
        else:
            pid, url, kubeconfig = _start_emulator(state_dir)
            state.pids["emulator"] = pid
        state.emulator_url = url
        state.kubeconfig = str(kubeconfig)
        state.save(state_dir)
        registry_pid, registry = _start_detached_registry(state_dir / "registry")
        state.pids["registry"] = registry_pid
        state.registry = registry
        state.save(state_dir)
        (state_dir / "env").write_text(_env_lines(state, tools.bin_dir, base_image))
    except BaseException:
        state.save(state_dir)
        down(state_dir, quiet=True)
        raise
    print(f"stack up: {cluster} {state.emulator_url or state.kubeconfig}, registry {registry}")
    print(f"source {state_dir / 'env'}")
    return state


def down(state_dir: Path = DEFAULT_STATE_DIR, *, quiet: bool = False) -> None:
    state_dir = state_dir.resolve()
    state = StackState.load(state_dir)
    if state is not None:
        for name, pid in reversed(list(state.pids.items())):
            _stop_pid(pid, name)
    if state_dir.exists():
        shutil.rmtree(state_dir)
    if not quiet:
        print("stack down" if state is not None else "stack was not up")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.stackctl", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("DAGSTER_UC_STACK_DIR", DEFAULT_STATE_DIR)),
        help="where pids, logs, kubeconfig and env go (default: .stack/ in the repo)",
    )
    parser.add_argument(
        "--no-base-image", action="store_true", help="skip building the podman base image"
    )
    parser.add_argument(
        "--cluster",
        choices=CLUSTERS,
        default=os.environ.get("CLUSTER") or "emulator",
        help="the Kubernetes API: the emulator (default) or a real control plane",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(args.state_dir, with_base_image=not args.no_base_image, cluster=args.cluster)
        elif args.command == "down":
            down(args.state_dir)
        else:
            state = StackState.load(args.state_dir.resolve())
            running = state is not None and _running(state)
            print("up" if running else "down")
            return 0 if running else 3
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
