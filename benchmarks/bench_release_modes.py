"""Shared vs per-location Helm releases (`helm_release_mode`, docs/release-modes.md).

1. Redeploy cost vs locations registered: N locations registered (the values ConfigMap holds
   N entries; in shared mode the shared release renders all N), then
   `deployment deploy --skip-build -n loc-0`; wall time and every API request the emulator
   counted (Helm's too), Helm 3 and Helm 4. In per-location mode the other N-1 locations are
   entries of the values ConfigMap only (their own releases do not take part in a redeploy of
   loc-0: Helm reads one release by its labels).
2. K deploys of different locations at once, pods ready 10 s after they start (the
   emulator's ready_delay): wall time until the last one finishes.
3. A namespace with N locations in per-location mode (N releases installed): `deployment
   list`, `deployment prune --dry-run`, `deployment delete --all --yes`.

    .venv/bin/python -m benchmarks.bench_release_modes [--sizes 1,10,50,200] [--runs 2]
        [--parallel 1,3,6] [--namespace-size 200] [--write]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from benchmarks.report import command_line, load_average, write_section  # noqa: E402
from dagster_uc.release_mode import location_release_name  # noqa: E402
from dagster_uc.workspace import workspace_yaml  # noqa: E402
from stack.chart import CHART_DIR  # noqa: E402
from stack.emulator import Emulator, seed_dagster  # noqa: E402
from stack.pytest_plugin import clean_environ  # noqa: E402
from stack.registry import LocalRegistry, push_many_tags  # noqa: E402
from stack.tools import ensure_tools  # noqa: E402

DAGSTER_UC = Path(sys.executable).parent / "dagster-uc"
CONTEXT = "kind-dagster-bench"
SHARED = "dagster-user-code"
VALUES_CM = "dagster-user-deployments-values-yaml"
WORKSPACE_CM = "dagster-workspace-yaml"


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    return elapsed


class Namespace:
    """A seeded namespace, a project directory configured for it, and the env to run in."""

    def __init__(
        self,
        emu: Emulator,
        registry: LocalRegistry,
        work: Path,
        env: dict[str, str],
        mode: str,
        helm_bin: Path,
    ) -> None:
        self.emu = emu
        self.name = f"bench-{uuid.uuid4().hex[:8]}"
        seed_dagster(emu, namespace=self.name, dagster_version="1.8.4")
        self.project = work / self.name
        self.project.mkdir()
        self.env = dict(env)
        self.env["KUBECONFIG"] = str(
            emu.write_kubeconfig(work / f"kc-{self.name}", context=CONTEXT, namespace=self.name)
        )
        self.env["PATH"] = f"{helm_bin}:{self.env['PATH']}"
        self.mode = mode
        config = {
            "code_path": "defs.py",
            "container_registry": registry.host,
            "dagster_version": "1.8.4",
            "kubernetes_context": CONTEXT,
            "namespace": self.name,
            "helm_chart_path": str(CHART_DIR),
            "use_project_name": False,
            "image_prefix": "bench",
            "helm_release_mode": mode,
            "dagster_reload": "restart",
        }
        (self.project / ".config_user_code_deployments.yaml").write_text(
            yaml.safe_dump({"dev": config})
        )

    def uc(self, *args: str) -> float:
        return run([str(DAGSTER_UC), *args], self.project, self.env)

    def helm(self, *args: str) -> None:
        cmd = ["helm", *args, "-n", self.name, "--kube-context", CONTEXT]
        subprocess.run(cmd, env=self.env, check=True, capture_output=True)

    def register(self, size: int, *, releases: bool) -> None:
        """loc-0 deployed for real; loc-1..N-1 added to the values ConfigMap (copies of
        loc-0's entry) and the workspace; in shared mode the shared release is upgraded to
        render all of them, in per-location mode each gets its release when `releases`."""
        self.uc("deployment", "deploy", "--skip-build", "-n", "loc-0")
        configmap = self.emu.get("v1", "configmaps", self.name, VALUES_CM)
        assert configmap is not None
        values = yaml.safe_load(configmap["data"]["yaml"])
        first = values["deployments"][0]
        for i in range(1, size):
            entry = copy.deepcopy(first)
            entry["name"] = f"loc-{i}"
            values["deployments"].append(entry)
        text = yaml.safe_dump(values, sort_keys=False)
        self.emu.patch("v1", "configmaps", self.name, VALUES_CM, {"data": {"yaml": text}})
        self.emu.patch(
            "v1",
            "configmaps",
            self.name,
            WORKSPACE_CM,
            {"data": {"workspace.yaml": workspace_yaml(values)}},
        )
        values_file = self.project / "values.yaml"
        if self.mode == "shared":
            values_file.write_text(text)
            self.helm("upgrade", "--install", SHARED, str(CHART_DIR), "-f", str(values_file))
            return
        if not releases:
            return

        def install(entry: dict[str, Any]) -> None:
            release = location_release_name(SHARED, entry["name"])
            own = {
                **{k: v for k, v in values.items() if k != "deployments"},
                "deployments": [entry],
            }
            path = self.project / f"values-{entry['name']}.yaml"
            path.write_text(yaml.safe_dump(own))
            self.helm("upgrade", "--install", release, str(CHART_DIR), "-f", str(path))

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(install, values["deployments"][1:]))


def helm_dirs(work: Path) -> dict[str, Path]:
    tools = ensure_tools()
    dirs = {}
    for label, binary in (("Helm 3", tools.helm3), ("Helm 4", tools.helm4)):
        directory = work / label.replace(" ", "")
        directory.mkdir(parents=True)
        (directory / "helm").symlink_to(binary)
        dirs[label] = directory
    return dirs


def redeploy_rows(
    registry: LocalRegistry,
    work: Path,
    env: dict[str, str],
    sizes: list[int],
    runs: int,
    helms: list[str],
    modes: list[str],
) -> list[tuple[str, str, int, float, float]]:
    rows = []
    for helm_label, helm_bin in helm_dirs(work / "redeploy").items():
        if helm_label not in helms:
            continue
        for mode in modes:
            for size in sizes:
                # A fresh API server per case: the emulator's controllers and lists cost more
                # with every object of earlier cases, which a real API server's namespaced
                # indexes do not.
                with Emulator(port=0, ready_delay=0.2) as emu:
                    ns = Namespace(emu, registry, work, env, mode, helm_bin)
                    ns.register(size, releases=False)
                    times, requests = [], []
                    for _ in range(runs):
                        emu.reset_counts()
                        times.append(ns.uc("deployment", "deploy", "--skip-build", "-n", "loc-0"))
                        requests.append(sum(emu.request_counts.values()))
                row = (
                    helm_label,
                    mode,
                    size,
                    statistics.median(times),
                    statistics.median(requests),
                )
                print(row, flush=True)
                rows.append(row)
    return rows


def parallel_rows(
    registry: LocalRegistry, work: Path, env: dict[str, str], counts: list[int]
) -> list[tuple[str, int, float]]:
    rows = []
    helm_bin = helm_dirs(work / "parallel")["Helm 4"]
    with Emulator(port=0, ready_delay=10.0) as emu:
        for mode in ("per-location", "shared"):
            for count in counts:
                ns = Namespace(emu, registry, work, env, mode, helm_bin)
                for i in range(count):  # registered first: a redeploy of each, at once
                    ns.uc("deployment", "deploy", "--skip-build", "-n", f"loc-{i}")
                finished: list[float] = []
                started = time.perf_counter()

                def one(
                    i: int,
                    ns: Namespace = ns,
                    finished: list[float] = finished,
                    started: float = started,
                ) -> None:
                    ns.uc("deployment", "deploy", "--skip-build", "-n", f"loc-{i}")
                    finished.append(time.perf_counter() - started)

                threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                row = (mode, count, max(finished))
                print(row, flush=True)
                rows.append(row)
    return rows


def namespace_rows(
    registry: LocalRegistry, work: Path, env: dict[str, str], size: int
) -> list[tuple[str, float]]:
    with Emulator(port=0, ready_delay=0.2) as emu:
        return _namespace_rows(emu, registry, work, env, size)


def _namespace_rows(
    emu: Emulator, registry: LocalRegistry, work: Path, env: dict[str, str], size: int
) -> list[tuple[str, float]]:
    helm_bin = helm_dirs(work / "namespace")["Helm 4"]
    ns = Namespace(emu, registry, work, env, "per-location", helm_bin)
    ns.register(size, releases=True)
    remote = work / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    for args in (
        ["init", "-q", "-b", "main"],
        ["remote", "add", "origin", str(remote)],
        ["add", "-A"],
        ["-c", "user.email=b@x", "-c", "user.name=b", "commit", "-qm", "init"],
        ["push", "-q", "origin", "main"],
    ):
        subprocess.run(["git", *args], cwd=ns.project, env=ns.env, check=True)
    rows = [
        ("deployment list", ns.uc("deployment", "list")),
        ("deployment prune --dry-run", ns.uc("deployment", "prune", "--dry-run")),
        ("deployment delete --all --yes", ns.uc("deployment", "delete", "--all", "--yes")),
    ]
    print(rows, flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,50,200")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--parallel", default="1,3,6")
    parser.add_argument("--namespace-size", type=int, default=200)
    parser.add_argument("--helms", default="3,4", help="Helm majors of the redeploy table")
    parser.add_argument("--modes", default="per-location,shared")
    parser.add_argument("--write", action="store_true", help="write its docs/benchmarks.md part")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    counts = [int(s) for s in args.parallel.split(",") if s]
    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="dagster-uc-bench-modes-"))
    (work / "home").mkdir()
    env = ensure_tools().env(clean_environ(work / "home"))
    with LocalRegistry() as registry:
        push_many_tags(registry, "bench/loc-0", ["1.8.4-0"])
        for i in range(1, max([*counts, 1])):
            push_many_tags(registry, f"bench/loc-{i}", ["1.8.4-0"])
        helms = [f"Helm {h}" for h in args.helms.split(",") if h]
        modes = [m for m in args.modes.split(",") if m]
        redeploy = (
            redeploy_rows(registry, work, env, sizes, args.runs, helms, modes) if sizes else []
        )
        parallel = parallel_rows(registry, work, env, counts) if counts else []
        big = (
            namespace_rows(registry, work, env, args.namespace_size) if args.namespace_size else []
        )
    lines = [
        "## Release modes: shared vs per-location",
        "",
        f"`{command_line('benchmarks.bench_release_modes')}`",
        "",
        "Emulator + real Helm + real registry, chart from the local directory, "
        "`dagster_reload: restart`.",
    ]
    if redeploy:
        lines += [
            "",
            "### Redeploy (`--skip-build -n loc-0`) vs locations registered",
            "",
            f"Median of {args.runs} runs; API requests include Helm's. Goal: per-location at "
            "the largest size within 1.3x its cost at 1, requests flat.",
            "",
            "| Helm | mode | locations | wall time (s) | API requests |",
            "| --- | --- | ---: | ---: | ---: |",
            *(f"| {h} | {m} | {n} | {t:.2f} | {r:.0f} |" for h, m, n, t, r in redeploy),
        ]
        for helm_label in sorted({r[0] for r in redeploy}):
            own = [r for r in redeploy if r[0] == helm_label and r[1] == "per-location"]
            if len(own) >= 2:
                ratio = own[-1][3] / own[0][3]
                lines.append(
                    f"\n{helm_label}, per-location: {own[-1][2]} locations cost {ratio:.2f}x "
                    f"the time at {own[0][2]} ({'goal met' if ratio <= 1.3 else '**goal missed**'}); "
                    f"requests {own[0][4]:.0f} -> {own[-1][4]:.0f}."
                )
    if parallel:
        lines += [
            "",
            "### Deploys of different locations at once (pods ready 10 s after start)",
            "",
            "Helm 4; wall time until the last deploy finished. Goal: 6 at once within 1.5x one.",
            "",
            "| mode | deploys at once | wall time of the last (s) |",
            "| --- | ---: | ---: |",
            *(f"| {m} | {k} | {t:.1f} |" for m, k, t in parallel),
        ]
        own = {k: t for m, k, t in parallel if m == "per-location"}
        if 1 in own and max(own) > 1:
            ratio = own[max(own)] / own[1]
            lines.append(
                f"\nper-location: {max(own)} at once took {ratio:.2f}x one "
                f"({'goal met' if ratio <= 1.5 else '**goal missed**'}). No deploy waits for "
                "another's rollout; what is left is CPU: this machine's 2 cores run every "
                "deploy's dagster-uc and Helm processes and the API server at once."
            )
    if big:
        lines += [
            "",
            f"### A namespace with {args.namespace_size} locations (per-location, Helm 4)",
            "",
            "| command | wall time (s) |",
            "| --- | ---: |",
            *(f"| `dagster-uc {c}` | {t:.1f} |" for c, t in big),
            "",
            "`delete --all` writes the state once under the global lock, then removes the "
            "releases with one `helm uninstall` per batch of up to 16 (each release under its "
            "location's Lease), four Helm processes at once; one Helm process per release "
            "cost about twice as much.",
        ]
    lines += ["", f"Load average (1 min) before/after: {load_before} / {load_average()}."]
    text = "\n".join(lines)
    print(text)
    if args.write:
        out = write_section("release-modes", text)
        print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
