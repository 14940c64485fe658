"""Run every benchmark with modest sizes and write docs/benchmarks.md (`make bench`).

    .venv/bin/python -m benchmarks.run

Each benchmark runs as its own process with `--write` and replaces its section of
docs/benchmarks.md; this script writes the intro (machine, tool versions, how to reproduce).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from benchmarks.report import DOC, load_average, machine, tool_version, write_section  # noqa: E402
from stack.tools import ensure_tools  # noqa: E402

BENCHMARKS: list[list[str]] = [
    ["benchmarks.bench_deploy", "--sizes", "1,10,30", "--runs", "3"],
    ["benchmarks.bench_original", "--sizes", "1,10,30", "--runs", "3"],
    ["benchmarks.bench_registry_tags", "--tags", "5000", "--runs", "5"],
    ["benchmarks.bench_reload", "--runs", "3"],
    ["benchmarks.bench_doctor", "--runs", "3"],
    [
        "benchmarks.bench_release_modes",
        *("--sizes", "1,10,50,200", "--runs", "3", "--parallel", "1,3,6"),
        *("--namespace-size", "200"),
    ],
]


def intro() -> str:
    tools = ensure_tools()
    helm3 = tool_version([str(tools.helm3), "version", "--short"])
    helm4 = tool_version([str(tools.helm4), "version", "--short"])
    return "\n".join(
        [
            "Speed and memory goals of PRODUCT.md §6, measured on the local stack: the",
            "in-repo Kubernetes API emulator (`stack.emulator`), a real docker-registry, real",
            "Helm and podman. Reproduce everything with `make bench` (or",
            "`.venv/bin/python -m benchmarks.run`); each section names the command that wrote it.",
            "",
            f"- Machine: {machine()}",
            f"- Tools: {tool_version(['podman', '--version'])}, Helm {helm3} and {helm4}",
            f"- Written: {time.strftime('%Y-%m-%d %H:%M %Z')}, load average (1 min) at the start "
            f"{load_average()}",
            "",
            "Caveat: this is a shared 2-core machine and other people's test runs may overlap",
            "a benchmark; every figure is a median and each section records the load average",
            "before and after it. Compare rows within a table, not absolute seconds across runs.",
        ]
    )


def main() -> int:
    write_section("intro", intro())
    for module, *args in BENCHMARKS:
        print(f"== {module} {' '.join(args)}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", module, *args, "--write"], cwd=ROOT, check=False
        )
        if done.returncode != 0:
            print(f"{module} failed with exit code {done.returncode}", file=sys.stderr)
            return done.returncode
        print(f"== {module}: {time.perf_counter() - started:.0f} s", flush=True)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
