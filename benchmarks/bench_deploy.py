"""A deploy's own control-plane work, and how it grows with the deployments already there.

For N existing deployments, runs the installed `dagster-uc deployment deploy --skip-build`
(no build, no push; the pod start-up is the emulator's fixed 0.2 s) as a redeploy of one
location and records the wall time and the Kubernetes API requests the emulator counted,
against the request budget of a redeploy (`STATE_BUDGET`, `TOTAL_BUDGET`; these were once
asserted by an end-to-end test, but a count that includes Helm's requests is a cost to
watch, not a behaviour). Also times `dagster-uc --help` and `show-config`.

    .venv/bin/python -m benchmarks.bench_deploy [--sizes 1,10,50] [--runs 3] [--write]
"""

from __future__ import annotations

import argparse
import collections
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
from stack.registry import LocalRegistry, push_many_tags  # noqa: E402
from stack.tools import ensure_tools  # noqa: E402

DAGSTER_UC = Path(sys.executable).parent / "dagster-uc"
CONTEXT = "kind-dagster-bench"
# What dagster-uc keeps in the cluster: the values and workspace ConfigMaps and the lock.
STATE_OBJECTS = (
    "configmaps/dagster-user-deployments-values-yaml",
    "configmaps/dagster-workspace-yaml",
    "leases/dagster-uc-semaphore",
)
STATE_BUDGET = 7  # requests on STATE_OBJECTS in one redeploy
TOTAL_BUDGET = 80  # all requests of one redeploy with one deployment registered, Helm's too


def state_requests(counts: collections.Counter[tuple[str, str]]) -> int:
    return sum(n for (_verb, path), n in counts.items() if path.endswith(STATE_OBJECTS))


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    return elapsed


def startup(env: dict[str, str], cwd: Path, runs: int) -> dict[str, float]:
    return {
        label: statistics.median(run([str(DAGSTER_UC), *args], cwd, env) for _ in range(runs))
        for label, args in (("--help", ["--help"]), ("show-config", ["show-config"]))
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write its docs/benchmarks.md part")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load_before = load_average()
    tools = ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="dagster-uc-bench-"))
    rows = []
    with Emulator(port=0, ready_delay=0.2) as emu, LocalRegistry() as registry:
        for size in sizes:
            namespace = f"bench-{size}-{uuid.uuid4().hex[:6]}"
            seed_dagster(emu, namespace=namespace, dagster_version="1.8.4")
            kubeconfig = emu.write_kubeconfig(
                work / f"kc-{size}", context=CONTEXT, namespace=namespace
            )
            project = work / f"p{size}"
            project.mkdir()
            (project / ".config_user_code_deployments.yaml").write_text(
                yaml.safe_dump(
                    {
                        "dev": {
                            "code_path": "defs.py",
                            "container_registry": registry.host,
                            "dagster_version": "1.8.4",
                            "kubernetes_context": CONTEXT,
                            "namespace": namespace,
                            "helm_chart_path": str(CHART_DIR),
                            "use_project_name": False,
                            "image_prefix": "bench",
                        }
                    }
                )
            )
            (work / "home").mkdir(exist_ok=True)
            env = tools.env(clean_environ(work / "home"))
            env["KUBECONFIG"] = str(kubeconfig)
            names = [f"loc-{i}" for i in range(size)]
            for name in names:
                push_many_tags(registry, f"bench/{name}", ["1.8.4-0"])
            for name in names:  # the deployments already registered
                run(
                    [str(DAGSTER_UC), "deployment", "deploy", "--skip-build", "-n", name],
                    project,
                    env,
                )
            times, counts, state = [], [], []
            for _ in range(args.runs):
                emu.reset_counts()
                times.append(
                    run(
                        [str(DAGSTER_UC), "deployment", "deploy", "--skip-build", "-n", names[0]],
                        project,
                        env,
                    )
                )
                counts.append(
                    collections.Counter(verb for verb, _path in emu.request_counts.elements())
                )
                state.append(state_requests(emu.request_counts))
            total = statistics.median(sum(c.values()) for c in counts)
            verbs = counts[-1]
            rows.append(
                (
                    size,
                    statistics.median(times),
                    total,
                    statistics.median(state),
                    dict(sorted(verbs.items())),
                )
            )
        start = startup(env, work / "p1", 10)
    lines = [
        "## Deploy control plane (redeploy with --skip-build)",
        "",
        f"`{command_line('benchmarks.bench_deploy')}`",
        "",
        "Emulator + real Helm 4 + real registry, chart from the local directory; N deployments",
        "registered, then `deployment deploy --skip-build -n loc-0` redeploys one of them;",
        f"median of {args.runs} runs; the emulator's pods get ready 0.2 s after they start.",
        "API requests include Helm's own; *state* counts those on the values and workspace",
        f"ConfigMaps and the Lease. Budget of a redeploy: at most {STATE_BUDGET} state requests,",
        f"fewer than {TOTAL_BUDGET} requests in all with one deployment registered.",
        "",
        "| deployments registered | wall time (s) | API requests | state | budget | by verb |",
        "| ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for size, seconds, total, in_state, by_verb in rows:
        within = in_state <= STATE_BUDGET and (size > 1 or total < TOTAL_BUDGET)
        verdict = "within" if within else "**over**"
        lines.append(
            f"| {size} | {seconds:.2f} | {total:.0f} | {in_state:.0f} | {verdict} | {by_verb} |"
        )
    lines += [
        "",
        "## Start-up (median of 10 runs)",
        "",
        "| command | seconds |",
        "| --- | ---: |",
        *(f"| `dagster-uc {label}` | {seconds:.3f} |" for label, seconds in start.items()),
        "",
        f"Load average (1 min) before/after: {load_before} / {load_average()}.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        out = write_section("deploy", text)
        print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
