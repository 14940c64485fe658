"""How a new location reaches Dagster's webserver: `dagster_reload: reload` vs `restart`.

Two measurements of the same two questions, "deploy finished" (the new code server is ready,
dagster-uc turns to Dagster) -> "location visible in the webserver", and how long the UI is
unavailable meanwhile:

- Emulator: the installed `dagster-uc deployment deploy --skip-build` of a new location in
  each mode. A watcher polls every 20 ms: "deploy finished" is the moment the location's
  code-server Deployment is ready; "visible" is the first moment a ready webserver pod shows the
  location (stack.emulator.dagster.Webservers); "unavailable" is the time with no ready
  webserver pod (in restart mode, the rollout of the webserver Deployment; the emulator's
  pods get ready 0.2 s after they start, a real webserver takes its start-up time, below).
- Real Dagster 1.8.4 on loopback (stack.dagster_real): the workspace file rewritten with a
  new location; reload = the in-pod probe dagster-uc execs (`reload.PROBE`), restart = the
  webserver process stopped and started again (what a pod restart does to the process). A
  watcher polls `/server_info` every 50 ms; "unavailable" is the time it got no answer.
  The kubelet's ConfigMap sync (up to about a minute on a real cluster) is not included: the
  file changes at once here.

    .venv/bin/python -m benchmarks.bench_reload [--runs 3] [--write]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from benchmarks.report import command_line, load_average, write_section  # noqa: E402
from dagster_uc.reload import parse_probe, workspace_locations  # noqa: E402
from dagster_uc.workspace import workspace_document, workspace_yaml  # noqa: E402
from stack.chart import CHART_DIR  # noqa: E402
from stack.dagster_real import LocalDagster, free_port, wait_until  # noqa: E402
from stack.emulator import Emulator, seed_dagster  # noqa: E402
from stack.emulator.dagster import webservers  # noqa: E402
from stack.pytest_plugin import clean_environ  # noqa: E402
from stack.registry import LocalRegistry, push_many_tags  # noqa: E402
from stack.tools import ensure_tools  # noqa: E402

DAGSTER_UC = Path(sys.executable).parent / "dagster-uc"
CONTEXT = "kind-dagster-bench"
WEBSERVER_SELECTOR = "component=dagster-webserver"


class Watcher:
    """Polls `check() -> {"available": bool, ...}` in a thread: sums the time "available" was
    false and records the first moment each other key was true."""

    def __init__(self, check: Callable[[], dict[str, bool]], interval_s: float) -> None:
        self.check, self.interval = check, interval_s
        self.unavailable_s = 0.0
        self.first: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            seen = self.check()
            now = time.perf_counter()
            if not seen.pop("available"):
                self.unavailable_s += now - last
            for key, value in seen.items():
                if value:
                    self.first.setdefault(key, now)
            last = now
            self._stop.wait(self.interval)


def emulator_runs(runs: int) -> dict[str, list[tuple[float, float, float]]]:
    """mode -> [(finished -> visible s, unavailable s, whole deploy s)]."""
    tools = ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="dagster-uc-bench-reload-"))
    (work / "home").mkdir()
    results: dict[str, list[tuple[float, float, float]]] = {"reload": [], "restart": []}
    with Emulator(port=0, ready_delay=0.2) as emu, LocalRegistry() as registry:
        for mode in ("reload", "restart"):
            namespace = f"bench-{mode}-{uuid.uuid4().hex[:6]}"
            seed_dagster(emu, namespace=namespace, dagster_version="1.8.4")
            model = webservers(emu)
            kubeconfig = emu.write_kubeconfig(
                work / f"kc-{mode}", context=CONTEXT, namespace=namespace
            )
            project = work / mode
            project.mkdir()
            config = {
                "code_path": "defs.py",
                "container_registry": registry.host,
                "dagster_version": "1.8.4",
                "kubernetes_context": CONTEXT,
                "namespace": namespace,
                "helm_chart_path": str(CHART_DIR),
                "use_project_name": False,
                "image_prefix": "bench",
                "dagster_reload": mode,
            }
            (project / ".config_user_code_deployments.yaml").write_text(
                yaml.safe_dump({"dev": config})
            )
            env = tools.env(clean_environ(work / "home"))
            env["KUBECONFIG"] = str(kubeconfig)
            for i in range(runs + 1):  # the first one warms up
                name = f"loc-{i}"
                push_many_tags(registry, f"bench/{name}", ["1.8.4-0"])

                def check(
                    name: str = name, namespace: str = namespace, model: Any = model
                ) -> dict[str, bool]:
                    ready = [
                        p
                        for p in emu.list("v1", "pods", namespace, WEBSERVER_SELECTOR)
                        if not p["metadata"].get("deletionTimestamp") and _ready(p)
                    ]
                    servers = emu.list("apps/v1", "deployments", namespace, f"deployment={name}")
                    return {
                        "available": bool(ready),
                        "visible": any(name in model.shown(p) for p in ready),
                        "finished": any(
                            (d.get("status") or {}).get("readyReplicas") for d in servers
                        ),
                    }

                with Watcher(check, 0.02) as watcher:
                    started = time.perf_counter()
                    run_deploy(project, env, name)
                    ended = time.perf_counter()
                    wait_until(f"{name} visible", lambda w=watcher: "visible" in w.first, 60, 0.02)
                    time.sleep(0.5)  # the old pod's end, in restart mode
                if i:
                    results[mode].append(
                        (
                            watcher.first["visible"] - watcher.first["finished"],
                            watcher.unavailable_s,
                            ended - started,
                        )
                    )
    return results


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def run_deploy(project: Path, env: dict[str, str], name: str) -> None:
    done = subprocess.run(
        [str(DAGSTER_UC), "deployment", "deploy", "--skip-build", "-n", name],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"deploy of {name} failed:\n{done.stdout}{done.stderr}")


def real_runs(runs: int) -> dict[str, list[tuple[float, float]]]:
    """mode -> [(file written -> visible s, unavailable s)] on real Dagster."""
    work = Path(tempfile.mkdtemp(prefix="dagster-uc-bench-real-"))
    dagster = LocalDagster(work)
    results: dict[str, list[tuple[float, float]]] = {"reload": [], "restart": []}
    entries: list[dict[str, Any]] = []
    try:
        for i in range(2 * runs + 1):
            name = f"bench--loc-{i}"
            entries.append({"name": name, "port": free_port()})
            dagster.start_code_server(name, entries[-1]["port"])
        current = [entries[0]]
        dagster.workspace.write_text(workspace_yaml({"deployments": current}))
        dagster.start_webserver()
        wait_until("the webserver serving", dagster.webserver_up, 180)
        for i in range(1, 2 * runs + 1):
            mode = "reload" if i % 2 else "restart"
            current = [*current, entries[i]]
            document = workspace_document({"deployments": current})
            location = workspace_locations(document)[-1]

            def check(location: str = location) -> dict[str, bool]:
                try:
                    return {"available": True, "visible": location in shown(dagster)}
                except Exception:
                    return {"available": False}

            with Watcher(check, 0.05) as watcher:
                dagster.workspace.write_text(workspace_yaml({"deployments": current}))
                written = time.perf_counter()
                if mode == "reload":
                    probe_in_webserver(dagster, document)
                else:
                    dagster.restart_webserver()
                wait_until(f"{location} visible", lambda w=watcher: "visible" in w.first, 180, 0.05)
            results[mode].append((watcher.first["visible"] - written, watcher.unavailable_s))
    finally:
        dagster.stop()
    return results


def shown(dagster: LocalDagster) -> list[str]:
    import httpx

    answer = httpx.post(
        dagster.graphql_url,
        json={"query": "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"},
        timeout=2,
        trust_env=False,
    )
    answer.raise_for_status()
    return [e["name"] for e in answer.json()["data"]["workspaceOrError"]["locationEntries"]]


def probe_in_webserver(dagster: LocalDagster, document: dict[str, Any]) -> None:
    done = dagster.run_reload_probe(workspace_locations(document))
    probe = parse_probe(done.stdout)
    if probe.error or not probe.reloaded:
        raise SystemExit(f"the reload probe failed: {done.stdout}{done.stderr}")


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write its docs/benchmarks.md part")
    args = parser.parse_args()
    load_before = load_average()
    emulated = emulator_runs(args.runs)
    real = real_runs(args.runs)
    lines = [
        "## A new location reaches the webserver: reload vs restart",
        "",
        f"`{command_line('benchmarks.bench_reload')}`",
        "",
        "*Finished -> visible*: from the new code server being ready (dagster-uc turns to",
        "Dagster) to the location shown by a ready webserver. *UI unavailable*: time with no",
        "webserver answering. Medians of "
        f"{args.runs} runs after a warm-up (see the module docstring for the method).",
        "",
        "| where | mode | finished -> visible (s) | UI unavailable (s) | whole deploy (s) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for mode in ("reload", "restart"):
        rows = emulated[mode]
        lines.append(
            f"| emulator | {mode} | {median([r[0] for r in rows])} | "
            f"{median([r[1] for r in rows])} | {median([r[2] for r in rows])} |"
        )
    for mode in ("reload", "restart"):
        rows2 = real[mode]
        lines.append(
            f"| real Dagster 1.8.4, loopback | {mode} | {median([r[0] for r in rows2])} | "
            f"{median([r[1] for r in rows2])} | |"
        )
    lines += [
        "",
        "The emulator's rolling update keeps the old webserver pod until the new one is ready",
        "(one replica: maxSurge 1, maxUnavailable 0), so no request finds no ready pod there; the",
        "real-Dagster row is what a webserver process restart costs: no answer for its whole",
        "start-up. On a cluster, reload adds the kubelet's ConfigMap sync to *finished -> visible*",
        "(up to about a minute, see docs/reload.md) and keeps the UI up; restart replaces the pod",
        "(start-up, scheduling, image pull; open UI pages lose their connection) and restarts the",
        "daemon too (schedules, sensors and the run queue pause).",
        "",
        f"Load average (1 min) before/after: {load_before} / {load_average()}.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        out = write_section("reload", text)
        print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
