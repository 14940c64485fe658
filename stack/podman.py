"""A tiny local base image for offline podman builds.

There is no registry to pull a base image from, so we make one with ``podman import`` from a
tarball holding Debian's static busybox plus its applet symlinks (sh, echo, cat, ...). That is
enough for Dockerfiles whose RUN steps use a POSIX shell.

``python -m stack.podman`` builds it (once) and prints its name.
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

DEFAULT_IMAGE = "localhost/dagster-uc-base:latest"
BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))
_DIRS = {
    "bin": 0o755,
    "sbin": 0o755,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "etc": 0o755,
    "root": 0o700,
    "home": 0o755,
    "tmp": 0o1777,
    "var": 0o755,
    "var/tmp": 0o1777,
    "proc": 0o555,
    "sys": 0o555,
    "dev": 0o755,
    "app": 0o755,
}
_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hosts": "127.0.0.1 localhost\n",
}


def find_busybox() -> Path:
    """The static busybox binary (Debian's ``busybox-static``)."""
    for candidate in BUSYBOX_CANDIDATES:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("static busybox not found: apt-get install busybox-static")


def _applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True)
    return sorted({line.strip() for line in out.stdout.splitlines() if line.strip()} - {"busybox"})


def build_rootfs_tar(busybox: Path | None = None) -> bytes:
    """An uncompressed rootfs tarball: /bin/busybox, applet symlinks in /bin, /usr/bin/env."""
    busybox = busybox or find_busybox()
    mtime = int(time.time())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add_dir(name: str, mode: int) -> None:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            info.mtime = mtime
            tar.addfile(info)

        def add_file(name: str, data: bytes, mode: int) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(data))

        def add_link(name: str, target: str) -> None:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            info.mode = 0o777
            info.mtime = mtime
            tar.addfile(info)

        for name, mode in _DIRS.items():
            add_dir(name, mode)
        add_file("bin/busybox", busybox.read_bytes(), 0o755)
        for name, text in _FILES.items():
            add_file(name, text.encode(), 0o644)
        for applet in _applets(busybox):
            add_link(f"bin/{applet}", "busybox")
        add_link("usr/bin/env", "/bin/busybox")
    return buf.getvalue()


def image_exists(name: str) -> bool:
    result = subprocess.run(["podman", "image", "exists", name], capture_output=True, check=False)
    return result.returncode == 0


def ensure_base_image(name: str = DEFAULT_IMAGE) -> str:
    """Create the busybox base image with ``podman import`` unless it already exists."""
    if shutil.which("podman") is None:
        raise RuntimeError("podman not found: run scripts/install-system-deps.sh")
    if image_exists(name):
        return name
    lock_path = Path(tempfile.gettempdir()) / "dagster-uc-base-image.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image_exists(name):
            return name
        with tempfile.TemporaryDirectory(prefix="dagster-uc-base-") as tmp:
            tarball = Path(tmp) / "rootfs.tar"
            tarball.write_bytes(build_rootfs_tar())
            cmd = [
                "podman",
                "import",
                "--change",
                'CMD ["/bin/sh"]',
                "--change",
                "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "--message",
                "dagster-uc test base image (static busybox)",
                str(tarball),
                name,
            ]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"podman import failed: {result.stderr.strip()}")
    return name


def main() -> int:
    print(ensure_base_image())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
