"""The HTTP face of the emulator (aiohttp): REST routing, discovery, OpenAPI, watches, pod
logs, pod exec over WebSocket, fault injection and request counting."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from typing import TYPE_CHECKING, Any, Protocol

import yaml
from aiohttp import web

from . import dagster, patches, protobuf, tables, versions
from .api import Api
from .controllers import POD
from .resources import BY_PATH, RESOURCES, VERBS, Resource, group_versions
from .selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    selector_string,
)
from .store import ApiError, Event, bad_request, conflict

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable

    from .controllers import PodLogs
    from .store import Store


class Host(Protocol):
    """What the HTTP face needs of the `Emulator` that runs it (a protocol, so this module
    never imports `emulator`, which imports it)."""

    api: Api
    store: Store
    logs: PodLogs
    kube_version: str
    dagster_version: str
    dagster_versions: dict[str, str]
    request_counts: Counter[tuple[str, str]]
    response_counts: Counter[tuple[str, str, int]]
    exec_handler: Callable[[list[str], dict[str, Any], dict[str, Any]], Any] | None
    denied_access: set[tuple[str, str]]

    def _take_gate(self, method: str, path: str) -> Any: ...
    def _take_fault(self, method: str, path: str) -> Any: ...
    def _take_conflict(self, path: str) -> bool: ...
    def _bump(self, res: Resource, namespace: str, name: str) -> None: ...


JSON = "application/json"
OBJECT_KEY = web.RequestKey("object", tuple)
# The resource as the client addressed it when it is another version of a stored resource.
SERVED_AS = web.RequestKey("served_as", Resource)
EXEC_PROTOCOLS = (
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
)
FAULT_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def respond(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={"Content-Type": JSON, **(headers or {})},
    )


def error_response(e: ApiError) -> web.Response:
    return respond(e.status(), e.code, e.headers)


def _gone(request: web.Request) -> bool:
    """The client hung up (aiohttp does not cancel handlers when that happens)."""
    transport = request.transport
    return transport is None or transport.is_closing()


_UNKNOWN = object()


def _manager(request: web.Request) -> str:
    """The field manager of a non-apply write: `fieldManager`, else the User-Agent's program."""
    agent = request.headers.get("User-Agent", "").split("/")[0].strip()
    return request.query.get("fieldManager") or agent or "unknown"


def _list_item(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


class Server:
    def __init__(self, emu: Host) -> None:
        self.emu = emu
        self.api = emu.api
        self.store = emu.store
        self.shutdown = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware], client_max_size=64 * 1024 * 1024)
        r = app.router
        for slash in ("", "/"):  # the real server accepts a trailing slash (kr8s sends one)
            r.add_get("/version" + slash, self.version)
            for probe in ("/healthz", "/livez", "/readyz"):
                r.add_get(probe + slash, self.healthz)
            r.add_get("/api" + slash, self.core_versions)
            r.add_get("/apis" + slash, self.group_list)
        r.add_get("/openapi/v2", self.openapi_v2)
        r.add_get("/openapi/v3", self.openapi_index)
        r.add_get("/openapi/v3/{gv:.+}", self.openapi_doc)
        r.add_post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", self.self_access_review
        )
        r.add_route("*", "/api/{tail:.+}", self.dispatch)
        r.add_route("*", "/apis/{tail:.+}", self.dispatch)
        return app

    # --- middleware: counts, faults, conflicts, Status bodies -------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.emu.request_counts[(request.method, request.path)] += 1
        gate = self.emu._take_gate(request.method, request.path)
        if gate is not None:
            gate._catch()
            await asyncio.get_running_loop().run_in_executor(None, gate._wait_open)
        resp = await self._answer(request, handler)
        self.emu.response_counts[(request.method, request.path, resp.status)] += 1
        return resp

    async def _answer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        fault = self.emu._take_fault(request.method, request.path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status:
                reason = FAULT_REASONS.get(fault.status, "InternalError")
                message = f"injected fault: {reason}"
                if fault.status == 500:
                    message = "Internal error occurred: injected fault"
                headers = {"Retry-After": "1"} if fault.status in (429, 503) else None
                return error_response(ApiError(fault.status, reason, message, {}, headers))
        try:
            resp = await handler(request)
        except ApiError as e:
            return error_response(e)
        except web.HTTPException:
            raise
        served_as = request.get(SERVED_AS)
        if served_as and isinstance(resp, web.Response) and resp.body and resp.status < 300:
            assert isinstance(resp.body, bytes)
            body = versions.from_storage(served_as, json.loads(resp.body))
            resp = respond(body, resp.status)
        key = request.get(OBJECT_KEY)
        if (
            request.method == "GET"
            and key
            and resp.status == 200
            and self.emu._take_conflict(request.path)
        ):
            self.emu._bump(*key)
        return resp

    # --- authorization ------------------------------------------------------------------------

    async def self_access_review(self, request: web.Request) -> web.Response:
        """SelfSubjectAccessReview: the emulator has no RBAC, so everything is allowed except
        the (verb, resource[/subresource]) pairs a test put in `emu.denied_access`."""
        review = await request.json()
        attrs = (review.get("spec") or {}).get("resourceAttributes") or {}
        resource = attrs.get("resource", "")
        if attrs.get("subresource"):
            resource += "/" + attrs["subresource"]
        allowed = (attrs.get("verb", ""), resource) not in self.emu.denied_access
        reason = "the emulator has no RBAC" if allowed else "denied by the test (denied_access)"
        review["status"] = {"allowed": allowed, "denied": not allowed, "reason": reason}
        review.setdefault("apiVersion", "authorization.k8s.io/v1")
        review.setdefault("kind", "SelfSubjectAccessReview")
        return respond(review, 201)

    # --- discovery ---------------------------------------------------------------------------

    async def version(self, request: web.Request) -> web.Response:
        v = self.emu.kube_version.lstrip("v")
        major, minor = v.split(".")[:2]
        return respond(
            {
                "major": major,
                "minor": minor,
                "emulationMajor": major,
                "emulationMinor": minor,
                "gitVersion": self.emu.kube_version,
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2025-03-11T19:52:21Z",
                "goVersion": "go1.23.6",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    async def core_versions(self, request: web.Request) -> web.Response:
        host = request.host
        return respond(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
            }
        )

    @staticmethod
    def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
        vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": vs, "preferredVersion": vs[0]}

    async def group_list(self, request: web.Request) -> web.Response:
        groups: dict[str, list[str]] = {}
        for r in RESOURCES:
            if r.group and r.version not in groups.setdefault(r.group, []):
                groups[r.group].append(r.version)
        return respond(
            {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._group_entry(g, vs) for g, vs in groups.items()],
            }
        )

    @staticmethod
    def resource_list(gv: str) -> dict[str, Any]:
        resources = []
        for r in group_versions().get(gv, []):
            entry: dict[str, Any] = {
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": VERBS
                if r.plural != "namespaces"
                else [v for v in VERBS if v != "deletecollection"],
            }
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.plural in (
                "pods",
                "deployments",
                "services",
                "replicasets",
                "statefulsets",
                "daemonsets",
                "jobs",
            ):
                entry["categories"] = ["all"]
            resources.append(entry)
            for sub in r.subresources:
                kind, verbs = r.kind, ["get", "patch", "update"]
                if sub == "scale":
                    kind = "Scale"
                elif sub == "log":
                    verbs = ["get"]
                elif sub == "exec":
                    kind, verbs = "PodExecOptions", ["create", "get"]
                elif sub == "finalize":
                    verbs = ["update"]
                resources.append(
                    {
                        "name": f"{r.plural}/{sub}",
                        "singularName": "",
                        "namespaced": r.namespaced,
                        "kind": kind,
                        "verbs": verbs,
                        **({"group": "autoscaling", "version": "v1"} if sub == "scale" else {}),
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }

    # --- OpenAPI -----------------------------------------------------------------------------

    async def openapi_v2(self, request: web.Request) -> web.Response:
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})

    @staticmethod
    def _gv_path(gv: str) -> str:
        return f"apis/{gv}" if "/" in gv else f"api/{gv}"

    async def openapi_index(self, request: web.Request) -> web.Response:
        paths = {}
        for gv in group_versions():
            doc = json.dumps(self._openapi_gv(gv), sort_keys=True).encode()
            digest = hashlib.sha512(doc).hexdigest()[:128].upper()
            paths[self._gv_path(gv)] = {
                "serverRelativeURL": f"/openapi/v3/{self._gv_path(gv)}?hash={digest}"
            }
        return respond({"paths": paths})

    def _openapi_gv(self, gv: str) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        for r in group_versions().get(gv, []):
            prefix = "/" + self._gv_path(gv)
            path = (
                f"{prefix}/namespaces/{{namespace}}/{r.plural}/{{name}}"
                if r.namespaced
                else f"{prefix}/{r.plural}/{{name}}"
            )
            paths[path] = {
                "patch": {
                    "description": f"partially update the specified {r.kind}",
                    "operationId": f"patch{r.kind}",
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": {
                        "group": r.group,
                        "version": r.version,
                        "kind": r.kind,
                    },
                    "parameters": [
                        {
                            "name": "dryRun",
                            "in": "query",
                            "schema": {"type": "string", "uniqueItems": True},
                        },
                        {
                            "name": "fieldManager",
                            "in": "query",
                            "schema": {"type": "string", "uniqueItems": True},
                        },
                        {
                            "name": "fieldValidation",
                            "in": "query",
                            "schema": {"type": "string", "uniqueItems": True},
                        },
                        {
                            "name": "force",
                            "in": "query",
                            "schema": {"type": "boolean", "uniqueItems": True},
                        },
                    ],
                    "responses": {"200": {"description": "OK"}},
                }
            }
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": self.emu.kube_version},
            "paths": paths,
            "components": {"schemas": {}},
        }

    async def openapi_doc(self, request: web.Request) -> web.Response:
        tail = request.match_info["gv"]
        gv = tail.split("/", 1)[1] if tail.startswith(("api/", "apis/")) else ""
        if gv not in group_versions():
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        return respond(self._openapi_gv(gv))

    # --- REST dispatch -----------------------------------------------------------------------

    def _parse(
        self, request: web.Request
    ) -> tuple[str, Resource | None, str | None, str | None, str | None]:
        """(groupVersion, resource, namespace, name, subresource) of an /api or /apis path."""
        segs = [s for s in request.match_info["tail"].split("/") if s]
        if request.path.startswith("/apis/"):
            if len(segs) == 1:
                return segs[0], None, None, None, None
            gv, rest = f"{segs[0]}/{segs[1]}", segs[2:]
        else:
            gv, rest = segs[0], segs[1:]
        group, _, version = gv.rpartition("/")
        if not rest:
            return gv, None, None, None, None
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and (group, version, rest[2]) in BY_PATH:
            ns, rest = rest[1], rest[2:]
        res = BY_PATH.get((group, version, rest[0]))
        if res is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub and sub not in res.subresources):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if ns is not None and not res.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        return gv, res, ns, name, sub

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        gv, res, ns, name, sub = self._parse(request)
        m = request.method
        if res is None:
            if request.path.startswith("/apis/") and "/" not in gv:
                served = list(dict.fromkeys(r.version for r in RESOURCES if r.group == gv))
                if not served:
                    raise ApiError(
                        404, "NotFound", "the server could not find the requested resource", {}
                    )
                return respond(
                    {"kind": "APIGroup", "apiVersion": "v1", **self._group_entry(gv, served)}
                )
            if gv not in group_versions():
                raise ApiError(
                    404, "NotFound", "the server could not find the requested resource", {}
                )
            return respond(self.resource_list(gv))
        q = request.query
        dry_run = "All" in q.getall("dryRun", [])
        if res in versions.ALIASES:
            request[SERVED_AS] = res
            if m == "PATCH" and name:
                return await self.patch_converted(request, res, ns, name, sub, dry_run)
            res = versions.ALIASES[res]
        if sub == "log" and m == "GET":
            return await self.pod_log(request, ns or "default", name or "")
        if sub == "exec" and m in ("GET", "POST"):
            return await self.pod_exec(request, ns or "default", name or "")
        if sub == "scale" and name:
            return await self.scale(request, res, ns, name, dry_run)
        if name is None:
            if m == "GET":
                if q.get("watch") in ("1", "true"):
                    return await self.watch(request, res, ns)
                return self.list(request, res, ns)
            if m == "POST":
                obj = await self._body(request)
                created = self.api.create(
                    res, ns, obj or {}, dry_run=dry_run, field_manager=_manager(request)
                )
                return respond(created, 201)
            if m == "DELETE":
                return await self.delete_collection(request, res, ns, dry_run)
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        if m == "GET":
            if q.get("watch") in ("1", "true"):
                return await self.watch(request, res, ns, name)
            request[OBJECT_KEY] = (res, ns or "", name)
            obj = self.api.get(res, ns or "", name)
            if tables.wants_table(request.headers.get("Accept", "")):
                meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
                return respond(tables.table(res, [obj], meta, q.get("includeObject", "Metadata")))
            return respond(obj)
        if m == "PUT":
            obj = await self._body(request)
            return respond(
                self.api.update(
                    res,
                    ns,
                    name,
                    obj or {},
                    subresource=sub,
                    dry_run=dry_run,
                    field_manager=_manager(request),
                )
            )
        if m == "PATCH":
            body = await request.read()
            existed = self.store.get(res, (ns or "") if res.namespaced else "", name) is not None
            return respond(
                self.api.patch(
                    res,
                    ns,
                    name,
                    request.headers.get("Content-Type", ""),
                    body,
                    subresource=sub,
                    field_manager=q.get("fieldManager")
                    if request.content_type == "application/apply-patch+yaml"
                    else _manager(request),
                    force=q.get("force") == "true",
                    dry_run=dry_run,
                ),
                200 if existed else 201,
            )
        if m == "DELETE":
            options = await self._body(request, optional=True) or {}
            for k in ("propagationPolicy", "gracePeriodSeconds"):
                if k in q:
                    options[k] = q[k]
            if q.get("orphanDependents") == "true":
                options["orphanDependents"] = True
            dry_run = dry_run or "All" in (options.get("dryRun") or [])
            return respond(self.api.delete(res, ns, name, options, dry_run=dry_run))
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    async def _body(self, request: web.Request, optional: bool = False) -> dict[str, Any] | None:
        raw = await request.read()
        if not raw:
            if optional:
                return None
            raise bad_request("the request body is empty")
        ctype = request.content_type
        try:
            served_as = request.get(SERVED_AS)
            obj: Any
            if ctype == "application/vnd.kubernetes.protobuf":
                obj = protobuf.decode(raw)
            elif ctype in ("application/yaml", "application/x-yaml"):
                obj = yaml.safe_load(raw)
            elif ctype in (JSON, "application/octet-stream", "text/plain", "*/*", ""):
                obj = json.loads(raw)
            else:
                obj = _UNKNOWN
            if obj is not _UNKNOWN:
                return versions.to_storage(served_as, obj) if served_as else obj
        except protobuf.ProtobufError as e:
            raise ApiError(415, "UnsupportedMediaType", str(e), {}) from e
        except (ValueError, yaml.YAMLError) as e:
            raise bad_request(f"the object provided is unrecognized: {e}") from e
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f'application/json, application/yaml, application/vnd.kubernetes.protobuf ("{ctype}")',
            {},
        )

    def _selectors(self, request: web.Request) -> tuple[list[Any], list[Any]]:
        try:
            return (
                parse_label_selector(request.query.get("labelSelector")),
                parse_field_selector(request.query.get("fieldSelector")),
            )
        except SelectorError as e:
            raise bad_request(str(e)) from e

    def list(self, request: web.Request, res: Resource, ns: str | None) -> web.Response:
        label_reqs, field_reqs = self._selectors(request)
        with self.store.lock:
            items = self.api.list(res, ns, label_reqs, field_reqs)
            rv = self.store.resource_version
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        cont = request.query.get("continue")
        if cont:
            try:
                after = json.loads(base64.urlsafe_b64decode(cont.encode()))
            except ValueError as e:
                raise bad_request("continue key is not valid") from e
            items = [
                i
                for i in items
                if [i["metadata"].get("namespace", ""), i["metadata"]["name"]] > after
            ]
        limit = int(request.query.get("limit") or 0)
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps([last.get("namespace", ""), last["name"]]).encode()
            ).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if tables.wants_table(request.headers.get("Accept", "")):
            return respond(
                tables.table(res, items, meta, request.query.get("includeObject", "Metadata"))
            )
        return respond(
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.group_version,
                "metadata": meta,
                "items": [_list_item(i) for i in items],
            }
        )

    async def delete_collection(
        self, request: web.Request, res: Resource, ns: str | None, dry_run: bool
    ) -> web.Response:
        label_reqs, field_reqs = self._selectors(request)
        options = await self._body(request, optional=True) or {}
        if "propagationPolicy" in request.query:
            options["propagationPolicy"] = request.query["propagationPolicy"]
        items = self.api.list(res, ns, label_reqs, field_reqs)
        for item in items:
            with contextlib.suppress(ApiError):
                self.api.delete(
                    res,
                    item["metadata"].get("namespace"),
                    item["metadata"]["name"],
                    options,
                    dry_run=dry_run,
                )
        return respond(
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.group_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": [_list_item(i) for i in items],
            }
        )

    async def patch_converted(
        self,
        request: web.Request,
        res: Resource,
        ns: str | None,
        name: str,
        sub: str | None,
        dry_run: bool,
    ) -> web.Response:
        """PATCH on another version of a stored resource: patch that version's view."""
        storage = versions.ALIASES[res]
        ctype = request.content_type
        body = await request.read()
        q = request.query
        if ctype == "application/apply-patch+yaml":
            doc = versions.to_storage(res, yaml.safe_load(body) or {})
            applied = self.api.apply(
                storage,
                ns,
                name,
                doc,
                q.get("fieldManager"),
                q.get("force") == "true",
                sub,
                dry_run,
            )
            return respond(applied)
        with self.store.lock:
            current = versions.from_storage(res, self.api.get(storage, ns or "", name))
            patched = self.api.patched(current, ctype, body)
            rv = (patched.get("metadata") or {}).get("resourceVersion")
            if rv and rv != current["metadata"]["resourceVersion"]:
                raise conflict(storage, name)
            updated = self.api.update(
                storage,
                ns,
                name,
                versions.to_storage(res, patched),
                subresource=sub,
                dry_run=dry_run,
                field_manager=_manager(request),
            )
        return respond(updated)

    async def scale(
        self, request: web.Request, res: Resource, ns: str | None, name: str, dry_run: bool
    ) -> web.Response:
        obj = self.api.get(res, ns or "", name)
        meta = obj["metadata"]

        def to_scale(o: dict[str, Any]) -> dict[str, Any]:
            m = o["metadata"]
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    k: m[k]
                    for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                    if k in m
                },
                "spec": {"replicas": (o.get("spec") or {}).get("replicas", 0)},
                "status": {
                    "replicas": (o.get("status") or {}).get("replicas", 0),
                    "selector": selector_string((o.get("spec") or {}).get("selector")),
                },
            }

        if request.method == "GET":
            return respond(to_scale(obj))
        if request.method == "PUT":
            scale = await self._body(request) or {}
        elif request.method == "PATCH":
            body = json.loads(await request.read() or b"{}")
            ctype = request.content_type
            current = to_scale(obj)
            scale = (
                patches.json_patch(current, body)
                if ctype == "application/json-patch+json"
                else patches.merge_patch(current, body)
            )
        else:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != meta["resourceVersion"]:
            raise conflict(res, name)
        obj["spec"]["replicas"] = int((scale.get("spec") or {}).get("replicas", 0))
        obj["metadata"].pop("resourceVersion", None)
        return respond(to_scale(self.api.update(res, ns, name, obj, dry_run=dry_run)))

    # --- watch -------------------------------------------------------------------------------

    async def watch(
        self, request: web.Request, res: Resource, ns: str | None, name: str | None = None
    ) -> web.StreamResponse:
        q = request.query
        label_reqs, field_reqs = self._selectors(request)
        if name:
            field_reqs.append(("metadata.name", "=", name))
        send_initial = q.get("sendInitialEvents") == "true"
        rv_param = q.get("resourceVersion") or ""
        since = (
            int(rv_param)
            if rv_param not in ("", "0") and rv_param.isdigit() and not send_initial
            else None
        )
        timeout = float(q.get("timeoutSeconds") or 0) or None
        loop = asyncio.get_running_loop()
        watcher, replay, current, cur_rv = self.store.watch(
            res, ns if res.namespaced else None, since, loop
        )

        def matches(obj: dict[str, Any] | None) -> bool:
            return (
                obj is not None
                and labels_match(label_reqs, obj["metadata"].get("labels"))
                and fields_match(field_reqs, obj)
            )

        resp = web.StreamResponse(headers={"Content-Type": JSON})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        as_table = tables.wants_table(request.headers.get("Accept", ""))
        include = q.get("includeObject", "Metadata")

        served_as = request.get(SERVED_AS)

        async def send(type_: str, obj: dict[str, Any]) -> None:
            if served_as:
                obj = versions.from_storage(served_as, obj)
            if as_table and type_ in ("ADDED", "MODIFIED", "DELETED"):
                meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
                obj = tables.table(res, [obj], meta, include)
            await resp.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")

        async def send_event(e: Event) -> None:
            new_ok = matches(e.obj)
            if e.type != "MODIFIED":
                if new_ok:
                    await send(e.type, e.obj)
                return
            old_ok = matches(e.old)
            if new_ok:
                await send("MODIFIED" if old_ok else "ADDED", e.obj)
            elif old_ok:
                await send("DELETED", e.obj)

        try:
            if since is None:
                for obj in current:
                    if matches(obj):
                        await send("ADDED", obj)
                if send_initial:
                    await send(
                        "BOOKMARK",
                        {
                            "kind": res.kind,
                            "apiVersion": res.group_version,
                            "metadata": {
                                "resourceVersion": str(cur_rv),
                                "annotations": {"k8s.io/initial-events-end": "true"},
                            },
                        },
                    )
            elif replay is None:
                await send(
                    "ERROR",
                    ApiError(
                        410, "Expired", f"too old resource version: {since} ({cur_rv})"
                    ).status(),
                )
                return resp
            else:
                for e in replay:
                    await send_event(e)
            deadline = loop.time() + timeout if timeout else None
            while not self.shutdown.is_set() and not _gone(request):
                remaining = deadline - loop.time() if deadline else 1.0
                if remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), min(remaining, 1.0))
                except asyncio.TimeoutError:
                    continue
                if event is None:
                    break
                if event.rv > cur_rv:
                    await send_event(event)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.store.unwatch(watcher)
        return resp

    # --- pod logs ----------------------------------------------------------------------------

    def _container(self, pod: dict[str, Any], wanted: str | None) -> dict[str, Any]:
        containers = (pod.get("spec") or {}).get("containers") or []
        name = pod["metadata"]["name"]
        if not wanted:
            if len(containers) != 1:  # the API server's words (LogLocation, pods/exec)
                names = " ".join(c["name"] for c in containers)
                inits = " ".join(
                    c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []
                )
                message = (
                    f"a container name must be specified for pod {name}, choose one of: [{names}]"
                )
                if inits:
                    message += f" or one of the init containers: [{inits}]"
                raise bad_request(message)
            return containers[0]
        for c in containers:
            if c["name"] == wanted:
                return c
        raise bad_request(f"container {wanted} is not valid for pod {name}")

    async def pod_log(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        q = request.query
        pod = self.api.get(POD, ns, name)
        container = self._container(pod, q.get("container"))
        cname = container["name"]
        if (pod.get("status") or {}).get("phase", "Pending") == "Pending":
            raise bad_request(
                f'container "{cname}" in pod "{name}" is waiting to start: ContainerCreating'
            )
        logs = self.emu.logs
        key = (ns, name, cname)
        if q.get("previous") == "true":
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            if not any(s.get("name") == cname and s.get("restartCount", 0) for s in statuses):
                raise bad_request(
                    f'previous terminated container "{cname}" in pod "{name}" not found'
                )
            return web.Response(
                text="\n".join(dagster.crash_lines(container)) + "\n", content_type="text/plain"
            )
        timestamps = q.get("timestamps") == "true"

        def render(entries: list[tuple[str, str]]) -> bytes:
            return "".join(f"{ts} {t}\n" if timestamps else f"{t}\n" for ts, t in entries).encode()

        entries = list(logs.lines.get(key, []))
        if q.get("tailLines"):
            n = int(q["tailLines"])
            entries = entries[-n:] if n else []
        if q.get("follow") != "true":
            return web.Response(body=render(entries), headers={"Content-Type": "text/plain"})
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        uid = pod["metadata"]["uid"]
        sent = len(logs.lines.get(key, []))
        try:
            await resp.write(render(entries))
            while not self.shutdown.is_set() and not _gone(request):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(logs.wait(), 0.5)
                current = logs.lines.get(key, [])
                if len(current) > sent:
                    await resp.write(render(current[sent:]))
                    sent = len(current)
                live = self.store.get(POD, ns, name)
                if live is None or live["metadata"]["uid"] != uid:
                    break
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    # --- pod exec ----------------------------------------------------------------------------

    async def pod_exec(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        q = request.query
        pod = self.api.get(POD, ns, name)
        container = self._container(pod, q.get("container"))
        if (pod.get("status") or {}).get("phase") != "Running":
            raise bad_request(
                f'unable to upgrade connection: container not found ("{container["name"]}")'
            )
        argv = q.getall("command", [])
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise bad_request("Upgrade request required")
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS)
        await ws.prepare(request)
        proto = ws.ws_protocol or ""
        result = None
        if self.emu.exec_handler is not None:
            result = self.emu.exec_handler(argv, pod, container)
        if result is None:
            version = self.emu.dagster_versions.get(ns, self.emu.dagster_version)
            result = dagster.run_command(argv, pod, container, version)
        if result.stdout and q.get("stdout", "true") == "true":
            await ws.send_bytes(b"\x01" + result.stdout.encode())
        if result.stderr and q.get("stderr", "true") == "true":
            await ws.send_bytes(b"\x02" + result.stderr.encode())
        versioned = proto in ("v4.channel.k8s.io", "v5.channel.k8s.io")
        if result.runtime_error:
            message = f"Internal error occurred: error executing command in container: {result.runtime_error}"
            status: dict[str, Any] = {
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "InternalError",
                "details": {"causes": [{"message": result.runtime_error}]},
                "code": 500,
            }
        elif result.exit_code:
            message = f"command terminated with non-zero exit code: error executing command {json.dumps(argv)}, exit code {result.exit_code}"
            status = {
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": str(result.exit_code)}]},
            }
        else:
            status = {"metadata": {}, "status": "Success"}
        if versioned:
            await ws.send_bytes(b"\x03" + json.dumps(status).encode())
        elif status["status"] != "Success":
            await ws.send_bytes(b"\x03" + status["message"].encode())
        await ws.close()
        return ws
