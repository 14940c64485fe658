"""`Emulator`: the API server in a background thread, plus the knobs tests turn."""

from __future__ import annotations

import asyncio
import builtins
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from .api import NS, Api
from .controllers import Controllers, Hold, PodLogs
from .dagster import DEFAULT_VERSION, ExecResult
from .resources import Resource, lookup
from .selectors import parse_label_selector
from .server import Server
from .store import ApiError, Store

CONFLICT_ANNOTATION = "emulator.dagster-uc/conflicting-write"


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int | None
    delay: float
    times: int | None


class RequestGate:
    """The next `count` requests matching `method` and `pattern` wait inside the server until
    `release()`: a test uses it to line processes up (e.g. both have read before either
    writes). Made by `Emulator.hold_requests`."""

    def __init__(self, method: str, pattern: re.Pattern[str], count: int) -> None:
        self.method = method
        self.pattern = pattern
        self.remaining = count
        self.caught = 0
        self._opened = threading.Event()
        self._changed = threading.Condition()

    def wait_caught(self, count: int, timeout: float = 120) -> None:
        """Block until `count` requests have reached the gate (a guard against hangs)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.caught >= count, timeout):
                raise TimeoutError(f"{self.caught} of {count} requests reached the gate")

    def release(self) -> None:
        """Let the held requests (and any later ones it would catch) through."""
        self._opened.set()

    def _catch(self) -> None:
        with self._changed:
            self.caught += 1
            self._changed.notify_all()

    def _wait_open(self) -> None:
        self._opened.wait()


class Emulator:
    """A Kubernetes API server emulator on http://host:port (plain HTTP, no auth)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        kube_version: str = "v1.32.3",
        ready_delay: float = 0.2,
    ) -> None:
        self.host = host
        self.port = port
        self.kube_version = kube_version
        self.ready_delay = ready_delay
        self.dagster_version = DEFAULT_VERSION  # what `dagster --version` prints by default
        self.dagster_versions: dict[str, str] = {}  # per namespace, set by seed_dagster
        self.store = Store()
        self.api = Api(self.store)
        self.logs = PodLogs()
        self.controllers = Controllers(self.api, self.store, ready_delay, self.logs)
        self.request_counts: Counter[tuple[str, str]] = Counter()
        self.response_counts: Counter[tuple[str, str, int]] = Counter()  # (method, path, status)
        self.exec_handler: (
            Callable[[list[str], dict[str, Any], dict[str, Any]], ExecResult | None] | None
        ) = None
        # (verb, resource[/subresource]) that SelfSubjectAccessReviews answer as not allowed.
        self.denied_access: set[tuple[str, str]] = set()
        self._faults: list[Fault] = []
        self._conflicts: list[list[Any]] = []
        self._gates: list[RequestGate] = []
        self._knob_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._server: Server | None = None
        self._ctl_task: asyncio.Task[None] | None = None
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.api.create(NS, None, {"metadata": {"name": ns}})

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Emulator:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._astart())
            except BaseException as e:  # reported to the caller of start()
                failure.append(e)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="k8s-emulator", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        return self

    async def _astart(self) -> None:
        self._server = Server(self)
        self._runner = web.AppRunner(self._server.app(), handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._ctl_task = asyncio.get_running_loop().create_task(self.controllers.run())

    async def _astop(self) -> None:
        assert self._server is not None and self._runner is not None
        self._server.shutdown.set()
        self.store.close_watchers()
        self.logs.notify()
        if self._ctl_task is not None:
            self._ctl_task.cancel()
        await self._runner.cleanup()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        for gate in self._gates:
            gate.release()
        asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(
        self, path: str | Path, context: str = "kind-dagster-local", namespace: str = "dagster"
    ) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "emulator"}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": context, "namespace": namespace},
                }
            ],
            "current-context": context,
            "preferences": {},
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    # --- direct store access for tests -------------------------------------------------------

    @staticmethod
    def _res(api_version: str, plural_or_kind: str) -> Resource:
        res = lookup(api_version, plural_or_kind)
        if res is None:
            raise KeyError(f"the emulator does not serve {api_version} {plural_or_kind}")
        return res

    def get(
        self, api_version: str, kind_plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        res = self._res(api_version, kind_plural)
        return self.store.get(res, (namespace or "") if res.namespaced else "", name)

    def list(
        self,
        api_version: str,
        kind_plural: str,
        namespace: str | None = None,
        label_selector: str = "",
    ) -> list[dict[str, Any]]:
        res = self._res(api_version, kind_plural)
        return self.api.list(res, namespace, parse_label_selector(label_selector))

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object (metadata filled in); creates its namespace when missing."""
        res = self._res(obj["apiVersion"], obj["kind"])
        ns = (obj.get("metadata") or {}).get("namespace") or ("default" if res.namespaced else None)
        if res.namespaced and self.store.get(NS, "", ns or "") is None:
            self.api.create(NS, None, {"metadata": {"name": ns}})
        return self.api.create(res, ns, obj)

    def patch(
        self,
        api_version: str,
        kind_plural: str,
        namespace: str | None,
        name: str,
        merge_patch: dict[str, Any],
    ) -> dict[str, Any]:
        import json

        res = self._res(api_version, kind_plural)
        return self.api.patch(
            res, namespace, name, "application/merge-patch+json", json.dumps(merge_patch).encode()
        )

    def delete(self, api_version: str, kind_plural: str, namespace: str | None, name: str) -> None:
        res = self._res(api_version, kind_plural)
        try:
            self.api.delete(res, namespace, name)
        except ApiError as e:
            if e.code != 404:
                raise

    # --- test knobs --------------------------------------------------------------------------

    def hold_unready(self, namespace: str, label_selector: str) -> None:
        """Pods matching (present and future) never become ready; they crash-loop instead."""
        with self._knob_lock:
            self.controllers.holds.append(
                Hold(namespace, label_selector, parse_label_selector(label_selector))
            )
        self.controllers.wake()

    def release_unready(self, namespace: str, label_selector: str) -> None:
        with self._knob_lock:
            self.controllers.holds = [
                h
                for h in self.controllers.holds
                if (h.namespace, h.selector) != (namespace, label_selector)
            ]
        self.controllers.wake()

    def inject_fault(
        self,
        method: str,
        path_regex: str,
        *,
        status: int | None = 500,
        delay: float = 0,
        times: int | None = 1,
    ) -> None:
        """Answer the next `times` matching requests (None: all) with a Status of `status`,
        after `delay` seconds; with status=None the request is only delayed."""
        with self._knob_lock:
            self._faults.append(Fault(method.upper(), re.compile(path_regex), status, delay, times))

    def hold_requests(self, method: str, path_regex: str, count: int = 1) -> RequestGate:
        """Hold the next `count` matching requests (method "*": any) until the returned gate
        is released; `gate.wait_caught(n)` waits until n of them are held."""
        gate = RequestGate(method.upper(), re.compile(path_regex), count)
        with self._knob_lock:
            self._gates.append(gate)
        return gate

    def clear_faults(self) -> None:
        with self._knob_lock:
            self._faults.clear()
            self._conflicts.clear()
            for gate in self._gates:
                gate.release()
            self._gates.clear()

    def inject_conflict(self, path_regex: str, times: int = 1) -> None:
        """After the next matching GET of an object is answered, modify that object, so the
        client's following write with the old resourceVersion gets 409 Conflict."""
        with self._knob_lock:
            self._conflicts.append([re.compile(path_regex), times])

    def reset_counts(self) -> None:
        self.request_counts.clear()
        self.response_counts.clear()

    def append_pod_log(
        self, namespace: str, pod: str, lines: builtins.list[str], container: str | None = None
    ) -> None:
        """Add lines to a pod container's log (default: its first container)."""
        if container is None:
            obj = self.get("v1", "pods", namespace, pod)
            if obj is None:
                raise KeyError(f"no pod {namespace}/{pod}")
            container = obj["spec"]["containers"][0]["name"]
        if self._loop is not None:
            self._loop.call_soon_threadsafe(
                self.logs.append, namespace, pod, container, list(lines)
            )
        else:
            self.logs.append(namespace, pod, container, list(lines))

    # --- used by the server ------------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._knob_lock:
            for f in self._faults:
                if f.method in ("*", method) and f.pattern.search(path):
                    if f.times is not None:
                        f.times -= 1
                        if f.times <= 0:
                            self._faults.remove(f)
                    return f
        return None

    def _take_gate(self, method: str, path: str) -> RequestGate | None:
        with self._knob_lock:
            for gate in self._gates:  # spent gates stay listed, so stop() opens them all
                if (
                    gate.remaining > 0
                    and gate.method in ("*", method)
                    and gate.pattern.search(path)
                ):
                    gate.remaining -= 1
                    return gate
        return None

    def _take_conflict(self, path: str) -> bool:
        with self._knob_lock:
            for c in self._conflicts:
                if c[0].search(path):
                    c[1] -= 1
                    if c[1] <= 0:
                        self._conflicts.remove(c)
                    return True
        return False

    def _bump(self, res: Resource, namespace: str, name: str) -> None:
        obj = self.store.get(res, namespace if res.namespaced else "", name)
        if obj is None:
            return
        ann = obj["metadata"].setdefault("annotations", {})
        ann[CONFLICT_ANNOTATION] = str(int(ann.get(CONFLICT_ANNOTATION, "0")) + 1)
        self.store.write(res, obj)
