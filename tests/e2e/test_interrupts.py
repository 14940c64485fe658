"""Ctrl-C at the moments that matter: during the image build or push the cluster is left as it
was (nothing registered, no release, no lock, nothing in the registry); during a ConfigMap write
the write finishes, and the change is then undone like any failed one.

The command runs in its own process group with SIGINT and SIGTERM reset to their defaults
(`stack.pytest_plugin.default_signals`, through `Proc`): the test suite itself may run with
SIGINT ignored (a background job), and an ignored signal stays ignored across exec."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import VALUES_CM, Result, Stack, wait_until
from tests.e2e.test_reliability import (
    LEASE,
    LEASES,
    RELEASE,
    Proc,
    assert_consistent,
    entry_tag,
    helm_json,
    new_commit,
    workspace_text,
)

NAME = "demo-project--feat-hello"


def ctrl_c(proc: Proc) -> Result:
    """What a terminal does on Ctrl-C: SIGINT to the whole foreground process group (the
    command and the podman or Helm it runs)."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        return proc.finish(timeout=120)
    finally:
        proc.stop()


def assert_cluster_untouched(stack: Stack, workspace_before: str) -> None:
    """Nothing registered, rolled out or locked; a tag reservation (history only) may stay."""
    cm = stack.configmap(VALUES_CM)
    assert cm is None or stack.values()["deployments"] == []
    assert workspace_text(stack) == workspace_before
    assert stack.emulator.list("v1", "secrets", stack.namespace, label_selector="owner=helm") == []
    assert stack.deployment(NAME) is None
    lease = stack.emulator.get(*LEASES, stack.namespace, LEASE)
    assert not ((lease or {}).get("spec") or {}).get("holderIdentity")


def assert_interrupted(result: Result) -> None:
    assert result.returncode == 130, result.output
    assert "Traceback" not in result.output


# --- build and push ---------------------------------------------------------------------------


def test_ctrl_c_during_the_build_leaves_the_cluster_and_registry_untouched(stack: Stack) -> None:
    dockerfile = stack.project / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN sleep 120\n")
    stack.git("commit", "-qam", "a slow build step")
    workspace_before = workspace_text(stack)
    stack.env["VERBOSE"] = "1"  # podman's output is shown as it comes
    deploying = Proc(stack, "deployment", "deploy", "--timeout", "60")
    del stack.env["VERBOSE"]
    wait_until(
        lambda: "RUN sleep 120" in deploying.stdout + deploying.stderr,
        "podman to run the slow step",
    )

    result = ctrl_c(deploying)

    assert_interrupted(result)
    assert "Rolling out" not in result.stderr
    assert_cluster_untouched(stack, workspace_before)
    assert stack.tags(NAME) == []

    dockerfile.write_text(dockerfile.read_text().replace("RUN sleep 120\n", ""))
    stack.git("commit", "-qam", "a fast build again")
    stack.ok("deployment", "deploy", "--timeout", "60")
    assert entry_tag(stack, NAME) == "1.8.4-1", "the interrupted build's tag is not reused"
    assert_consistent(stack)


def relay(
    source: socket.socket, target: socket.socket, before: Callable[[bytes], None] | None = None
) -> None:
    """Copy `source` to `target` until either side closes (`before` sees each chunk first),
    then shut both down."""
    try:
        while data := source.recv(65536):
            if before is not None:
                before(data)
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class TcpFront:
    """A listener on `address` that hands each accepted connection to `serve`, in a thread.
    Subclasses set their attributes before calling `__init__` (the listener starts at once)."""

    def __init__(self, address: str) -> None:
        self._listener = socket.create_server((address, 0))
        self.host = f"{address}:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._listener.close()


class UploadGate(TcpFront):
    """A TCP relay in front of the registry that holds every blob upload (a request naming
    `/blobs/uploads/`) until `release()`: the push is caught in the middle."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.caught = threading.Event()
        self._open = threading.Event()
        self._sockets: list[socket.socket] = []
        super().__init__("127.0.0.1")

    def serve(self, conn: socket.socket) -> None:
        server = socket.create_connection(self.upstream)
        self._sockets += [conn, server]
        threading.Thread(target=relay, args=(server, conn), daemon=True).start()
        relay(conn, server, self._hold)

    def _hold(self, data: bytes) -> None:
        if b"/blobs/uploads/" in data and not self._open.is_set():
            self.caught.set()
            self._open.wait()

    def release(self) -> None:
        self._open.set()

    def close(self) -> None:
        self.release()
        super().close()
        for sock in self._sockets:
            sock.close()


@pytest.fixture
def upload_gate(stack: Stack) -> Iterator[UploadGate]:
    gate = UploadGate(stack.registry.host)
    try:
        yield gate
    finally:
        gate.close()


def test_ctrl_c_during_the_push_leaves_the_cluster_and_registry_untouched(
    stack: Stack, upload_gate: UploadGate
) -> None:
    stack.write_config(container_registry=upload_gate.host)
    workspace_before = workspace_text(stack)
    deploying = Proc(stack, "deployment", "deploy", "--timeout", "60")
    if not upload_gate.caught.wait(120):
        deploying.stop()
        raise AssertionError(f"podman never started an upload:\n{deploying.stderr}")

    result = ctrl_c(deploying)

    assert_interrupted(result)
    assert "Taking the deploy lock" not in result.stderr
    assert_cluster_untouched(stack, workspace_before)
    assert stack.tags(NAME) == [], "no manifest was pushed"

    upload_gate.release()
    stack.ok("deployment", "deploy", "--timeout", "60")
    assert entry_tag(stack, NAME) == "1.8.4-1"
    assert_consistent(stack)


# --- a ConfigMap write ------------------------------------------------------------------------


def test_ctrl_c_during_the_values_write_lets_it_finish_then_restores(stack: Stack) -> None:
    """The values ConfigMap's write of the change is answered only after a delay; Ctrl-C
    arrives while it is in flight. The command waits for the answer (so the write is never
    cut in half, nor left applied behind a command that is gone), then undoes the change."""
    stack.ok("deployment", "deploy", "--timeout", "60")
    entry_before = stack.entry(NAME)
    workspace_before = workspace_text(stack)
    revisions_before = len(helm_json(stack, "history", RELEASE))
    new_commit(stack)
    path = f"/namespaces/{stack.namespace}/configmaps/{VALUES_CM}"
    writes = ("PUT", f"/api/v1{path}")
    # The tag reservation before the build, then the change itself: both delayed.
    stack.emulator.inject_fault("PUT", f"{path}$", status=None, delay=3, times=2)
    before = stack.emulator.request_counts[writes]
    deploying = Proc(stack, "deployment", "deploy", "--timeout", "60")
    try:
        wait_until(
            lambda: stack.emulator.request_counts[writes] >= before + 2,
            "the change's write of the values ConfigMap to reach the server",
        )
        os.kill(deploying.pid, signal.SIGINT)
        result = deploying.finish(timeout=120)
    finally:
        stack.emulator.clear_faults()
        deploying.stop()

    assert_interrupted(result)
    assert "Rolling back to the previous state" in result.stderr
    assert "Rolling out" not in result.stderr
    assert stack.entry(NAME) == entry_before
    assert workspace_text(stack) == workspace_before
    assert len(helm_json(stack, "history", RELEASE)) == revisions_before
    # The interrupted write went through (its tag is recorded) and was then undone.
    assert "1.8.4-1" in stack.history()["deployments"][NAME]["tags"]
    assert [r["tag"] for r in stack.history()["deployments"][NAME]["records"]] == ["1.8.4-0"]
    assert_consistent(stack)
