"""Real registries as teams have them: a path in `container_registry`, no catalog and no
deletes (Harbor, GHCR, Docker Hub), and `--use-sudo` with `use_az_login` (ACR)."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dagster_uc.azure import ACR_USERNAME
from stack.real_cluster import real_context
from stack.registry import Fault, LocalRegistry, PaginatingProxy, push_many_tags
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.skipif(
    real_context() is not None,
    reason="the proxies and registries stand in front of the local registry",
)
NAME = "demo-project--feat-hello"


def tags(host: str, repository: str, auth: tuple[str, str] | None = None) -> list[str]:
    response = httpx.get(f"http://{host}/v2/{repository}/tags/list", auth=auth)
    return [] if response.status_code == 404 else sorted(response.json().get("tags") or [])


def test_a_registry_with_a_path_deploys_and_prunes(stack: Stack) -> None:
    """`container_registry: host/team`: the client connects to the host, the path belongs to
    the repository."""
    stack.write_config(container_registry=f"{stack.registry.host}/team")
    stack.ok("deployment", "deploy")
    repository = f"team/{stack.prefix}/{NAME}"
    assert tags(stack.registry.host, repository) == ["1.8.4-0"]
    entry = stack.entry(NAME)
    assert entry is not None
    assert entry["image"]["repository"] == f"{stack.registry.host}/{repository}"

    stack.git("commit", "-q", "--allow-empty", "-m", "second")
    stack.ok("deployment", "deploy")
    assert tags(stack.registry.host, repository) == ["1.8.4-0", "1.8.4-1"]
    push_many_tags(stack.registry, repository, ["1.8.4-2", "1.8.4-3"], distinct_digests=True)
    stack.ok("image", "prune", "--keep", "1")
    # 1.8.4-1 is deployed, 1.8.4-0 in its history, 1.8.4-3 the newest
    assert tags(stack.registry.host, repository) == ["1.8.4-0", "1.8.4-1", "1.8.4-3"]


@pytest.fixture
def harbor_like(stack: Stack) -> Iterator[PaginatingProxy]:
    """The stack's registry behind a proxy that refuses the catalog (GHCR, Docker Hub; Harbor
    for non-admins) and deletes (GHCR and Docker Hub answer 405)."""
    with PaginatingProxy(stack.registry.url, page_tags=False) as proxy:
        proxy.faults.append(
            Fault(401, count=10**6, path_contains="/v2/_catalog", code="UNAUTHORIZED")
        )
        stack.write_config(container_registry=proxy.host)
        yield proxy


def test_image_prune_without_catalog_uses_the_cluster_state_and_says_deletes_are_refused(
    stack: Stack, harbor_like: PaginatingProxy
) -> None:
    stack.ok("deployment", "deploy")
    stack.checkout("feat/other")
    stack.ok("deployment", "deploy")
    other = "demo-project--feat-other"
    stack.ok("deployment", "delete", "-n", other)
    for name in (NAME, other):
        push_many_tags(
            stack.registry, f"{stack.prefix}/{name}", ["1.8.4-1", "1.8.4-2"], distinct_digests=True
        )

    dry = json.loads(stack.ok("image", "prune", "--keep", "1", "--dry-run", "-o", "json").stdout)
    planned = {
        r["repository"]: sorted(t for d in r["delete"] for t in d["tags"])
        for r in dry["repositories"]
    }
    assert planned == {
        f"{harbor_like.host}/{stack.prefix}/{NAME}": ["1.8.4-1"],
        f"{harbor_like.host}/{stack.prefix}/{other}": ["1.8.4-1"],
    }
    assert harbor_like.count("/v2/_catalog") >= 1, "the catalog was asked for and refused"

    harbor_like.faults.append(
        Fault(405, count=10**6, path_contains="/manifests/", method="DELETE", code="UNSUPPORTED")
    )
    refused = stack.run("image", "prune", "--keep", "1")
    assert refused.returncode == 1, refused.output
    errors = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Traceback" not in refused.output
    assert f"registry {harbor_like.host} does not allow deleting images (HTTP 405)" in errors[0]
    assert stack.tags(NAME) == ["1.8.4-0", "1.8.4-1", "1.8.4-2"]


FAKE_AZ = """#!{python}
import json, os, sys
print(json.dumps({{"accessToken": os.environ["FAKE_AZ_TOKEN"], "loginServer": sys.argv[4]}}))
"""

# sudo resets the environment: podman then runs as root with root's auth file, which the
# user's dagster-uc process does not read (here a file only "root" knows, via REGISTRY_AUTH_FILE).
FAKE_SUDO = """#!{python}
import os, sys
args = sys.argv[1:]
keep = {{"PATH", "HOME", "BUILDAH_ISOLATION", "KUBECONFIG"}}
if args and args[0].startswith("--preserve-env="):
    keep |= set(args.pop(0).split("=", 1)[1].split(","))
env = {{k: v for k, v in os.environ.items() if k in keep}}
env["REGISTRY_AUTH_FILE"] = os.environ["FAKE_ROOT_AUTH_FILE"]
os.execvpe(args[0], args, env)
"""


def test_use_sudo_with_az_login_lets_the_registry_client_use_the_same_token(
    stack: Stack, tmp_path: Path
) -> None:
    token = f"acr-token-{uuid.uuid4().hex}"
    with LocalRegistry("htpasswd", username=ACR_USERNAME, password=token) as acr:
        bin_dir = tmp_path / "fake-bin"
        bin_dir.mkdir()
        for name, text in (("az", FAKE_AZ), ("sudo", FAKE_SUDO)):
            (bin_dir / name).write_text(text.format(python=sys.executable))
            (bin_dir / name).chmod(0o755)
        root_auth = tmp_path / "root" / "auth.json"
        root_auth.parent.mkdir()
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{stack.env['PATH']}",
            "FAKE_AZ_TOKEN": token,
            "FAKE_ROOT_AUTH_FILE": str(root_auth),
        }
        stack.write_config(container_registry=acr.host, use_az_login=True)
        result = stack.run("deployment", "deploy", "--use-sudo", env=env)
        assert result.returncode == 0, result.output
        assert token not in result.output
        assert ACR_USERNAME in root_auth.read_text() or acr.host in root_auth.read_text()
        assert not (Path(stack.env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json").exists()
        assert tags(acr.host, f"{stack.prefix}/{NAME}", (ACR_USERNAME, token)) == ["1.8.4-0"]
