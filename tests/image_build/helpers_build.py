"""Helpers for the build tests: read images back from ``podman save`` archives, write projects."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path


def saved_image(image: str) -> bytes:
    """The image as a docker-archive tarball (layers uncompressed)."""
    with tempfile.TemporaryDirectory(prefix="dagster-uc-save-") as tmp:
        out = Path(tmp) / "image.tar"
        subprocess.run(
            ["podman", "save", "--format", "docker-archive", "-o", str(out), image],
            check=True,
            capture_output=True,
        )
        return out.read_bytes()


def read_image_file(image: str, path: str) -> str:
    """Text of ``path`` in ``image``, read from the saved layers (``podman run`` cannot run here)."""
    member = path.lstrip("/")
    with tarfile.open(fileobj=io.BytesIO(saved_image(image))) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in reversed(manifest[0]["Layers"]):
            data = archive.extractfile(layer).read()  # type: ignore[union-attr]
            with tarfile.open(fileobj=io.BytesIO(data)) as layer_tar:
                try:
                    handle = layer_tar.extractfile(member)
                except KeyError:
                    continue
                if handle is not None:
                    return handle.read().decode()
    raise FileNotFoundError(path)


def podman_text(*args: str) -> str:
    return subprocess.run(["podman", *args], check=True, capture_output=True, text=True).stdout


def write_project(root: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    """A build context with ``Dockerfile`` and ``files``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root
