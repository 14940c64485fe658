"""A real HTTP proxy (Debian's Squid) on a free loopback port, for tests of proxy support.

``SquidProxy(names={"kube.proxied.test": "127.0.0.1"})`` resolves those names through its
own hosts file (``hosts_file``): nothing else on the machine can resolve them, so a client
that reaches a server by such a name has gone through the proxy; a client that tries the
direct path fails to resolve the name. Kubernetes clients (kubectl, Helm, client-go) and
podman never proxy loopback addresses or ``localhost``, so the servers are named this way
rather than by 127.0.0.1. Every request the proxy forwarded is in :meth:`requests`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from stack.registry import free_port, spawn_server, stop_server

SQUID_BIN = os.environ.get("DAGSTER_UC_SQUID_BIN", "/usr/sbin/squid")


def squid_available() -> bool:
    return Path(SQUID_BIN).is_file()


class SquidProxy:
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.workdir = Path(tempfile.mkdtemp(prefix="dagster-uc-squid-"))
        # Squid started as root drops to its own user, which must write the logs.
        self.workdir.chmod(0o777)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    def _config(self) -> str:
        hosts = self.workdir / "hosts"
        hosts.write_text("".join(f"{ip} {name}\n" for name, ip in self.names.items()))
        return "\n".join(
            [
                f"http_port 127.0.0.1:{self.port}",
                "pid_filename none",
                "cache deny all",
                "cache_mem 8 MB",
                f"access_log stdio:{self.access_log}",
                f"cache_log {self.workdir / 'cache.log'}",
                "cache_store_log none",
                f"hosts_file {hosts}",
                "http_access allow localhost",
                # pod exec (the webserver's workspace reload) is a WebSocket upgrade
                "http_upgrade_request_protocols websocket allow all",
                "http_access deny all",
                f"coredump_dir {self.workdir}",
                "shutdown_lifetime 0 seconds",
                "pinger_enable off",
                "visible_hostname dagster-uc-test",
                "logfile_rotate 0",
                "",
            ]
        )

    def start(self) -> SquidProxy:
        for _attempt in range(3):
            self.port = free_port()
            config = self.workdir / "squid.conf"
            config.write_text(self._config())
            self.process = spawn_server(
                [SQUID_BIN, "-N", "-f", str(config)], self.workdir / "squid.out"
            )
            if self._wait_ready():
                return self
            self._kill()
        raise RuntimeError(f"squid did not start; see {self.workdir}/cache.log")

    def _wait_ready(self, timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def requests(self) -> list[str]:
        """``METHOD URL`` of every request forwarded so far (CONNECT: ``CONNECT host:port``).

        Squid writes a line when a request ends; a CONNECT tunnel still open is not listed.
        """
        if not self.access_log.exists():
            return []
        lines = []
        for line in self.access_log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 7:
                lines.append(f"{fields[5]} {fields[6]}")
        return lines

    def _kill(self) -> None:
        stop_server(self.process)
        self.process = None

    def stop(self) -> None:
        self._kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SquidProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
