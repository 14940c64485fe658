"""The example project of `make demo` builds offline with the real podman, from its own config."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from dagster_uc.build import BuildRequest, Podman
from dagster_uc.config import load_config
from dagster_uc.naming import compute_deployment_name, image_repository
from dagster_uc.project import project_name
from tests.image_build.helpers_build import read_image_file

pytestmark = pytest.mark.e2e

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-project"


def test_demo_config_names_and_build(tmp_path: Path, base_image: str) -> None:
    registry = "127.0.0.1:41234"
    loaded = load_config("dev", cwd=DEMO, env={"CONTAINER_REGISTRY": registry})
    config = loaded.config
    assert config.container_registry == registry
    assert (DEMO / config.helm_chart_path / "Chart.yaml").is_file()  # type: ignore[operator]
    name = compute_deployment_name(
        branch="feat: my amazing feature",
        cicd=config.cicd,
        environment=config.environment,
        project=project_name(DEMO),
    )
    assert name.name == "demo-project--feat-my-amazing-feature"

    context = tmp_path / "demo"
    shutil.copytree(DEMO, context)
    image = f"localhost/dagster-uc-demo-test-{uuid.uuid4().hex[:10]}:1.8.4-0"
    assert image_repository(registry, config.image_prefix, name.name).startswith(
        f"{registry}/demo/demo-project--"
    )
    try:
        Podman().build(
            BuildRequest(
                context_dir=str(context / config.repository_root),
                dockerfile=config.dockerfile,
                image=image,
                branch_part=name.branch_part,
                env_vars=list(config.docker_env_vars),
                tls_verify=not config.container_registry_insecure,
            ),
            on_output=lambda _line: None,
        )
        info = read_image_file(image, "/app/BUILD_INFO")
        assert info.strip() == "demo_project built for branch feat-my-amazing-feature"
        code = read_image_file(image, f"{config.docker_root}/{config.code_path}")
        assert "Definitions(" in code
    finally:
        subprocess.run(["podman", "rmi", "-f", image], capture_output=True, check=False)
