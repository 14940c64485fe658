"""The busybox base image lets offline Dockerfiles run RUN steps."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from stack.podman import ensure_base_image, image_exists

pytestmark = pytest.mark.stack


def test_base_image_is_idempotent(base_image: str) -> None:
    assert image_exists(base_image)
    assert ensure_base_image(base_image) == base_image


def test_run_steps_work_offline(base_image: str, tmp_path: Path) -> None:
    env = {**os.environ, "BUILDAH_ISOLATION": "chroot"}
    tag = f"localhost/dagster-uc-basetest-{uuid.uuid4().hex[:8]}:1"
    (tmp_path / "hello.txt").write_text("hello from the context\n")
    (tmp_path / "Containerfile").write_text(
        f"FROM {base_image}\n"
        "COPY hello.txt /app/hello.txt\n"
        "RUN mkdir -p /app/out && cat /app/hello.txt > /app/out/copy.txt "
        "&& echo marker-$((6 * 7)) && ls /app/out && env | grep -q PATH\n"
        'CMD ["cat", "/app/out/copy.txt"]\n'
    )
    try:
        result = subprocess.run(
            ["podman", "build", "-t", tag, str(tmp_path)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "marker-42" in result.stdout
        assert "copy.txt" in result.stdout
    finally:
        subprocess.run(["podman", "rmi", "-f", tag], capture_output=True, check=False)
