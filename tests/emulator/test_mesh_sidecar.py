"""A service-mesh injector in the emulator, and the API server's answer to a log read that
names no container on a pod of several."""

from __future__ import annotations

import httpx

from stack.emulator import Emulator
from stack.emulator.controllers import MESH_INIT, MESH_INJECT, MESH_PROXY
from tests.emulator.conftest import deployment, wait_until

NS = "meshed"
DEPLOYS = f"/apis/apps/v1/namespaces/{NS}/deployments"


def _meshed_namespace(emu: Emulator) -> None:
    emu.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NS, "annotations": {MESH_INJECT: "enabled"}},
        }
    )


def _running(emu: Emulator, selector: str) -> dict:  # type: ignore[type-arg]
    return wait_until(
        lambda: [
            p
            for p in emu.list("v1", "pods", NS, selector)
            if (p.get("status") or {}).get("phase") == "Running"
        ],
        "a running pod",
    )[0]


def test_an_annotated_namespace_gets_the_proxy_as_first_container(
    emu: Emulator, http: httpx.Client
) -> None:
    _meshed_namespace(emu)
    http.post(DEPLOYS, json=deployment("app", labels={"deployment": "app"}))
    pod = _running(emu, "deployment=app")
    assert [c["name"] for c in pod["spec"]["containers"]] == [MESH_PROXY, "main"]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == [MESH_INIT]
    template = emu.get("apps/v1", "deployments", NS, "app")["spec"]["template"]  # type: ignore[index]
    assert [c["name"] for c in template["spec"]["containers"]] == ["main"], "only pods change"
    assert [s["name"] for s in pod["status"]["containerStatuses"]] == [MESH_PROXY, "main"]


def test_a_log_read_without_container_on_a_meshed_pod_is_refused_as_the_api_server_does(
    emu: Emulator, http: httpx.Client
) -> None:
    _meshed_namespace(emu)
    http.post(DEPLOYS, json=deployment("app", labels={"deployment": "app"}))
    name = _running(emu, "deployment=app")["metadata"]["name"]
    url = f"/api/v1/namespaces/{NS}/pods/{name}/log"
    refused = http.get(url)
    assert refused.status_code == 400
    assert refused.json()["message"] == (
        f"a container name must be specified for pod {name}, choose one of: "
        f"[{MESH_PROXY} main] or one of the init containers: [{MESH_INIT}]"
    )
    assert http.get(url, params={"container": "main"}).status_code == 200


def test_a_plain_namespace_gets_no_proxy(emu: Emulator, http: httpx.Client) -> None:
    http.post(
        "/apis/apps/v1/namespaces/dagster/deployments",
        json=deployment("plain", labels={"deployment": "plain"}),
    )
    pod = wait_until(lambda: emu.list("v1", "pods", "dagster", "deployment=plain"), "a pod")[0]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["main"]
