"""Our `dagster-uc` against the original dagster-uc 0.5.6 (PyPI), on the same cluster.

One Kubernetes API emulator (seeded like a Dagster install), one docker-registry, one chart
(pushed to the registry as OCI; both tools install it from there) and Helm 3 for both. For N
deployments already registered, both tools redeploy the same location with `--skip-build`,
interleaved run by run. Per run: wall time, CPU time and peak RSS of the command and what it
ran (wait4), peak RSS of the CLI process itself (VmHWM sampled from /proc), the Kubernetes API
requests the emulator counted (including Helm's) and the Helm invocations (a `helm` shim on
PATH logs them).

    .venv/bin/python -m benchmarks.bench_original [--sizes 1,10,30] [--runs 3] [--write]
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from benchmarks.report import command_line, load_average, write_section  # noqa: E402
from stack.emulator import Emulator, seed_dagster  # noqa: E402
from stack.original import (  # noqa: E402
    ORIGINAL_VERSION,
    ensure_original,
    original_config,
    publish_chart,
    write_registries_conf,
)
from stack.registry import LocalRegistry, push_many_tags  # noqa: E402
from stack.tools import ensure_tools  # noqa: E402

OURS = Path(sys.executable).parent / "dagster-uc"
CONTEXT = "kind-dagster-bench"
DAGSTER_VERSION = "1.8.4"
PREFIX = "bench"
GUI = "http://dagster.example"
TARGET = "loc-0"
ORIGINAL_SLEEP_S = 5.0  # the original's unconditional `time.sleep(5)` after its rollout
CONTROL_PLANE_DONE = "Your assets:"  # the original prints this after Helm and the lock


@dataclass
class Sample:
    seconds: float
    cpu_seconds: float
    rss_tree_kib: int
    rss_cli_kib: int
    requests: collections.Counter[str]
    paths: collections.Counter[tuple[str, str]]
    by_client: collections.Counter[str]
    helm: list[str]
    marks: dict[str, float] = field(default_factory=dict)


class AgentCounter(logging.Handler):
    """API requests by client, from the emulator's aiohttp access log (its default format
    ends with the User-Agent): Helm's own requests vs everything else (the CLI)."""

    LINE = re.compile(r'"(\S+) (\S+) HTTP/[\d.]+" \d+ \S+ "[^"]*" "([^"]*)"\s*$')

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: collections.Counter[str] = collections.Counter()
        self.agents: set[str] = set()
        logger = logging.getLogger("aiohttp.access")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        match = self.LINE.search(record.getMessage())
        if match is not None:
            agent = match.group(3)
            self.agents.add(agent)
            self.counts["helm" if "helm" in agent.lower() else "cli"] += 1

    def settle(self, total: int, timeout: float = 2.0) -> collections.Counter[str]:
        """The split once all `total` requests are logged (a log line follows its response)."""
        deadline = time.monotonic() + timeout
        while sum(self.counts.values()) < total and time.monotonic() < deadline:
            time.sleep(0.01)
        return collections.Counter(self.counts)


def _vm_hwm_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def measure(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str],
    emu: Emulator,
    helm_log: Path,
    agents: AgentCounter,
) -> Sample:
    """Run `cmd` to its end; what it cost (see the module docstring)."""
    helm_log.write_text("")
    emu.reset_counts()
    agents.counts.clear()
    lines: list[tuple[float, str]] = []
    peak = [0]
    done = threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )

    def sample_rss() -> None:
        while not done.is_set():
            hwm = _vm_hwm_kib(proc.pid)
            if hwm is None:
                return
            peak[0] = max(peak[0], hwm)
            done.wait(0.02)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - start, line))
    done.set()
    sampler.join()
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        text = "".join(line for _t, line in lines)
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text}")
    marks = {}
    for at, line in lines:
        if CONTROL_PLANE_DONE in line and CONTROL_PLANE_DONE not in marks:
            marks[CONTROL_PLANE_DONE] = at
    return Sample(
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        rss_tree_kib=usage.ru_maxrss,
        rss_cli_kib=peak[0],
        requests=collections.Counter(verb for verb, _path in emu.request_counts.elements()),
        paths=collections.Counter(emu.request_counts),
        by_client=agents.settle(sum(emu.request_counts.values())),
        helm=[args for args in helm_log.read_text().splitlines() if args],
        marks=marks,
    )


def helm_shim(bin_dir: Path, real_helm: Path, log: Path) -> None:
    """A `helm` first on PATH that logs its arguments, then runs the real Helm."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "helm"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real_helm}" "$@"\n')
    shim.chmod(0o755)


def helm_verbs(invocations: list[str]) -> str:
    """`upgrade, show chart` from the logged argument lines."""
    verbs = []
    for args in invocations:
        words = [w for w in args.split() if not w.startswith("-")]
        verbs.append(" ".join(words[:2]) if words[:1] == ["show"] else (words or ["?"])[0])
    return ", ".join(verbs)


def summarize(samples: list[Sample]) -> dict[str, object]:
    median = statistics.median
    return {
        "seconds": median(s.seconds for s in samples),
        "control": (
            median(s.marks[CONTROL_PLANE_DONE] for s in samples)
            if all(CONTROL_PLANE_DONE in s.marks for s in samples)
            else None
        ),
        "cpu": median(s.cpu_seconds for s in samples),
        "rss_cli": median(s.rss_cli_kib for s in samples) / 1024,
        "rss_tree": median(s.rss_tree_kib for s in samples) / 1024,
        "requests": median(sum(s.requests.values()) for s in samples),
        "cli_requests": median(s.by_client["cli"] for s in samples),
        "helm_requests": median(s.by_client["helm"] for s in samples),
        "verbs": dict(sorted(samples[-1].requests.items())),
        "helm": median(len(s.helm) for s in samples),
        "helm_verbs": helm_verbs(samples[-1].helm),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,30")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write its docs/benchmarks.md part")
    parser.add_argument(
        "--paths", action="store_true", help="print the API requests by path (last run) to stderr"
    )
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    load_before = load_average()
    tools = ensure_tools()
    original = ensure_original()
    work = Path(tempfile.mkdtemp(prefix="dagster-uc-bench-orig-"))
    helm_log = work / "helm.log"
    helm_shim(work / "bin", tools.helm3, helm_log)
    agents = AgentCounter()
    results: list[tuple[int, str, dict[str, object]]] = []
    with Emulator(port=0, ready_delay=0.2) as emu, LocalRegistry() as registry:
        namespace = f"bench-orig-{uuid.uuid4().hex[:6]}"
        seed_dagster(emu, namespace=namespace, dagster_version=DAGSTER_VERSION)
        kubeconfig = emu.write_kubeconfig(work / "kubeconfig", context=CONTEXT, namespace=namespace)
        chart_path = publish_chart(work / "chart", registry.host, f"{PREFIX}-charts")
        project = work / "project"
        project.mkdir()
        (project / ".config_user_code_deployments.yaml").write_text(
            yaml.safe_dump(
                {
                    "dev": {
                        "code_path": "defs.py",
                        "container_registry": registry.host,
                        "dagster_version": DAGSTER_VERSION,
                        "kubernetes_context": CONTEXT,
                        "namespace": namespace,
                        "container_registry_chart_path": chart_path,
                        "use_project_name": False,
                        "image_prefix": PREFIX,
                        "dagster_gui_url": GUI,
                    }
                }
            )
        )
        original_file = work / "original-config.yaml"
        original_file.write_text(
            yaml.safe_dump(
                original_config(
                    registry=registry.host,
                    image_prefix=PREFIX,
                    namespace=namespace,
                    kubernetes_context=CONTEXT,
                    chart_path=chart_path,
                    code_path="defs.py",
                    dagster_version=DAGSTER_VERSION,
                    dagster_gui_url=GUI,
                )
            )
        )
        env = tools.env(dict(os.environ))
        env["PATH"] = f"{work / 'bin'}{os.pathsep}{env['PATH']}"
        env["KUBECONFIG"] = str(kubeconfig)
        env["CONTAINERS_REGISTRIES_CONF"] = str(
            write_registries_conf(work / "registries.conf", registry.host)
        )
        ours_cmd = [str(OURS), "deployment", "deploy", "--skip-build", "-n", TARGET]
        original_cmd = [
            str(original),
            "-c",
            str(original_file),
            "deployment",
            "deploy",
            "--skip-build",
            "-n",
            TARGET,
        ]
        registered = 0
        for size in sizes:
            while registered < size:  # register more deployments with our tool
                name = f"loc-{registered}"
                push_many_tags(registry, f"{PREFIX}/{name}", [f"{DAGSTER_VERSION}-0"])
                measure(
                    [str(OURS), "deployment", "deploy", "--skip-build", "-n", name],
                    project,
                    env,
                    emu,
                    helm_log,
                    agents,
                )
                registered += 1
            if size == sizes[0]:  # one unmeasured warm-up each (caches, Helm's OCI pull)
                measure(ours_cmd, project, env, emu, helm_log, agents)
                measure(original_cmd, project, env, emu, helm_log, agents)
            ours, theirs = [], []
            for _ in range(args.runs):  # interleaved, so load changes hit both alike
                ours.append(measure(ours_cmd, project, env, emu, helm_log, agents))
                theirs.append(measure(original_cmd, project, env, emu, helm_log, agents))
            if args.paths:
                for label, samples in (("ours", ours), ("original", theirs)):
                    print(f"N={size} {label}:", file=sys.stderr)
                    for (verb, path), n in sorted(samples[-1].paths.items()):
                        print(f"  {n:4d} {verb:6s} {path}", file=sys.stderr)
            results.append((size, "ours", summarize(ours)))
            results.append((size, f"original {ORIGINAL_VERSION}", summarize(theirs)))
            print(f"N={size}: done", file=sys.stderr)
    text = render(results, args.runs, load_before, load_average())
    print(text)
    if args.write:
        out = write_section("original", text)
        print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


def render(
    results: list[tuple[int, str, dict[str, object]]], runs: int, before: str, after: str
) -> str:
    lines = [
        f"## Redeploy: ours vs the original dagster-uc {ORIGINAL_VERSION}",
        "",
        f"`{command_line('benchmarks.bench_original')}`",
        "",
        "The same emulated cluster, registry, OCI chart and Helm 3 for both tools; N",
        "deployments registered (by our tool), then both redeploy one of them with",
        f"`deployment deploy --skip-build -n {TARGET}`, interleaved; medians of {runs} runs after",
        "one warm-up each. Emulated pods get ready 0.2 s after they start. *Wall* is the whole",
        "command; *control plane* is when the original printed its UI link (after Helm and its",
        "lock, before its fixed 5 s sleep and its pod/log wait). *CPU* and *RSS tree* come from",
        "wait4 (the CLI plus the Helm/podman/git processes it ran; RSS is the largest of them);",
        "*RSS CLI* is the Python process alone. API requests are split by User-Agent into",
        "the CLI's own and Helm's (from the emulator's access log).",
        "",
        "| N | tool | wall (s) | control plane (s) | CPU (s) | RSS CLI (MiB) "
        "| RSS tree (MiB) | API requests | by the CLI | by Helm | Helm runs "
        "| API requests by verb |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for size, tool, r in results:
        control = "—" if r["control"] is None else f"{r['control']:.2f}"
        lines.append(
            f"| {size} | {tool} | {r['seconds']:.2f} | {control} | {r['cpu']:.2f} "
            f"| {r['rss_cli']:.0f} | {r['rss_tree']:.0f} | {r['requests']:.0f} "
            f"| {r['cli_requests']:.0f} | {r['helm_requests']:.0f} "
            f"| {r['helm']:.0f} ({r['helm_verbs']}) | {r['verbs']} |"
        )
    lines += [
        "",
        "What differs by design: the original runs `helm upgrade --install --wait --wait-for-jobs`",
        "on the whole release (Helm polls every deployment of the release until all are ready),",
        "then sleeps 5 s, lists the location's pods and follows their logs until the code server",
        "started; it also restarts the Dagster webserver and daemon whenever it does a full",
        "deploy (new location, `--force`, CI/CD, or its pod is missing). A plain redeploy like",
        "this one skips that restart in both tools. Ours runs `helm upgrade` without `--wait`",
        "and waits only for the one location's rollout through the API. *By Helm* grows",
        "with N for both tools: `helm upgrade` reads every object of the release (Helm 3",
        "GETs each Deployment, Service and ConfigMap about three times); *by the CLI* is",
        "what each tool does itself.",
        "",
        f"Load average (1 min) before/after: {before} / {after} — a shared 2-core machine;",
        "other people's test runs may have overlapped, which is why these are medians.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
