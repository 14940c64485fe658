"""Real Dagster (the version the stack pins) from PyPI, in a virtualenv of its own, and an
instance of it on loopback: code servers (`dagster api grpc`), `dagster-webserver` and
`dagster-daemon` sharing a workspace file and a temporary DAGSTER_HOME.

`dagster`, `dagster-webserver`, `dagster-daemon` and `dagster-graphql` are installed once into
`.cache/dagster-venv` (Python 3.11) and reused while the stamp file says the pinned version.
Used by the real-Dagster workspace-reload test and the reload benchmark; `python -m
stack.dagster_real` provisions it and prints the bin directory.

The workspace that dagster-uc writes names each code server by its Kubernetes Service, the
location's deployment name. On loopback those names must resolve to 127.0.0.1: the webserver
and daemon run in a private mount namespace (`unshare`, root only) where a hosts file of our
own is bind-mounted over /etc/hosts; nothing outside those two processes sees it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagster_uc.reload import PROBE

DAGSTER_VERSION = "1.8.4"  # as stack.pytest_plugin pins it

DAGSTER_VENV = Path(__file__).resolve().parents[1] / ".cache" / "dagster-venv"
PACKAGES = ("dagster", "dagster-webserver", "dagster-graphql")
PYTHON = "python3.11"


def ensure_dagster(venv: Path = DAGSTER_VENV, version: str = DAGSTER_VERSION) -> Path:
    """The venv's bin directory with `dagster`, `dagster-webserver` and `dagster-daemon`."""
    bin_dir = venv / "bin"
    stamp = venv / f"dagster-{version}.installed"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / "dagster-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test sessions install once
        if not stamp.is_file():
            subprocess.run([PYTHON, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run(
                [
                    str(bin_dir / "pip"),
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    *(f"{p}=={version}" for p in PACKAGES),
                ],
                check=True,
            )
            stamp.write_text(version)
    for program in ("dagster", "dagster-webserver", "dagster-daemon"):
        if not (bin_dir / program).is_file():
            raise RuntimeError(f"{bin_dir / program} missing after installing Dagster {version}")
    return bin_dir


DEFINITIONS = """\
import os

from dagster import DefaultSensorStatus, Definitions, SkipReason, asset, sensor


@asset
def greeting() -> str:
    return "hello from " + os.environ.get("LOCATION", "?")


@sensor(asset_selection=[greeting], minimum_interval_seconds=1, default_status=DefaultSensorStatus.RUNNING)
def heartbeat(_context):
    return SkipReason("evaluated in " + os.environ.get("LOCATION", "?"))


defs = Definitions(assets=[greeting], sensors=[heartbeat])
"""

DAGSTER_YAML = "telemetry:\n  enabled: false\n"
_BIND_HOSTS = 'mount --bind "$0" /etc/hosts && exec "$@"'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def private_hosts_supported() -> str | None:
    """None when `unshare` can give a process its own /etc/hosts here, else why not."""
    try:
        done = subprocess.run(
            _with_hosts("/etc/hosts", ["true"]), capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare is not usable: {exc}"
    return None if done.returncode == 0 else f"unshare failed: {done.stderr.strip()}"


def _with_hosts(hosts: str, argv: list[str]) -> list[str]:
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        _BIND_HOSTS,
        hosts,
        *argv,
    ]


def wait_until(
    what: str, check: Callable[[], Any], timeout_s: float, interval_s: float = 0.5
) -> Any:
    """Poll `check` until it returns something truthy; TimeoutError naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout_s:.0f} s")
        time.sleep(interval_s)


class LocalDagster:
    """Code servers, a webserver and a daemon of real Dagster on loopback (stop() ends them)."""

    def __init__(self, workdir: Path, bin_dir: Path | None = None) -> None:
        self.bin = bin_dir or ensure_dagster()
        self.workdir = workdir
        self.home = workdir / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text(DAGSTER_YAML)
        self.definitions = workdir / "definitions.py"
        self.definitions.write_text(DEFINITIONS)
        self.workspace = workdir / "workspace.yaml"
        self.hosts = workdir / "hosts"
        self.hosts.write_text("127.0.0.1 localhost\n")
        self.webserver_port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._migrated = False

    @property
    def python(self) -> str:
        return str(self.bin / "python")

    @property
    def graphql_url(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}/graphql"

    def _env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "VIRTUAL_ENV"))}
        env.update(DAGSTER_HOME=str(self.home), PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}")
        env.update(extra)
        return env

    def _start(self, key: str, argv: list[str], **env: str) -> None:
        log = (self.workdir / f"{key}.log").open("wb")
        self.processes[key] = subprocess.Popen(
            argv,
            cwd=self.workdir,
            env=self._env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_code_server(self, host: str, port: int) -> None:
        """`dagster api grpc` of the definitions, reachable as `host` (added to the hosts file)."""
        with self.hosts.open("a") as f:
            f.write(f"127.0.0.1 {host}\n")
        self._start(
            f"code-{host}",
            [
                str(self.bin / "dagster"),
                "api",
                "grpc",
                "-f",
                str(self.definitions),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            LOCATION=host,
        )

    def _storage_ready(self) -> None:
        """Create the instance's SQLite storage once: the webserver and daemon starting on a
        fresh DAGSTER_HOME at the same time race to create the same tables."""
        if not self._migrated:
            self._migrated = True
            subprocess.run(
                [str(self.bin / "dagster"), "instance", "migrate"],
                cwd=self.workdir,
                env=self._env(),
                capture_output=True,
                check=True,
                timeout=180,
            )

    def start_webserver(self) -> None:
        self._storage_ready()
        argv = [
            str(self.bin / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.webserver_port),
            "-w",
            str(self.workspace),
        ]
        self._start("webserver", _with_hosts(str(self.hosts), argv))

    def restart_webserver(self) -> None:
        """Stop the webserver process and start a new one on the same port (what restarting
        its pod does to the process)."""
        process = self.processes.pop("webserver")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        self.start_webserver()

    def start_daemon(self) -> None:
        self._storage_ready()
        argv = [str(self.bin / "dagster-daemon"), "run", "-w", str(self.workspace)]
        self._start("daemon", _with_hosts(str(self.hosts), argv))

    def pids(self) -> dict[str, int]:
        return {key: p.pid for key, p in self.processes.items()}

    def check_alive(self) -> None:
        for key, process in self.processes.items():
            if process.poll() is not None:
                log = (self.workdir / f"{key}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{key} exited with {process.returncode}:\n{log}")

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        response = httpx.post(
            self.graphql_url,
            json={"query": query, "variables": variables or {}},
            timeout=60,
            trust_env=False,
        )
        response.raise_for_status()
        return dict(response.json()["data"])

    def webserver_up(self) -> bool:
        import httpx

        self.check_alive()
        try:
            return (
                httpx.get(
                    f"http://127.0.0.1:{self.webserver_port}/server_info",
                    timeout=5,
                    trust_env=False,
                ).status_code
                == 200
            )
        except httpx.HTTPError:
            return False

    def run_in_webserver(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a command as an exec into the webserver's container would: its Python, its
        environment (argv[0] `python` is the Dagster venv's)."""
        if argv[0] == "python":
            argv = [self.python, *argv[1:]]
        return subprocess.run(argv, env=self._env(), capture_output=True, text=True, timeout=120)

    def run_reload_probe(self, expected: list[str]) -> subprocess.CompletedProcess[str]:
        """dagster-uc's in-pod program (`reload.PROBE`) with the arguments it passes in the
        webserver pod, run as that exec would run it."""
        arguments = {
            "url": self.graphql_url,
            "workspace": str(self.workspace),
            "expect": sorted(expected),
            "timeout": 60,
        }
        return self.run_in_webserver(["python", "-c", PROBE, json.dumps(arguments)])

    def sensor_ticks(self, location: str, sensor: str = "heartbeat") -> int:
        """Ticks of `sensor` in `location` in the instance's tick storage (as the webserver reads it)."""
        query = (
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename "
            "... on Sensor { sensorState { ticks(limit: 5) { status } } } } }"
        )
        selector = {
            "repositoryLocationName": location,
            "repositoryName": "__repository__",
            "sensorName": sensor,
        }
        answer = self.graphql(query, {"s": selector})["sensorOrError"]
        if answer.get("__typename") != "Sensor":
            return 0
        return len(answer["sensorState"]["ticks"])

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


if __name__ == "__main__":
    sys.stdout.write(f"{ensure_dagster()}\n")
