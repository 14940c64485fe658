"""A fault-injecting HTTP proxy in front of a Kubernetes API server.

Clients (dagster-uc, Helm, kubectl) talk HTTPS to the proxy with a bearer token (client-go
sends no token over plain HTTP), with a certificate of the cluster's CA; the proxy forwards
every request over TLS to the API server, streaming bodies both ways (watches,
followed logs) and relaying WebSocket upgrades (`kubectl exec`, dagster-uc's exec). On the way
it gives the tests the same knobs as the emulator:

- `inject_fault(method, path_regex, status=..., delay=..., times=...)`: answer matching
  requests with a Kubernetes Status of that code (or only delay them, `status=None`);
- `inject_conflict(path_regex, times)`: after a matching GET was answered, change the object
  on the server (an annotation counter), so the client's write with the resourceVersion it
  just read gets a real 409 Conflict from the API server;
- `hold_requests(method, path_regex, count)`: hold matching requests until the returned
  gate is released (the emulator's `RequestGate`), to line up concurrent commands;
- `request_counts`: (method, path) -> number of requests seen; `response_counts`:
  (method, path, status) -> how they were answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from stack.emulator.emulator import RequestGate

CONFLICT_ANNOTATION = "emulator.dagster-uc/conflicting-write"
_HOP_BY_HOP = {
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "content-length",
}
_REASONS = {
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
    403: "Forbidden",
    404: "NotFound",
}


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int | None
    delay: float
    times: int | None


def status_body(code: int, path: str) -> dict[str, Any]:
    reason = _REASONS.get(code, "InternalError")
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"injected fault: {code} for {path}",
        "reason": reason,
        "code": code,
    }


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        ssl_context: ssl.SSLContext,
        admin_token: str,
        server_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.ssl_context = ssl_context
        self.server_ssl = server_ssl
        self.admin_token = admin_token
        self.request_counts: Counter[tuple[str, str]] = Counter()
        self.response_counts: Counter[tuple[str, str, int]] = Counter()
        self.port = 0
        self._gates: list[RequestGate] = []
        self._faults: list[Fault] = []
        self._conflicts: list[list[Any]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.server_ssl is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    # --- knobs -----------------------------------------------------------------------------

    def inject_fault(
        self,
        method: str,
        path_regex: str,
        *,
        status: int | None = 500,
        delay: float = 0,
        times: int | None = 1,
    ) -> None:
        with self._lock:
            self._faults.append(Fault(method.upper(), re.compile(path_regex), status, delay, times))

    def inject_conflict(self, path_regex: str, times: int = 1) -> None:
        with self._lock:
            self._conflicts.append([re.compile(path_regex), times])

    def hold_requests(self, method: str, path_regex: str, count: int = 1) -> RequestGate:
        gate = RequestGate(method.upper(), re.compile(path_regex), count)
        with self._lock:
            self._gates.append(gate)
        return gate

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._conflicts.clear()
            for gate in self._gates:
                gate.release()
            self._gates.clear()

    def reset_counts(self) -> None:
        self.request_counts.clear()
        self.response_counts.clear()

    def _take_gate(self, method: str, path: str) -> RequestGate | None:
        with self._lock:
            for gate in self._gates:
                if (
                    gate.remaining > 0
                    and gate.method in ("*", method)
                    and gate.pattern.search(path)
                ):
                    gate.remaining -= 1
                    return gate
        return None

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method in ("*", method) and fault.pattern.search(path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _conflict_pending(self, path: str) -> bool:
        with self._lock:
            return any(entry[0].search(path) for entry in self._conflicts)

    def _take_conflict(self, path: str) -> bool:
        with self._lock:
            for entry in self._conflicts:
                if entry[0].search(path):
                    entry[1] -= 1
                    if entry[1] <= 0:
                        self._conflicts.remove(entry)
                    return True
        return False

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._astop())
            loop.close()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        self.clear_faults()
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    async def _astart(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self.ssl_context, limit=0)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.server_ssl)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _astop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # --- forwarding ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        response = await self._answer(request)
        self.response_counts[(request.method, request.path, response.status)] += 1
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        self.request_counts[(method, path)] += 1
        gate = self._take_gate(method, path)
        if gate is not None:
            gate._catch()
            await asyncio.get_running_loop().run_in_executor(None, gate._wait_open)
        fault = self._take_fault(method, path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return web.json_response(status_body(fault.status, path), status=fault.status)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        if method == "GET" and self._conflict_pending(path):
            return await self._forward_then_conflict(request)
        return await self._forward(request)

    def _upstream_headers(self, request: web.Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=self._upstream_headers(request),
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    response.headers.add(key, value)
            await response.prepare(request)
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientPayloadError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
            return response

    async def _forward_then_conflict(self, request: web.Request) -> web.StreamResponse:
        """Read the object, change it on the server, then answer with what was read: the
        client's next write carries a resourceVersion that is already stale."""
        assert self._session is not None
        async with self._session.get(
            self.upstream + request.path_qs, headers=self._upstream_headers(request)
        ) as upstream:
            body = await upstream.read()
            headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            status = upstream.status
        if status == 200 and self._take_conflict(request.path):
            await self._bump(request.path)
        return web.Response(status=status, body=body, headers=headers)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        protocols = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        headers = {
            k: v
            for k, v in self._upstream_headers(request).items()
            if not k.lower().startswith("sec-websocket")
        }
        try:
            upstream = await self._session.ws_connect(
                self.upstream + request.path_qs, protocols=protocols, headers=headers
            )
        except aiohttp.WSServerHandshakeError as exc:
            return web.Response(status=exc.status, text=exc.message)
        client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else ())
        await client.prepare(request)

        async def pump(source: Any, sink: Any) -> None:
            async for message in source:
                if message.type == aiohttp.WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
                elif message.type == aiohttp.WSMsgType.TEXT:
                    await sink.send_str(message.data)
                else:
                    break
            await sink.close()

        await asyncio.gather(pump(upstream, client), pump(client, upstream), return_exceptions=True)
        return client

    async def _bump(self, path: str) -> None:
        """Change the object at `path` so that a write based on the answer just sent conflicts."""
        assert self._session is not None
        auth = {"Authorization": f"Bearer {self.admin_token}"}
        async with self._session.get(self.upstream + path, headers=auth) as current:
            if current.status != 200:
                return
            obj = json.loads(await current.read())
        annotations = obj.get("metadata", {}).get("annotations") or {}
        count = int(annotations.get(CONFLICT_ANNOTATION, "0")) + 1
        patch = {"metadata": {"annotations": {CONFLICT_ANNOTATION: str(count)}}}
        headers = {**auth, "Content-Type": "application/merge-patch+json"}
        async with self._session.patch(
            self.upstream + path, data=json.dumps(patch), headers=headers
        ) as done:
            await done.read()
