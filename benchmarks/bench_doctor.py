"""How long `dagster-uc doctor` takes: on a healthy local stack, and when the API server or
the registry is down (connection refused) or hung (accepts connections, never answers).

The goal (issue 11): a dead API server or registry fails its checks within a few seconds,
not after a client's default timeout, because doctor uses short timeouts and runs
independent checks concurrently.

    .venv/bin/python -m benchmarks.bench_doctor [--runs 3] [--write]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from benchmarks.report import command_line, load_average, write_section  # noqa: E402
from stack.chart import CHART_DIR  # noqa: E402
from stack.emulator import Emulator, seed_dagster  # noqa: E402
from stack.pytest_plugin import clean_environ  # noqa: E402
from stack.registry import LocalRegistry, free_port  # noqa: E402
from stack.tools import ensure_tools  # noqa: E402

DAGSTER_UC = Path(sys.executable).parent / "dagster-uc"
CONTEXT = "kind-dagster-bench"


def hung_listener() -> tuple[socket.socket, int]:
    """A socket that accepts TCP connections (the kernel does) but never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, sock.getsockname()[1]


def write_kubeconfig(path: Path, servers: dict[str, str]) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": n, "cluster": {"server": s}} for n, s in servers.items()],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": n, "context": {"cluster": n, "user": "u"}} for n in servers],
            }
        )
    )


def timed(project: Path, env: dict[str, str]) -> tuple[float, dict[str, str]]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(DAGSTER_UC), "doctor", "-o", "json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    checks = {c["name"]: c["status"] for c in json.loads(done.stdout)["checks"]}
    return seconds, checks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    tools = ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="dagster-uc-bench-doctor-"))
    (work / "home").mkdir()
    project = work / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "feat/x", str(project)], check=True)
    (project / "pyproject.toml").write_text('[project]\nname = "bench"\n')
    env = tools.env(clean_environ(work / "home"))
    hung_api, hung_api_port = hung_listener()
    hung_registry, hung_registry_port = hung_listener()
    rows = []
    with Emulator(port=0, ready_delay=0.2) as emu, LocalRegistry() as registry:
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        seed_dagster(emu, namespace=namespace, dagster_version="1.8.4")
        kubeconfig = work / "kubeconfig"
        emu.write_kubeconfig(kubeconfig, context=CONTEXT, namespace=namespace)
        extra = work / "kubeconfig-dead"
        write_kubeconfig(
            extra,
            {
                "refused": f"http://127.0.0.1:{free_port()}",
                "hung": f"http://127.0.0.1:{hung_api_port}",
            },
        )
        env["KUBECONFIG"] = f"{kubeconfig}:{extra}"
        base = {
            "code_path": "defs.py",
            "container_registry": registry.host,
            "dagster_version": "1.8.4",
            "kubernetes_context": CONTEXT,
            "namespace": namespace,
            "helm_chart_path": str(CHART_DIR),
        }
        cases = {
            "healthy stack": {},
            "API server refuses connections": {"kubernetes_context": "refused"},
            "API server hung": {"kubernetes_context": "hung"},
            "registry refuses connections": {"container_registry": f"127.0.0.1:{free_port()}"},
            "registry hung": {
                "container_registry": f"127.0.0.1:{hung_registry_port}",
                "container_registry_insecure": True,
            },
        }
        for label, overrides in cases.items():
            (project / ".config_user_code_deployments.yaml").write_text(
                yaml.safe_dump({"dev": {**base, **overrides}})
            )
            times, failed = [], set()
            for _ in range(args.runs):
                seconds, checks = timed(project, env)
                times.append(seconds)
                failed |= {n for n, s in checks.items() if s == "failed"}
            rows.append((label, statistics.median(times), max(times), sorted(failed)))
    hung_api.close()
    hung_registry.close()
    lines = [
        "## `dagster-uc doctor`",
        "",
        f"`{command_line('benchmarks.bench_doctor')}`; {args.runs} runs per case, "
        f"load average {load_average()}. Wall time of the whole command (all checks).",
        "",
        "| case | median s | max s | failed checks |",
        "| --- | --- | --- | --- |",
        *(
            f"| {label} | {median:.2f} | {worst:.2f} | {', '.join(failed) or '-'} |"
            for label, median, worst, failed in rows
        ),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if args.write:
        write_section("doctor", markdown)


if __name__ == "__main__":
    main()
