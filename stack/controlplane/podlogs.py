"""What the containers of the real control plane print: kwok serves pod logs from files.

kwok has no containers, so a log is a file named by a `Logs` object (kwok's CRD, one per pod,
one file per container). `PodLogWriter` watches the pods of the cluster and, for each new pod,
writes the lines a Dagster container prints (the same ones the emulator prints, from
`stack.emulator.dagster`): a code server's "Starting ..." and "Started ..." lines, or, for a
pod a test holds unready (`holds.HOLD_ANNOTATION`), the traceback of a failed import. When a
hold is released the ready lines follow, as when the container finally starts. It also gives
each pod an `Exec` object, so that commands exec'd in it know their pod and namespace.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from stack.emulator.dagster import crash_lines, ready_lines, startup_lines

from .holds import HOLD_ANNOTATION


def cri_lines(lines: list[str]) -> str:
    """Log lines as a container runtime writes them (what kwok's log reader expects)."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return "".join(f"{now} stdout F {line}\n" for line in lines)


def _held(pod: dict[str, Any]) -> bool:
    return HOLD_ANNOTATION in (pod["metadata"].get("annotations") or {})


class PodLogWriter:
    def __init__(
        self,
        client: httpx.Client,
        directory: Path,
        exec_env: Callable[[str, str], list[dict[str, str]]],
    ) -> None:
        self._client = client
        self._dir = directory
        self._exec_env = exec_env
        self._dir.mkdir(parents=True, exist_ok=True)
        self._known: dict[str, bool] = {}  # namespace/name -> held when last written
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def file(self, namespace: str, pod: str, container: str) -> Path:
        return self._dir / f"{namespace}.{pod}.{container}.log"

    def start(self) -> PodLogWriter:
        self._thread = threading.Thread(target=self._run, name="pod-logs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def append(self, namespace: str, pod: str, lines: list[str], container: str | None) -> None:
        obj = self._client.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")
        if obj.status_code != 200:
            raise KeyError(f"no pod {namespace}/{pod}")
        spec = obj.json()["spec"]
        name = container or spec["containers"][0]["name"]
        self._ensure_logs_object(obj.json())
        with self.file(namespace, pod, name).open("a") as out:
            out.write(cri_lines(lines))

    # --- the watch -------------------------------------------------------------------------

    def _run(self) -> None:
        resource_version = ""
        while not self._stop.is_set():
            try:
                if not resource_version:
                    listed = self._client.get("/api/v1/pods").json()
                    for pod in listed.get("items") or []:
                        self._observe(pod)
                    resource_version = listed["metadata"]["resourceVersion"]
                params = {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": "30"}
                with self._client.stream("GET", "/api/v1/pods", params=params, timeout=None) as r:
                    for line in r.iter_lines():
                        if self._stop.is_set():
                            return
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            resource_version = ""
                            break
                        pod = event["object"]
                        resource_version = pod["metadata"]["resourceVersion"]
                        if event["type"] in ("ADDED", "MODIFIED"):
                            self._observe(pod)
            except (httpx.HTTPError, ValueError, KeyError):
                resource_version = ""
                self._stop.wait(0.2)

    def _observe(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        held = _held(pod)
        with self._lock:
            before = self._known.get(key)
            if before is not None and before == held:
                return
            self._known[key] = held
        for container in pod["spec"].get("containers") or []:
            path = self.file(meta["namespace"], meta["name"], container["name"])
            if before is None:
                lines = startup_lines(container) if not held else []
                lines += crash_lines(container) if held else ready_lines(container)
            elif before and not held:
                lines = startup_lines(container) + ready_lines(container)
            else:
                lines = crash_lines(container)
            with path.open("a") as out:
                out.write(cri_lines(lines))
        if before is None:
            self._ensure_logs_object(pod)

    def _ensure_logs_object(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        logs = []
        for container in pod["spec"].get("containers") or []:
            path = self.file(meta["namespace"], meta["name"], container["name"])
            path.touch()
            logs.append({"containers": [container["name"]], "logsFile": str(path), "follow": True})
        body = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Logs",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "spec": {"logs": logs},
        }
        execs = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Exec",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "spec": {
                "execs": [
                    {
                        "containers": [],
                        "local": {
                            "workDir": str(self._dir),
                            "envs": self._exec_env(meta["namespace"], meta["name"]),
                        },
                    }
                ]
            },
        }
        base = f"/apis/kwok.x-k8s.io/v1alpha1/namespaces/{meta['namespace']}"
        with contextlib.suppress(httpx.HTTPError):
            self._client.post(f"{base}/logs", json=body)
            self._client.post(f"{base}/execs", json=execs)


def main(argv: list[str] | None = None) -> int:
    """Run the writer for a control plane started by another process (`stackctl up --cluster
    real`), until SIGTERM."""
    import argparse
    import signal
    import ssl

    parser = argparse.ArgumentParser(prog="python -m stack.controlplane.podlogs")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--dagster-version", default="1.8.4")
    args = parser.parse_args(argv)
    api = json.loads((args.state_dir / "api.json").read_text())

    def exec_env(namespace: str, pod: str) -> list[dict[str, str]]:
        env = {
            "DAGSTER_VERSION": args.dagster_version,
            "STACK_STATE_DIR": str(args.state_dir),
            "POD_NAMESPACE": namespace,
            "POD_NAME": pod,
        }
        return [{"name": k, "value": v} for k, v in env.items()]

    client = httpx.Client(
        base_url=api["url"],
        verify=ssl.create_default_context(cafile=api["ca"]),
        headers={"Authorization": f"Bearer {api['token']}"},
        trust_env=False,
        timeout=30,
    )
    writer = PodLogWriter(client, args.state_dir / "pod-logs", exec_env).start()
    signal.sigwait([signal.SIGTERM, signal.SIGINT])
    writer.stop()
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
