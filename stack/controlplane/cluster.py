"""Start and stop a real Kubernetes control plane on loopback: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, and kwok playing the kubelet of one fake node.

Everything lives in one state directory (certificates, etcd data, logs, kubeconfigs, pids),
so `ControlPlane.stop()` (or `stop_from_state(dir)` from another process) leaves no process
behind. The binaries come from `stack.controlplane.build`.

What kwok does here (its configuration is written to `kwok.yaml`):
- the node stages of kwok's module make the node `kwok-node-0` Ready and renew its Lease;
- `pod-stages.yaml` beside this file makes pods Running and Ready (or crash-looping when a
  test marked them, see `holds.py`), kwok's own stages complete Job pods and delete pods;
- `ClusterLogs` serves every container's log from a file the tests and the seed write to
  (a code server's startup lines), `ClusterExec` runs `kubectl exec` commands on this host
  with `exec-bin/` first on PATH, where a stub `dagster` answers `--version`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from .build import ControlPlaneBinaries, kwok_module_dir
from .faults import FaultProxy
from .pki import Pki, create_pki

HERE = Path(__file__).resolve().parent
NODE_NAME = "kwok-node-0"
KWOK_MODULE_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
KWOK_CRDS = ("logs", "clusterlogs", "execs", "clusterexecs")
DAGSTER_STUB = """#!/bin/sh
# `dagster` inside a pod of the local control plane (kwok runs exec commands on the host).
if [ "$1" = "--version" ] || [ "$2" = "--version" ]; then
  echo "${0##*/}, version ${DAGSTER_VERSION:-1.8.4}"
  exit 0
fi
echo "Usage: ${0##*/} [OPTIONS] COMMAND [ARGS]..." >&2
exit 2
"""


# Served for a container that has no log file of its own (see podlogs.py for those).
DEFAULT_LOG = (
    "2026-01-01T00:00:00.000000Z stdout F 2026-01-01 00:00:00 +0000 - dagster.code_server - "
    "INFO - Starting Dagster code server on port 3030 in process 1\n"
    "2026-01-01T00:00:00.000000Z stdout F 2026-01-01 00:00:00 +0000 - dagster.code_server - "
    "INFO - Started Dagster code server on port 3030 in process 1\n"
)


# `python` inside a pod: answers dagster-uc's workspace probe (src/dagster_uc/reload.py) as the
# Dagster webserver of that pod would, with the workspace ConfigMap as the mounted file; any
# other use runs the host's Python. A webserver pod shows the file as it was at its first probe
# (its start, as far as anyone can tell) until a reload is asked for.
PYTHON_STUB = """#!{python}
import json, os, ssl, sys, urllib.request
args = sys.argv[1:]
probe = None
if len(args) == 3 and args[0] == "-c":
    try:
        probe = json.loads(args[2])
    except ValueError:
        probe = None
if not isinstance(probe, dict) or not {{"url", "workspace", "expect"}} <= set(probe):
    os.execv({python!r}, [{python!r}, *args])
import yaml
state = json.load(open(os.path.join(os.environ["STACK_STATE_DIR"], "api.json")))
context = ssl.create_default_context(cafile=state["ca"])
namespace = os.environ["POD_NAMESPACE"]
request = urllib.request.Request(
    state["url"] + "/api/v1/namespaces/" + namespace + "/configmaps/dagster-workspace-yaml",
    headers={{"Authorization": "Bearer " + state["token"]}},
)
with urllib.request.urlopen(request, context=context, timeout=10) as answer:
    text = json.load(answer).get("data", {{}}).get("workspace.yaml", "")
doc = yaml.safe_load(text) or {{}}
names = sorted(
    (next(iter(e.values())) or {{}}).get("location_name", "") for e in doc.get("load_from") or []
)
shown_file = os.path.join(os.environ["STACK_STATE_DIR"], "webservers", namespace + "." + os.environ["POD_NAME"])
os.makedirs(os.path.dirname(shown_file), exist_ok=True)
shown = json.load(open(shown_file)) if os.path.exists(shown_file) else names
reloaded = names == sorted(probe["expect"]) and shown != names
if reloaded:
    shown = names
json.dump(shown, open(shown_file, "w"))
entries = [
    {{"name": n, "loadStatus": "LOADED", "locationOrLoadError": {{"__typename": "RepositoryLocation"}}}}
    for n in shown
]
print(json.dumps({{"file": names, "reloaded": reloaded, "workspace": {{"__typename": "Workspace", "locationEntries": entries}}}}))
"""


class ControlPlaneError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Ports:
    etcd: int = field(default_factory=free_port)
    etcd_peer: int = field(default_factory=free_port)
    apiserver: int = field(default_factory=free_port)
    kwok: int = field(default_factory=free_port)
    kwok_metrics: int = field(default_factory=free_port)


@dataclass
class ControlPlane:
    """A control plane whose files live in `state_dir`."""

    binaries: ControlPlaneBinaries
    state_dir: Path
    dagster_version: str = "1.8.4"
    #: End every process when the process that started them dies (test fixtures); off for
    #: `stackctl up`, whose control plane outlives it.
    die_with_parent: bool = False
    ports: Ports = field(default_factory=Ports)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def pki(self) -> Pki:
        return Pki(self.state_dir / "pki")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pod_log_file(self) -> Path:
        """What every container's log says (kwok's ClusterLogs serves it, following it)."""
        return self.state_dir / "pod-logs" / "default.log"

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, *, timeout: float = 90) -> ControlPlane:
        deadline = time.monotonic() + timeout
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        create_pki(self.state_dir / "pki")
        self._write_admin_kubeconfig()
        try:
            self._spawn("etcd", self._etcd_args())
            self._wait_http(f"http://127.0.0.1:{self.ports.etcd}/health", deadline, "etcd")
            self._spawn("kube-apiserver", self._apiserver_args())
            self._wait_apiserver(deadline)
            self._apply_kwok_crds()
            self._spawn("kube-controller-manager", self._controller_manager_args())
            self._spawn("kube-scheduler", self._scheduler_args())
            self._write_kwok_files()
            self._spawn("kwok", self._kwok_args(), env=self._kwok_env())
            self._create_node()
            self._wait_node_ready(deadline)
        except BaseException:
            self.stop()
            raise
        self._write_pids()
        return self

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            _terminate(self.processes[name])
        self.processes.clear()
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / "pids.json").unlink()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- clients -------------------------------------------------------------------------

    def admin_client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            verify=self.ssl_context(),
            headers={"Authorization": f"Bearer {self.pki.admin_token}"},
            trust_env=False,
            **kwargs,
        )

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca_cert))

    def serving_ssl_context(self) -> ssl.SSLContext:
        """TLS for a server on 127.0.0.1 with the API server's certificate (the fault proxy)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.pki.server_cert), str(self.pki.server_key))
        context.set_alpn_protocols(["http/1.1"])
        return context

    def fault_proxy(self) -> FaultProxy:
        return FaultProxy(
            self.url, self.ssl_context(), self.pki.admin_token, self.serving_ssl_context()
        )

    # --- processes -----------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.logs_dir / f"{name}.log").open("ab")
        binary = self.binaries.path(name)
        self.processes[name] = subprocess.Popen(
            [str(binary), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env or _base_env(),
            start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        log.close()

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = "\n".join(
                    (self.logs_dir / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                )
                raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _wait_http(self, url: str, deadline: float, what: str, **kwargs: Any) -> None:
        delay = 0.05
        with httpx.Client(trust_env=False, timeout=2, **kwargs) as client:
            while True:
                self._check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"{what} did not become ready in time")
                time.sleep(delay)
                delay = min(delay * 1.5, 0.5)

    def _wait_apiserver(self, deadline: float) -> None:
        headers = {"Authorization": f"Bearer {self.pki.admin_token}"}
        self._wait_http(
            f"{self.url}/readyz",
            deadline,
            "kube-apiserver",
            verify=self.ssl_context(),
            headers=headers,
        )

    def _etcd_args(self) -> list[str]:
        p = self.ports
        return [
            "--name=local",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{p.etcd}",
            f"--advertise-client-urls=http://127.0.0.1:{p.etcd}",
            f"--listen-peer-urls=http://127.0.0.1:{p.etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p.etcd_peer}",
            f"--initial-cluster=local=http://127.0.0.1:{p.etcd_peer}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        pki = self.pki
        return [
            f"--etcd-servers=http://127.0.0.1:{self.ports.etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports.apiserver}",
            f"--tls-cert-file={pki.server_cert}",
            f"--tls-private-key-file={pki.server_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={pki.token_file}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC",
            "--endpoint-reconciler-type=none",
            "--kubelet-preferred-address-types=InternalIP",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=0",
        ]

    def _controller_manager_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.admin_kubeconfig}",
            "--leader-elect=false",
            f"--service-account-private-key-file={self.pki.sa_key}",
            f"--root-ca-file={self.pki.ca_cert}",
            "--secure-port=0",
            "--controllers=*,-node-ipam-controller,-node-lifecycle-controller,"
            "-persistentvolume-binder-controller,-persistentvolume-attach-detach-controller,"
            "-persistentvolume-expander-controller,-ttl-controller",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            "--v=0",
        ]

    def _scheduler_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.admin_kubeconfig}",
            f"--authentication-kubeconfig={self.admin_kubeconfig}",
            f"--authorization-kubeconfig={self.admin_kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            "--v=0",
        ]

    def _kwok_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.admin_kubeconfig}",
            f"--config={self.state_dir / 'kwok.yaml'}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-ip=127.0.0.1",
            f"--node-name={NODE_NAME}",
            f"--node-port={self.ports.kwok}",
            f"--server-address=127.0.0.1:{self.ports.kwok}",
            f"--tls-cert-file={self.pki.server_cert}",
            f"--tls-private-key-file={self.pki.server_key}",
            "--node-lease-duration-seconds=40",
            "--enable-crds=" + ",".join(("Logs", "ClusterLogs", "Exec", "ClusterExec")),
        ]

    def exec_env(self, **pod: str) -> list[dict[str, str]]:
        """The environment of a command `kubectl exec` runs (kwok runs it on this host)."""
        env = {
            "DAGSTER_VERSION": self.dagster_version,
            "STACK_STATE_DIR": str(self.state_dir),
            **pod,
        }
        return [{"name": k, "value": v} for k, v in env.items()]

    def _kwok_env(self) -> dict[str, str]:
        env = _base_env()
        env["PATH"] = f"{self.state_dir / 'exec-bin'}{os.pathsep}{env.get('PATH', '')}"
        env["DAGSTER_VERSION"] = self.dagster_version
        return env

    # --- configuration -------------------------------------------------------------------

    def _write_admin_kubeconfig(self) -> None:
        pki = self.pki
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.url, "certificate-authority": str(pki.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(pki.admin_cert),
                        "client-key": str(pki.admin_key),
                    },
                }
            ],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
            "current-context": "local",
        }
        self.admin_kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.admin_kubeconfig.chmod(0o600)

    def _write_kwok_files(self) -> None:
        module = kwok_module_dir()
        documents: list[dict[str, Any]] = [
            {
                "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
                "kind": "KwokConfiguration",
                "options": {
                    "cidr": "10.244.0.0/16",
                    "podPlayStageParallelism": 8,
                    "nodePlayStageParallelism": 2,
                    "nodeLeaseParallelism": 2,
                    "podsOnNodeSyncParallelism": 1,
                    "enableDebuggingHandlers": True,
                    "enablePodsOnNodeSyncListPager": True,
                },
            }
        ]
        for rel in KWOK_MODULE_STAGES:
            documents.append(yaml.safe_load((module / rel).read_text()))
        documents.extend(yaml.safe_load_all((HERE / "pod-stages.yaml").read_text()))
        (self.state_dir / "kwok.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
        exec_bin = self.state_dir / "exec-bin"
        exec_bin.mkdir(exist_ok=True)
        stubs = {name: DAGSTER_STUB for name in ("dagster", "dagster-daemon", "dagster-webserver")}
        stubs["python"] = stubs["python3"] = PYTHON_STUB.format(python=sys.executable)
        for name, text in stubs.items():
            stub = exec_bin / name
            stub.write_text(text)
            stub.chmod(0o755)
        api = {"url": self.url, "ca": str(self.pki.ca_cert), "token": self.pki.admin_token}
        (self.state_dir / "api.json").write_text(json.dumps(api))
        (self.state_dir / "api.json").chmod(0o600)
        self.pod_log_file.parent.mkdir(exist_ok=True)
        self.pod_log_file.write_text(DEFAULT_LOG)
        with self.admin_client() as client:
            _create(
                client,
                "/apis/kwok.x-k8s.io/v1alpha1/clusterlogs",
                {
                    "apiVersion": "kwok.x-k8s.io/v1alpha1",
                    "kind": "ClusterLogs",
                    "metadata": {"name": "all-containers"},
                    "spec": {
                        "selector": {},
                        "logs": [
                            {"containers": [], "logsFile": str(self.pod_log_file), "follow": True}
                        ],
                    },
                },
            )
            _create(
                client,
                "/apis/kwok.x-k8s.io/v1alpha1/clusterexecs",
                {
                    "apiVersion": "kwok.x-k8s.io/v1alpha1",
                    "kind": "ClusterExec",
                    "metadata": {"name": "host-commands"},
                    "spec": {
                        "selector": {},
                        "execs": [
                            {
                                "containers": [],
                                "local": {
                                    "workDir": str(self.state_dir),
                                    "envs": self.exec_env(),
                                },
                            }
                        ],
                    },
                },
            )

    def _apply_kwok_crds(self) -> None:
        bases = kwok_module_dir() / "kustomize" / "crd" / "bases"
        with self.admin_client() as client:
            for plural in KWOK_CRDS:
                crd = yaml.safe_load((bases / f"kwok.x-k8s.io_{plural}.yaml").read_text())
                _create(client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
            for plural in KWOK_CRDS:
                path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.kwok.x-k8s.io"
                _wait_for(lambda p=path: _established(client.get(p)), f"CRD {plural}")

    def _create_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                    # The node pool, as AKS labels its nodes (`node: pool1` in tests).
                    "agentpool": "pool1",
                },
            },
            "status": {
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            },
        }
        with self.admin_client() as client:
            _create(client, "/api/v1/nodes", node)

    def _wait_node_ready(self, deadline: float) -> None:
        with self.admin_client() as client:

            def ready() -> bool:
                self._check_alive()
                node = client.get(f"/api/v1/nodes/{NODE_NAME}").json()
                conditions = node.get("status", {}).get("conditions") or []
                return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

            _wait_for(ready, "the kwok node", deadline=deadline)
            # The API server taints a new node not-ready; removing the taint is the node
            # lifecycle controller's job, which has nothing else to do here and is off.
            client.patch(
                f"/api/v1/nodes/{NODE_NAME}",
                json={"spec": {"taints": None}},
                headers={"Content-Type": "application/merge-patch+json"},
            )

    def _write_pids(self) -> None:
        pids = {name: proc.pid for name, proc in self.processes.items()}
        (self.state_dir / "pids.json").write_text(json.dumps(pids))


def _die_with_parent() -> None:
    """In the child: SIGKILL when the parent dies (Linux prctl PR_SET_PDEATHSIG), so a test
    run that is killed leaves no control plane behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "GOCACHE")
    return {k: v for k, v in os.environ.items() if k in keep}


def _create(client: httpx.Client, path: str, obj: dict[str, Any]) -> None:
    response = client.post(path, json=obj)
    if response.status_code not in (200, 201, 409):
        raise ControlPlaneError(f"creating {path} failed: {response.status_code} {response.text}")


def _established(response: httpx.Response) -> bool:
    if response.status_code != 200:
        return False
    conditions = response.json().get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def _wait_for(check: Any, what: str, *, deadline: float | None = None) -> None:
    deadline = deadline if deadline is not None else time.monotonic() + 60
    delay = 0.05
    while not check():
        if time.monotonic() > deadline:
            raise ControlPlaneError(f"{what} did not become ready in time")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _terminate(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stop_from_state(state_dir: Path, grace: float = 10) -> None:
    """Stop the processes recorded by a control plane started in another process."""
    pids_file = state_dir / "pids.json"
    if not pids_file.exists():
        return
    pids: dict[str, int] = json.loads(pids_file.read_text())
    for pid in reversed(list(pids.values())):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid in pids.values():
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    pids_file.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


@contextlib.contextmanager
def running(binaries: ControlPlaneBinaries, state_dir: Path) -> Iterator[ControlPlane]:
    with ControlPlane(binaries, state_dir) as plane:
        yield plane
