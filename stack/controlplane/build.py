"""Build a real Kubernetes control plane from the Go module proxy, cached under `.cache/`.

Three throwaway Go modules, one per upstream project, so that their dependencies never have to
agree on one version:

- `kube`: requires `k8s.io/kubernetes` at `KUBERNETES`. Kubernetes lists its staging modules
  (`k8s.io/api`, `k8s.io/apiserver`, `k8s.io/client-go`, ...) at `v0.0.0` and relies on
  `replace` directives that point into its own repository, which a dependent module does not
  inherit. The list of those modules is read from the `go.mod` the proxy serves for that
  release, and each is replaced by its published `v0.<minor>.<patch>`. Builds
  `kube-apiserver`, `kube-controller-manager` and `kube-scheduler` with the version stamped
  into `k8s.io/component-base/version` (kubectl and Helm read it from `/version`).
- `etcd`: a `main` package calling `etcdmain.Main` of `go.etcd.io/etcd/server/v3` (the
  server module has no `main` of its own; upstream's is in the root module, which pins the
  whole repository).
- `kwok`: `sigs.k8s.io/kwok/cmd/kwok`, the fake kubelet.

The binaries land in `.cache/controlplane/<stamp>/bin` where the stamp is derived from the
pinned versions and the Go version: changing a pin builds anew, everything else reuses the
cache. Go's own module and build caches make a rebuild after a pin change incremental.

`python -m stack.controlplane.build` builds (or reuses) and prints the bin directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache" / "controlplane"

KUBERNETES = "v1.37.2"
ETCD = "v3.6.16"
KWOK = "v0.8.0"

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
BINARIES = (*KUBE_COMMANDS, "etcd", "kwok")

_STAGING = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s+v0\.0\.0\s*$", re.MULTILINE)


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class ControlPlaneBinaries:
    bin_dir: Path
    kubernetes_version: str

    def path(self, name: str) -> Path:
        return self.bin_dir / name


def staging_version(kubernetes_version: str) -> str:
    """`v1.37.2` -> `v0.37.2`: the published version of the staging modules of a release."""
    match = re.fullmatch(r"v1\.(\d+)\.(\d+)", kubernetes_version)
    if match is None:
        raise BuildError(f"not a Kubernetes release version: {kubernetes_version}")
    return f"v0.{match.group(1)}.{match.group(2)}"


def staging_modules(kubernetes_go_mod: str) -> list[str]:
    """The modules Kubernetes requires at the placeholder `v0.0.0` (its staging repositories)."""
    return sorted(set(_STAGING.findall(kubernetes_go_mod)))


def go_directive(go_mod: str) -> str:
    match = re.search(r"^go\s+(\S+)\s*$", go_mod, re.MULTILINE)
    return match.group(1) if match else "1.26.0"


def kube_go_mod(kubernetes_version: str, kubernetes_go_mod: str) -> str:
    """The throwaway module's go.mod: Kubernetes plus one `replace` per staging module."""
    target = staging_version(kubernetes_version)
    lines = [
        "module dagsteruc.local/controlplane/kube",
        "",
        f"go {go_directive(kubernetes_go_mod)}",
        "",
        f"require k8s.io/kubernetes {kubernetes_version}",
        "",
        "replace (",
        *(f"\t{module} => {module} {target}" for module in staging_modules(kubernetes_go_mod)),
        ")",
        "",
    ]
    return "\n".join(lines)


def version_ldflags(kubernetes_version: str) -> str:
    major, minor = kubernetes_version.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    return " ".join(
        [
            "-s",
            "-w",
            f"-X {pkg}.gitVersion={kubernetes_version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    )


ETCD_MAIN = """\
// The etcd server: the server module has no main package of its own.
package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOFLAGS"] = "-mod=mod"
    env["GOTOOLCHAIN"] = "local"
    return env


def _go(args: list[str], cwd: Path, log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ go {' '.join(args)}\n")
        out.flush()
        done = subprocess.run(
            ["go", *args], cwd=cwd, env=_go_env(), stdout=out, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise BuildError(f"go {' '.join(args[:2])} failed in {cwd} (log: {log}):\n{tail}")


def go_version() -> str:
    if shutil.which("go") is None:
        raise BuildError("Go is not installed: the real control plane is built with Go >= 1.26")
    out = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def stamp() -> str:
    key = json.dumps([KUBERNETES, ETCD, KWOK, go_version()])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _module_go_mod(module: str, version: str, cwd: Path, log: Path) -> str:
    """Download `module@version` through the module proxy and return its go.mod text."""
    done = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=cwd,
        env=_go_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(json.loads(done.stdout)["GoMod"]).read_text()


def _build_kube(src: Path, bin_dir: Path, log: Path) -> None:
    src.mkdir(parents=True, exist_ok=True)
    upstream = _module_go_mod("k8s.io/kubernetes", KUBERNETES, src, log)
    (src / "go.mod").write_text(kube_go_mod(KUBERNETES, upstream))
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBE_COMMANDS]
    flags = ["-trimpath", "-ldflags", version_ldflags(KUBERNETES)]
    _go(["build", *flags, "-o", f"{bin_dir}/", *packages], src, log)


def _build_etcd(src: Path, bin_dir: Path, log: Path) -> None:
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(
        f"module dagsteruc.local/controlplane/etcd\n\ngo 1.26.0\n\n"
        f"require go.etcd.io/etcd/server/v3 {ETCD}\n"
    )
    (src / "main.go").write_text(ETCD_MAIN)
    _go(["mod", "tidy"], src, log)
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(bin_dir / "etcd"), "."], src, log)


def _build_kwok(src: Path, bin_dir: Path, log: Path) -> None:
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(
        f"module dagsteruc.local/controlplane/kwok\n\ngo 1.26.0\n\nrequire sigs.k8s.io/kwok {KWOK}\n"
    )
    ldflags = f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={KWOK}"
    _go(
        [
            "build",
            "-trimpath",
            "-ldflags",
            ldflags,
            "-o",
            f"{bin_dir}/",
            "sigs.k8s.io/kwok/cmd/kwok",
        ],
        src,
        log,
    )


def kwok_module_dir() -> Path:
    """The unpacked kwok module (its CRDs and stage definitions are read from there)."""
    done = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{KWOK}"],
        cwd=CACHE_DIR,
        env=_go_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(json.loads(done.stdout)["Dir"])


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_control_plane(*, verbose: bool = False) -> ControlPlaneBinaries:
    """Build the binaries once per pinned versions; later calls return the cached ones."""
    root = CACHE_DIR / stamp()
    bin_dir = root / "bin"
    result = ControlPlaneBinaries(bin_dir, KUBERNETES)
    if all((bin_dir / name).exists() for name in BINARIES):
        return result
    with _locked(CACHE_DIR / ".lock"):
        if all((bin_dir / name).exists() for name in BINARIES):
            return result
        bin_dir.mkdir(parents=True, exist_ok=True)
        log = root / "build.log"
        steps = (("kube", _build_kube, KUBE_COMMANDS), ("etcd", _build_etcd, ("etcd",)))
        steps += (("kwok", _build_kwok, ("kwok",)),)
        for name, build, outputs in steps:
            if all((bin_dir / out).exists() for out in outputs):
                continue
            started = time.monotonic()
            if verbose:
                print(f"building {name} (log: {log}) ...", file=sys.stderr, flush=True)
            build(root / "src" / name, bin_dir, log)
            if verbose:
                took = time.monotonic() - started
                print(f"built {name} in {took:.0f} s", file=sys.stderr, flush=True)
    return result


def main() -> int:
    try:
        binaries = ensure_control_plane(verbose=True)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(binaries.bin_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
