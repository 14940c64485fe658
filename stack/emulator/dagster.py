"""What Dagster looks like from the API server: its containers' log lines, the `dagster` CLI
answering `pods/exec`, and the objects Dagster's Helm chart (release `dagster`) leaves in a
namespace (`seed_dagster`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol


class Seedable(Protocol):
    """What `seed_dagster` needs of the `Emulator` (a protocol: no import of `emulator`)."""

    dagster_version: str
    dagster_versions: dict[str, str]

    def get(
        self, api_version: str, kind_plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None: ...
    def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...


DEFAULT_VERSION = "1.8.4"


def _ts() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S %z")


def _argv(container: dict[str, Any]) -> list[str]:
    return [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]


def _opt(argv: list[str], *names: str) -> str | None:
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def container_role(container: dict[str, Any]) -> str | None:
    """`code-server`, `daemon`, `webserver` or None, from the container's command line."""
    argv = _argv(container)
    text = " ".join(argv)
    if "dagster api grpc" in text or "dagster code-server start" in text:
        return "code-server"
    if "dagster-daemon" in text:
        return "daemon"
    if "dagster-webserver" in text or "dagit" in text:
        return "webserver"
    return None


def _code_desc(argv: list[str]) -> str:
    if f := _opt(argv, "-f", "--python-file"):
        return f" for file {f} "
    if p := _opt(argv, "--package-name"):
        return f" for package {p} "
    if m := _opt(argv, "-m", "--module-name"):
        return f" for module {m} "
    return " "


def _server_desc(container: dict[str, Any]) -> str:
    argv = _argv(container)
    port = _opt(argv, "-p", "--port") or "3030"
    return f"Dagster code server{_code_desc(argv)}on port {port} in process 1"


def startup_lines(container: dict[str, Any]) -> list[str]:
    """Lines a container prints when it starts (before it is ready)."""
    role = container_role(container)
    if role == "code-server":
        return [f"{_ts()} - dagster.code_server - INFO - Starting {_server_desc(container)}"]
    if role == "daemon":
        return [
            f"{_ts()} - dagster.daemon - INFO - Instance is configured with the following daemons: "
            "['AssetDaemon', 'BackfillDaemon', 'EventLogConsumerDaemon', 'QueuedRunCoordinatorDaemon', "
            "'SchedulerDaemon', 'SensorDaemon']"
        ]
    if role == "webserver":
        return [f"{_ts()} - dagster-webserver - INFO - Loading workspace..."]
    return [f"{container.get('name', 'container')}: started ({container.get('image', '')})"]


def ready_lines(container: dict[str, Any]) -> list[str]:
    """Lines a container prints once it serves (the moment its pod becomes ready)."""
    role = container_role(container)
    if role == "code-server":
        return [f"{_ts()} - dagster.code_server - INFO - Started {_server_desc(container)}"]
    if role == "daemon":
        return [
            f"{_ts()} - dagster.daemon.SensorDaemon - INFO - Not checking for any runs since no sensors have been started."
        ]
    if role == "webserver":
        argv = _argv(container)
        port = _opt(argv, "-p", "--port") or "80"
        return [
            f"{_ts()} - dagster-webserver - INFO - Serving dagster-webserver on http://0.0.0.0:{port} in process 1"
        ]
    return []


def crash_lines(container: dict[str, Any]) -> list[str]:
    """One failed start: a Python traceback of an import error (what a broken image prints)."""
    argv = _argv(container)
    target = _opt(argv, "-f", "--python-file") or "/opt/dagster/app/definitions.py"
    lines = startup_lines(container) if container_role(container) == "code-server" else []
    return [
        *lines,
        "Traceback (most recent call last):",
        '  File "/usr/local/bin/dagster", line 8, in <module>',
        "    sys.exit(main())",
        '  File "/usr/local/lib/python3.11/site-packages/dagster/_core/code_pointer.py", line 135, in load_python_file',
        "    return import_module_from_path(module_name, python_file)",
        f'  File "{target}", line 3, in <module>',
        "    import missing_dependency",
        "ModuleNotFoundError: No module named 'missing_dependency'",
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        "dagster._core.errors.DagsterImportError: Encountered ImportError: `No module named "
        f"'missing_dependency'` while importing module from file {target}.",
    ]


@dataclass
class ExecResult:
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    runtime_error: str | None = None  # the command could not start at all


def run_command(
    argv: list[str], pod: dict[str, Any], container: dict[str, Any], version: str
) -> ExecResult:
    """Emulate a command run inside a container of a Dagster image."""
    if not argv:
        return ExecResult(1, runtime_error="command is required")
    if argv[0] in ("sh", "/bin/sh", "bash", "/bin/bash") and len(argv) >= 3 and argv[1] == "-c":
        words = shlex.split(argv[2])
        if words[:1] == ["exit"]:
            return ExecResult(int(words[1]) if len(words) > 1 else 0)
        return run_command(words, pod, container, version)
    cmd, args = argv[0].rsplit("/", 1)[-1], argv[1:]
    if cmd in ("dagster", "dagster-daemon", "dagster-webserver") and args[:1] == ["--version"]:
        return ExecResult(0, f"{cmd}, version {version}\n")
    if cmd == "dagster" and args[:2] == ["api", "grpc-health-check"]:
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
        return (
            ExecResult(0, "gRPC connection successful\n")
            if ready
            else ExecResult(1, "Unable to connect to gRPC server: UNAVAILABLE\n")
        )
    if cmd in ("python", "python3") and args[:1] in (["--version"], ["-V"]):
        return ExecResult(0, "Python 3.11.9\n")
    if cmd == "echo":
        return ExecResult(0, " ".join(args) + "\n")
    if cmd == "true":
        return ExecResult(0)
    if cmd == "false":
        return ExecResult(1)
    if cmd == "hostname":
        return ExecResult(0, pod["metadata"]["name"] + "\n")
    if cmd == "env":
        env = {"HOSTNAME": pod["metadata"]["name"], "DAGSTER_HOME": "/opt/dagster/dagster_home"}
        env.update(
            {e["name"]: str(e.get("value", "")) for e in container.get("env") or [] if "name" in e}
        )
        return ExecResult(0, "".join(f"{k}={v}\n" for k, v in env.items()))
    if cmd in ("dagster", "dagster-daemon"):
        return ExecResult(
            2,
            stderr=f"Usage: {cmd} [OPTIONS] COMMAND [ARGS]...\nTry '{cmd} --help' for help.\n\nError: No such command '{args[0] if args else ''}'.\n",
        )
    return ExecResult(
        127,
        runtime_error=(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: "
            f'"{argv[0]}": executable file not found in $PATH: unknown'
        ),
    )


# --- the webserver's workspace reload ------------------------------------------------


class Webservers:
    """Dagster's webservers as dagster-uc's reload probe (`dagster_uc.reload.PROBE`, run with
    `python -c` in the webserver container) finds them: each reads the mounted workspace file,
    reloads when the file lists the expected locations and answers what it then shows.

    Installed as the emulator's `exec_handler` by `seed_dagster` (other commands fall through
    to `run_command`). The mounted file is the workspace ConfigMap as the kubelet projects it:
    a change shows in a running pod's file `mount_delay` seconds after this model first saw it
    (the kubelet's sync period; 0 by default), and in a pod started after it at once. Each
    webserver pod loads the file as it was when the pod was created, then only on a reload.
    `reloads` counts the reloads per namespace.
    """

    def __init__(self, cluster: Seedable, previous: Any = None) -> None:
        self.cluster = cluster
        self.previous = previous
        self.mount_delay = 0.0
        self.reloads: dict[str, int] = {}
        self._history: dict[tuple[str, str], list[tuple[float, str]]] = {}
        self._loaded: dict[str, list[str]] = {}  # pod uid -> location names shown

    def __call__(self, argv: list[str], pod: dict[str, Any], container: dict[str, Any]) -> Any:
        if self.previous is not None:
            answer = self.previous(argv, pod, container)
            if answer is not None:
                return answer
        if not (
            len(argv) == 4
            and argv[0].rsplit("/", 1)[-1] in ("python", "python3")
            and argv[1] == "-c"
            and "reloadWorkspace" in argv[2]
            and container_role(container) == "webserver"
        ):
            return None
        import json

        try:
            args = json.loads(argv[3])
        except ValueError:
            return ExecResult(1, stderr="json.decoder.JSONDecodeError: Expecting value\n")
        return ExecResult(0, json.dumps(self.probe(pod, container, args)) + "\n")

    def seeded(self, namespace: str, configmap: dict[str, Any]) -> None:
        """The ConfigMap as the chart created it: what webserver pods started with."""
        for key, text in (configmap.get("data") or {}).items():
            self._history[(namespace, configmap["metadata"]["name"], key)] = [(0.0, text)]

    def probe(
        self, pod: dict[str, Any], container: dict[str, Any], args: dict[str, Any]
    ) -> dict[str, Any]:
        import time

        meta = pod["metadata"]
        namespace, uid = meta["namespace"], meta["uid"]
        now = time.time()
        history = self._observe(pod, container, args["workspace"], now)
        out: dict[str, Any] = {"file": None, "reloaded": False}
        if history is None:
            out["file_error"] = (
                f"FileNotFoundError: [Errno 2] No such file or directory: {args['workspace']!r}"
            )
            file_names = None
        else:
            visible = [text for seen, text in history if seen <= now - self.mount_delay] or [
                history[0][1]
            ]
            file_names = out["file"] = sorted(_locations(visible[-1]))
        shown = self._started_with(pod, history)
        if file_names == sorted(args.get("expect") or []) and shown != file_names:
            out["reloaded"] = True
            if "--read-only" in " ".join(_argv(container)):
                out["workspace"] = {
                    "__typename": "UnauthorizedError",
                    "message": "Unauthorized: Dagster UI is currently in read-only mode",
                }
                return out
            self._loaded[uid] = shown = list(file_names)
            self.reloads[namespace] = self.reloads.get(namespace, 0) + 1
        out["workspace"] = {
            "__typename": "Workspace",
            "locationEntries": [
                {
                    "name": name,
                    "loadStatus": "LOADED",
                    "locationOrLoadError": {"__typename": "RepositoryLocation"},
                }
                for name in shown
            ],
        }
        return out

    def _started_with(
        self, pod: dict[str, Any], history: list[tuple[float, str]] | None
    ) -> list[str]:
        """What pod shows: the file as it was when the pod was created, until a reload."""
        meta = pod["metadata"]
        if meta["uid"] not in self._loaded:
            created = _epoch(meta.get("creationTimestamp")) + 0.999  # whole seconds
            at_start = [text for seen, text in history or [] if seen <= created] or [
                text for _seen, text in (history or [])
            ][-1:]
            self._loaded[meta["uid"]] = sorted(_locations(at_start[-1])) if at_start else []
        return self._loaded[meta["uid"]]

    def shown(
        self, pod: dict[str, Any], workspace: str = "/dagster-workspace/workspace.yaml"
    ) -> list[str]:
        """The locations webserver `pod` shows now (for a watcher such as the benchmark, which
        calls this often so that the time of each ConfigMap change is seen closely)."""
        import time

        container = next(
            (c for c in pod["spec"]["containers"] if container_role(c) == "webserver"),
            pod["spec"]["containers"][0],
        )
        return list(self._started_with(pod, self._observe(pod, container, workspace, time.time())))

    def _observe(
        self, pod: dict[str, Any], container: dict[str, Any], path: str, now: float
    ) -> list[tuple[float, str]] | None:
        """The contents the workspace ConfigMap behind `path` had, as first seen (None: no
        ConfigMap volume is mounted there)."""
        directory, _, key = path.rpartition("/")
        volumes = {v.get("name"): v for v in pod.get("spec", {}).get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            if mount.get("mountPath", "").rstrip("/") != directory.rstrip("/"):
                continue
            source = (volumes.get(mount.get("name")) or {}).get("configMap") or {}
            if not source.get("name"):
                continue
            namespace = pod["metadata"]["namespace"]
            cm = self.cluster.get("v1", "configmaps", namespace, source["name"])
            if cm is None or key not in (cm.get("data") or {}):
                return None
            history = self._history.setdefault((namespace, source["name"], key), [])
            if not history or history[-1][1] != cm["data"][key]:
                history.append((0.0 if not history else now, cm["data"][key]))
            return history
        return None


def _locations(text: str) -> list[str]:
    import yaml

    document = yaml.safe_load(text) or {}
    return [
        (next(iter(entry.values())) or {}).get("location_name", "")
        for entry in document.get("load_from") or []
        if isinstance(entry, dict) and entry
    ]


def _epoch(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    return (
        datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    )


def webservers(emu: Any) -> Webservers:
    """The emulator's webserver model (installed by `seed_dagster`)."""
    handler = emu.exec_handler
    while handler is not None and not isinstance(handler, Webservers):
        handler = getattr(handler, "previous", None)
    if handler is None:
        raise LookupError("seed_dagster has not installed the webserver model")
    return handler


# --- seed -----------------------------------------------------------------------------


def _labels(version: str, component: str, deployment: str | None = None) -> dict[str, str]:
    labels = {
        "helm.sh/chart": f"dagster-{version}",
        "app.kubernetes.io/name": "dagster",
        "app.kubernetes.io/instance": "dagster",
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/managed-by": "Helm",
        "component": component,
    }
    if deployment:
        labels["deployment"] = deployment
    return labels


def _helm_annotations(namespace: str) -> dict[str, str]:
    return {"meta.helm.sh/release-name": "dagster", "meta.helm.sh/release-namespace": namespace}


def seed_dagster(
    emu: Seedable, namespace: str = "dagster", dagster_version: str = DEFAULT_VERSION
) -> None:
    """Create what Dagster's Helm chart leaves that dagster-uc touches: the namespace, the
    webserver and daemon Deployments (their pods come from the controllers) and the
    workspace ConfigMap."""
    emu.dagster_version = dagster_version
    emu.dagster_versions[namespace] = dagster_version
    if hasattr(emu, "exec_handler"):
        try:
            webservers(emu)
        except LookupError:
            setattr(emu, "exec_handler", Webservers(emu, emu.exec_handler))  # noqa: B010
    if emu.get("v1", "namespaces", "", namespace) is None:
        emu.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    image = f"docker.io/dagster/dagster-celery-k8s:{dagster_version}"
    selector = {"app.kubernetes.io/name": "dagster", "app.kubernetes.io/instance": "dagster"}
    workspace_volume = {
        "name": "dagster-workspace-yaml",
        "configMap": {"name": "dagster-workspace-yaml", "defaultMode": 420},
    }
    deployments = [
        (
            "dagster-dagster-webserver",
            "dagster-webserver",
            None,
            {
                "name": "dagster",
                "image": image,
                "command": [
                    "/bin/bash",
                    "-c",
                    "dagster-webserver -h 0.0.0.0 -p 80 -w /dagster-workspace/workspace.yaml",
                ],
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "volumeMounts": [
                    {"name": "dagster-workspace-yaml", "mountPath": "/dagster-workspace/"}
                ],
            },
        ),
        (
            "dagster-daemon",
            "dagster-daemon",
            "daemon",
            {
                "name": "dagster",
                "image": image,
                "command": [
                    "/bin/bash",
                    "-c",
                    "dagster-daemon run -w /dagster-workspace/workspace.yaml",
                ],
                "volumeMounts": [
                    {"name": "dagster-workspace-yaml", "mountPath": "/dagster-workspace/"}
                ],
            },
        ),
    ]
    # Before the Deployments: a real API server refuses pods of a ServiceAccount not there.
    if emu.get("v1", "serviceaccounts", namespace, "dagster") is None:
        emu.create(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": "dagster",
                    "namespace": namespace,
                    "labels": _labels(dagster_version, "dagster"),
                },
            }
        )
    for name, component, deployment, container in deployments:
        if emu.get("apps/v1", "deployments", namespace, name) is not None:
            continue
        pod_labels = {**selector, "component": component}
        if deployment:
            pod_labels["deployment"] = deployment
        emu.create(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": _labels(dagster_version, component, deployment),
                    "annotations": _helm_annotations(namespace),
                },
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": dict(pod_labels)},
                    "template": {
                        "metadata": {"labels": pod_labels},
                        "spec": {
                            "serviceAccountName": "dagster",
                            "containers": [container],
                            "volumes": [workspace_volume],
                        },
                    },
                },
            }
        )
    if emu.get("v1", "services", namespace, "dagster-dagster-webserver") is None:
        emu.create(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "dagster-dagster-webserver",
                    "namespace": namespace,
                    "labels": _labels(dagster_version, "dagster-webserver"),
                    "annotations": _helm_annotations(namespace),
                },
                "spec": {
                    "type": "ClusterIP",
                    "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP", "name": "http"}],
                    "selector": {**selector, "component": "dagster-webserver"},
                },
            }
        )
    if emu.get("v1", "configmaps", namespace, "dagster-workspace-yaml") is None:
        emu.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "dagster-workspace-yaml",
                    "namespace": namespace,
                    "labels": {
                        k: v
                        for k, v in _labels(dagster_version, "dagster").items()
                        if k != "component"
                    },
                },
                "data": {"workspace.yaml": "load_from: []\n"},
            }
        )
    workspace = emu.get("v1", "configmaps", namespace, "dagster-workspace-yaml")
    if workspace is not None and hasattr(emu, "exec_handler"):
        webservers(emu).seeded(namespace, workspace)
