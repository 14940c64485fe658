"""Listing the tags of a repository with thousands of tags: RegistryClient vs `podman search`.

Runs against the real docker-registry (which answers tag lists in one page) and through
stack.registry.PaginatingProxy, which pages tag lists at 100 per page like Docker Hub, GHCR or
distribution 3. Prints a Markdown table; with --write, also writes its docs/benchmarks.md part.

    .venv/bin/python -m benchmarks.bench_registry_tags [--tags 5000] [--runs 7] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from benchmarks.report import command_line, load_average, write_section  # noqa: E402
from dagster_uc.registry import RegistryClient  # noqa: E402
from stack.registry import LocalRegistry, PaginatingProxy, push_many_tags  # noqa: E402

REPO = "team/app"
CLIENT_SCRIPT = (
    "import sys; from dagster_uc.registry import RegistryClient\n"
    "c = RegistryClient(sys.argv[1]); print(len(c.list_tags(sys.argv[2])))"
)


def timed(fn: Callable[[], int], runs: int) -> tuple[float, int]:
    """Median seconds over ``runs`` and the tag count of the last run."""
    times = []
    count = 0
    for _ in range(runs):
        start = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), count


def client_in_process(host: str) -> Callable[[], int]:
    def run() -> int:
        with RegistryClient(host) as client:
            return len(client.list_tags(REPO))

    return run


def client_process(host: str) -> Callable[[], int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

    def run() -> int:
        out = subprocess.run(
            [sys.executable, "-c", CLIENT_SCRIPT, host, REPO],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        return int(out.stdout.strip())

    return run


def podman_search(host: str) -> Callable[[], int]:
    podman = shutil.which("podman") or "podman"

    def run() -> int:
        out = subprocess.run(
            [
                podman,
                "search",
                "--list-tags",
                "--limit",
                "100000",
                "--tls-verify=false",
                f"{host}/{REPO}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return len(out.stdout.splitlines()) - 1

    return run


def requests_through(
    upstream: str, page: int | None, fn: Callable[[str], Callable[[], int]]
) -> int:
    """HTTP requests one listing makes, counted by a proxy (pass-through when page is None)."""
    with PaginatingProxy(
        upstream, max_page=page or 0, default_page=page, page_tags=page is not None
    ) as proxy:
        fn(proxy.host)()
        return len(proxy.requests)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="write its docs/benchmarks.md part")
    args = parser.parse_args()
    load_before = load_average()

    rows: list[tuple[str, str, float, int, int]] = []
    with LocalRegistry("none") as registry:
        tags = [f"1.7.10-{i}" for i in range(args.tags)]
        push_many_tags(registry, REPO, tags)
        with PaginatingProxy(registry.url, max_page=100, default_page=100) as paged:
            scenarios = [
                ("docker-registry 2.8 (one page)", registry.host, None),
                ("paged, 100 tags per page", paged.host, 100),
            ]
            tools: list[tuple[str, Callable[[str], Callable[[], int]]]] = [
                ("RegistryClient, in process", client_in_process),
                ("RegistryClient, new python process", client_process),
                ("podman search --list-tags", podman_search),
            ]
            for scenario, host, page in scenarios:
                for name, make in tools:
                    seconds, count = timed(make(host), args.runs)
                    assert count == args.tags, (name, scenario, count)
                    requests = requests_through(registry.url, page, make)
                    rows.append((scenario, name, seconds, requests, count))

    podman_version = subprocess.run(
        ["podman", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    lines = [
        f"Listing all tags of a repository with {args.tags:,} tags on a local docker-registry "
        f"(median of {args.runs} runs; {platform.python_implementation()} "
        f"{platform.python_version()}, {podman_version}, {os.cpu_count()} CPUs).",
        "",
        "| registry | client | seconds | HTTP requests | tags |",
        "| --- | --- | ---: | ---: | ---: |",
        *(f"| {s} | {n} | {sec:.3f} | {req} | {cnt} |" for s, n, sec, req, cnt in rows),
    ]
    table = "\n".join(lines)
    print(table)
    if args.write:
        out = write_section(
            "registry",
            "## Registry: listing tags\n\n"
            f"`{command_line('benchmarks.bench_registry_tags')}`\n\n"
            "Lists every tag of one repository through `dagster_uc.registry.RegistryClient`\n"
            "and through `podman search --list-tags`. HTTP requests are counted by a proxy in\n"
            "front of the registry (the paged rows use a proxy that pages tag lists at 100 per\n"
            "page, as Docker Hub, GHCR and distribution 3 do; Debian's docker-registry 2.8\n"
            "answers in one page). The in-process row is what dagster-uc pays inside a command;\n"
            "the new-process row adds Python start-up.\n\n"
            + table
            + f"\n\nLoad average (1 min) before/after: {load_before} / {load_average()}.\n",
        )
        print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
