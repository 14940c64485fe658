"""Make Dagster's running webserver show a changed workspace, without restarting it.

The webserver reads `workspace.yaml` when it starts and again when its `reloadWorkspace`
GraphQL mutation runs (`WorkspaceProcessContext.reload_workspace` re-reads the file through
`WorkspaceFileTarget.create_origins`). The file is the workspace ConfigMap mounted into its
pod, which the kubelet updates up to about a minute after the ConfigMap changed. So: exec into
each ready webserver pod a small Python program (the Dagster image has Python, PyYAML and the
GraphQL endpoint on localhost) that reads the mounted file, calls `reloadWorkspace` once the
file lists the expected locations, and prints what the webserver then reports; repeat until
the webserver reports exactly the expected set or the time is up. See docs/reload.md.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dagster_uc import output
from dagster_uc.errors import DagsterUcError
from dagster_uc.kube import api_error_code, api_errors, describe_api_error

if TYPE_CHECKING:
    from lightkube import Client

#: Where Dagster's chart mounts the workspace ConfigMap, and the webserver's default port.
DEFAULT_WORKSPACE = "/dagster-workspace/workspace.yaml"
DEFAULT_PORT = "3000"

_ENTRIES = "locationEntries { name loadStatus locationOrLoadError { __typename ... on PythonError { message } } }"
# Dagster's GraphQL schema (dagster_graphql/schema): `workspaceOrError` is `Workspace |
# PythonError`; `reloadWorkspace` is `Workspace | UnauthorizedError | PythonError`.
WORKSPACE_QUERY = f"{{ workspaceOrError {{ __typename ... on Workspace {{ {_ENTRIES} }} ... on PythonError {{ message }} }} }}"
RELOAD_MUTATION = (
    f"mutation {{ reloadWorkspace {{ __typename ... on Workspace {{ {_ENTRIES} }} "
    "... on PythonError { message } ... on UnauthorizedError { message } } }"
)

#: Runs inside the webserver container: `python -c PROBE '{"url", "workspace", "expect", "timeout"}'`.
#: Prints one JSON object: the location names in the mounted file (`file`), whether it asked for
#: a reload, and the `Workspace` (or error) the webserver answered.
PROBE = f"""\
import json, sys, urllib.request
a = json.loads(sys.argv[1])
out = {{"file": None, "reloaded": False}}
try:
    import yaml
    with open(a["workspace"]) as f:
        doc = yaml.safe_load(f) or {{}}
    out["file"] = sorted(next(iter(e.values())).get("location_name", "") for e in doc.get("load_from") or [])
except Exception as e:
    out["file_error"] = type(e).__name__ + ": " + str(e)
def gql(query):
    req = urllib.request.Request(a["url"], json.dumps({{"query": query}}).encode(), {{"Content-Type": "application/json"}})
    with urllib.request.urlopen(req, timeout=a["timeout"]) as r:
        return json.load(r)["data"]
try:
    ws = gql({WORKSPACE_QUERY!r})["workspaceOrError"]
    shown = sorted(e["name"] for e in ws.get("locationEntries") or [])
    if out["file"] == sorted(a["expect"]) and shown != out["file"]:
        ws = gql({RELOAD_MUTATION!r})["reloadWorkspace"]
        out["reloaded"] = True
    out["workspace"] = ws
except Exception as e:
    body = e.read()[:300].decode(errors="replace") if hasattr(e, "read") else ""
    out["error"] = type(e).__name__ + ": " + str(e) + (" " + body if body else "")
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Webserver:
    """One ready webserver pod and how to reach Dagster inside it."""

    pod: str
    container: str
    url: str
    workspace: str


@dataclass(frozen=True)
class Location:
    name: str
    status: str  # LOADED / LOADING
    error: str | None = None  # the load error the webserver shows for it


@dataclass
class Probe:
    """One answer of the in-pod program."""

    file: list[str] | None = None
    locations: list[Location] | None = None  # None: the webserver gave no workspace
    reloaded: bool = False
    error: str | None = None
    permanent: bool = False  # retrying cannot help (read-only webserver, no python, ...)

    def describe(self) -> str:
        shown = (
            "no workspace"
            if self.locations is None
            else ", ".join(loc.name for loc in self.locations) or "no locations"
        )
        return f"file lists {', '.join(self.file or []) or 'nothing'}; webserver shows {shown}" + (
            " (after a reload)" if self.reloaded else ""
        )

    def shows(self, expected: set[str]) -> bool:
        return self.locations is not None and {loc.name for loc in self.locations} == expected


@dataclass
class ReloadOutcome:
    visible: bool
    seconds: float
    reason: str = ""  # why not, when not visible
    locations: list[Location] = field(default_factory=list)
    reloads: int = 0  # how many times a reload was asked for
    permanent: bool = False  # waiting could not have helped


def workspace_locations(document: dict[str, Any]) -> list[str]:
    """The location names of a workspace document, as the in-pod program reads them (pure)."""
    return [
        (next(iter(entry.values())) or {}).get("location_name", "")
        for entry in document.get("load_from") or []
        if isinstance(entry, dict) and entry
    ]


def webserver_url(argv: list[str]) -> tuple[str, str]:
    """The GraphQL URL on localhost and the workspace file, from the webserver's command line
    (Dagster's chart runs `/bin/bash -c "dagster-webserver -h 0.0.0.0 -p 80 -w ... [--path-prefix P]"`)."""
    words: list[str] = []
    for arg in argv:
        words.extend(shlex.split(arg) if " " in arg else [arg])
    options: dict[str, str] = {}
    for i, word in enumerate(words):
        name, eq, value = word.partition("=")
        if eq and name.startswith("-"):
            options[name] = value
        elif word.startswith("-") and i + 1 < len(words):
            options[word] = words[i + 1]
    port = options.get("-p") or options.get("--port") or DEFAULT_PORT
    prefix = (options.get("-l") or options.get("--path-prefix") or "").rstrip("/")
    host = options.get("-h") or options.get("--host") or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    workspace = options.get("-w") or options.get("--workspace") or DEFAULT_WORKSPACE
    return f"http://{host}:{port}{prefix}/graphql", workspace


def parse_probe(stdout: str) -> Probe:
    """The in-pod program's JSON line -> Probe (pure)."""
    try:
        data = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Probe(error=f"unexpected answer from the webserver pod: {stdout.strip()[:200]!r}")
    probe = Probe(file=data.get("file"), reloaded=bool(data.get("reloaded")))
    if data.get("file_error"):
        # The workspace ConfigMap is mounted into the pod before it starts; a ready webserver
        # pod without the file is not the webserver that reads it (or not Dagster's image).
        probe.error = f"the webserver pod has no readable workspace file ({data['file_error']})"
        probe.permanent = True
        return probe
    if data.get("error"):
        probe.error = f"the webserver did not answer ({data['error']})"
        return probe
    workspace = data.get("workspace") or {}
    kind = workspace.get("__typename")
    if kind == "Workspace":
        probe.locations = [
            Location(
                e["name"],
                e.get("loadStatus") or "",
                ((e.get("locationOrLoadError") or {}).get("message") or None)
                if (e.get("locationOrLoadError") or {}).get("__typename") == "PythonError"
                else None,
            )
            for e in workspace.get("locationEntries") or []
        ]
    elif kind == "UnauthorizedError":
        probe.error = (
            f"the webserver refused to reload ({workspace.get('message')}); is it read-only?"
        )
        probe.permanent = True
    else:
        probe.error = f"the webserver answered {kind}: {workspace.get('message', '')}".rstrip(": ")
    return probe


def find_webservers(client: Client, namespace: str, deployment: str) -> list[Webserver]:
    """The ready pods of the webserver Deployment (one GET, one LIST)."""
    from lightkube.resources.apps_v1 import Deployment
    from lightkube.resources.core_v1 import Pod

    with api_errors(f"read Deployment {deployment}"):
        dep = client.get(Deployment, deployment, namespace=namespace)
    assert dep.spec is not None
    labels = dict(dep.spec.selector.matchLabels or {})
    with api_errors(f"list the pods of Deployment {deployment}"):
        pods = list(client.list(Pod, namespace=namespace, labels=labels))
    found = []
    for pod in pods:
        if pod.metadata is None or pod.metadata.deletionTimestamp or pod.spec is None:
            continue
        conditions = (pod.status.conditions or []) if pod.status else []
        if not any(c.type == "Ready" and c.status == "True" for c in conditions):
            continue
        containers = pod.spec.containers
        chosen = next(
            (c for c in containers if "dagster-webserver" in " ".join(_argv(c))), containers[0]
        )
        url, workspace = webserver_url(_argv(chosen))
        found.append(Webserver(pod.metadata.name or "", chosen.name, url, workspace))
    return found


def _argv(container: Any) -> list[str]:
    return [*(container.command or []), *(container.args or [])]


def probe_webserver(
    client: Client, namespace: str, server: Webserver, expected: set[str], timeout_s: float
) -> Probe:
    """One exec of the in-pod program (asks for a reload only once the file is up to date)."""
    import httpx2
    from lightkube import ApiError

    arguments = {
        "url": server.url,
        "workspace": server.workspace,
        "expect": sorted(expected),
        "timeout": max(1.0, timeout_s),
    }
    try:
        answer = client.exec(
            server.pod,
            namespace=namespace,
            container=server.container,
            command=["python", "-c", PROBE, json.dumps(arguments)],
            stdout=True,
            stderr=True,
            timeout=timeout_s + 5,
        )
    except ApiError as exc:
        code = api_error_code(exc)
        # 403: exec not allowed; 400/404: pod gone or not running (a restart of it: retry).
        return Probe(error=describe_api_error(exc), permanent=code in (401, 403))
    except httpx2.HTTPError as exc:
        return Probe(error=describe_api_error(exc))
    if answer.exit_code:
        stderr = str(answer.stderr or "").strip().splitlines()
        return Probe(
            error=f"the command in pod {server.pod} exited with {answer.exit_code}"
            + (f": {stderr[-1]}" if stderr else ""),
            permanent=answer.exit_code in (126, 127),
        )
    return parse_probe(str(answer.stdout or ""))


def reload_webserver(
    client: Client,
    namespace: str,
    deployment: str,
    expected: set[str],
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReloadOutcome:
    """Poll (with backoff) every ready webserver pod until each reports exactly `expected`."""
    start = clock()
    deadline = start + timeout_s
    delay = 0.5
    reloads = 0
    reason = "no ready webserver pod"
    while True:
        try:
            servers = find_webservers(client, namespace, deployment)
        except DagsterUcError as exc:  # no such Deployment, no right to list its pods, ...
            return ReloadOutcome(False, clock() - start, str(exc).rstrip("."), permanent=True)
        probes = []
        for server in servers:
            probe = probe_webserver(
                client, namespace, server, expected, max(1.0, deadline - clock())
            )
            reloads += probe.reloaded
            probes.append(probe)
            output.debug(f"webserver pod {server.pod}: {probe.error or probe.describe()}")
            if probe.permanent:
                return ReloadOutcome(
                    False, clock() - start, f"{probe.error}", reloads=reloads, permanent=True
                )
        if servers and all(p.shows(expected) for p in probes):
            return ReloadOutcome(
                True, clock() - start, locations=probes[0].locations or [], reloads=reloads
            )
        if probes:
            reason = _waiting_for(probes, expected)
        if clock() + delay > deadline:
            return ReloadOutcome(False, clock() - start, reason, reloads=reloads)
        sleep(delay)
        delay = min(delay * 2, 3.0)


def _waiting_for(probes: list[Probe], expected: set[str]) -> str:
    """What the last round of probes was still waiting for, in words."""
    for probe in probes:
        if probe.error:
            return probe.error
        if probe.file is not None and set(probe.file) != expected:
            return "the workspace file in the webserver pod is not updated yet (the kubelet syncs ConfigMap volumes about once a minute)"
        if not probe.shows(expected):
            shown = sorted(loc.name for loc in probe.locations or [])
            return f"the webserver shows {', '.join(shown) or 'no locations'}"
    return "unknown"
