"""The local user-code chart (stack/chart/dagster-user-deployments) in every form Helm takes.

A chart directory, a packaged ``.tgz`` (any version: the product pins the chart version to the
Dagster version), a chart repository served over HTTP on loopback, and an OCI chart pushed to a
registry.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stack.tools import ensure_tools

CHART_NAME = "dagster-user-deployments"
CHART_DIR = Path(__file__).resolve().parent / "chart" / CHART_NAME
DEFAULT_VERSION = "1.8.4"


def _helm(helm: Path | None) -> str:
    return str(helm or ensure_tools().helm)


def _run(cmd: list[str]) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed: {result.stderr.strip()}")
    return result.stdout


def package_chart(
    dest_dir: Path, version: str = DEFAULT_VERSION, *, helm: Path | None = None
) -> Path:
    """``helm package`` the chart as ``version`` (appVersion too) into ``dest_dir``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    _run(
        [
            _helm(helm),
            "package",
            str(CHART_DIR),
            "--version",
            version,
            "--app-version",
            version,
            "--destination",
            str(dest_dir),
        ]
    )
    tgz = dest_dir / f"{CHART_NAME}-{version}.tgz"
    if not tgz.is_file():
        raise RuntimeError(f"helm package did not write {tgz}")
    return tgz


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_chart_repo(
    directory: Path,
    versions: tuple[str, ...] = (DEFAULT_VERSION,),
    *,
    helm: Path | None = None,
) -> Iterator[str]:
    """Serve a Helm chart repository on a free loopback port; yields its URL.

    Any ``.tgz`` already in ``directory`` is served; when it holds none, the chart is packaged
    there in each of ``versions``. ``index.yaml`` is made with ``helm repo index``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if not any(directory.glob("*.tgz")):
        for version in versions:
            package_chart(directory, version, helm=helm)
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    _run([_helm(helm), "repo", "index", str(directory), "--url", url])
    thread = threading.Thread(target=server.serve_forever, name="chart-repo", daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def push_oci_chart(
    tgz: Path, registry_host_port: str, path: str = "charts", *, helm: Path | None = None
) -> str:
    """``helm push`` a packaged chart to ``oci://host:port/path`` over plain HTTP.

    Returns the chart reference to install from, ``oci://host:port/path/<chart name>``.
    """
    path = path.strip("/")
    with tempfile.TemporaryDirectory(prefix="helm-push-") as tmp:
        # An isolated registry config: no credentials from the user's home are read or written.
        registry_config = Path(tmp) / "registry.json"
        _run(
            [
                _helm(helm),
                "push",
                str(tgz),
                f"oci://{registry_host_port}/{path}",
                "--plain-http",
                "--registry-config",
                str(registry_config),
            ]
        )
    return f"oci://{registry_host_port}/{path}/{CHART_NAME}"


RELEASE = "dagster-user-code"


def deployment_entry(name: str, tag: str = "1", **extra: Any) -> dict[str, Any]:
    """One ``deployments:`` entry shaped like dagster-uc writes them."""
    return {
        "name": name,
        "image": {"repository": "127.0.0.1:5000/uc", "tag": tag, "pullPolicy": "IfNotPresent"},
        "dagsterApiGrpcArgs": ["-f", f"/app/{name}/definitions.py"],
        "port": 3030,
        "readinessProbe": {"enabled": True},
        **extra,
    }


def write_values(path: Path, *entries: dict[str, Any]) -> Path:
    """Write a values file holding ``deployments: [entries]``."""
    import yaml

    path.write_text(yaml.safe_dump({"deployments": list(entries)}))
    return path


def deployment_name(entry_name: str, release: str = RELEASE) -> str:
    """The Deployment name the chart gives an entry (``<fullname>-<name>``)."""
    fullname = release if CHART_NAME in release else f"{release}-{CHART_NAME}"
    return f"{fullname[:63].rstrip('-')}-{entry_name}"


#: Dagster's published chart validates values against Kubernetes schemas on another host.
REAL_SCHEMA_DEFS = "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json"
#: A host that never resolves (RFC 2606), standing in for that host when it cannot be reached.
UNREACHABLE_SCHEMA_DEFS = "https://kubernetesjsonschema.invalid/v1.18.0/_definitions.json"
SCHEMA_TEMPLATE = Path(__file__).resolve().parent / "chart" / "schema" / "values.schema.json"


def copy_chart(dest_dir: Path, *, schema_defs_url: str | None = None) -> Path:
    """A private copy of the chart directory (for tests that edit the chart).

    With ``schema_defs_url`` the copy gets a ``values.schema.json`` that, like the real chart's,
    refers to Kubernetes definitions at that address (see ``UNREACHABLE_SCHEMA_DEFS``).
    """
    target = dest_dir / CHART_NAME
    shutil.copytree(CHART_DIR, target)
    if schema_defs_url is not None:
        schema = SCHEMA_TEMPLATE.read_text().replace("K8S_DEFS", schema_defs_url)
        (target / "values.schema.json").write_text(schema)
    return target
