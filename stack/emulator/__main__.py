"""Run the emulator standalone: `python -m stack.emulator --port 0 --kubeconfig PATH ...`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from . import Emulator, seed_dagster


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stack.emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--kube-version", default="v1.32.3")
    p.add_argument("--ready-delay", type=float, default=0.2)
    p.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for the emulator here")
    p.add_argument("--context", default="kind-dagster-local")
    p.add_argument("--namespace", default="dagster")
    p.add_argument(
        "--seed-dagster-version", help="seed a Dagster instance of this version into --namespace"
    )
    p.add_argument("--ready-file", type=Path, help="written (url and port) once the server listens")
    args = p.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    emu = Emulator(
        host=args.host, port=args.port, kube_version=args.kube_version, ready_delay=args.ready_delay
    ).start()
    try:
        if args.seed_dagster_version:
            seed_dagster(emu, namespace=args.namespace, dagster_version=args.seed_dagster_version)
        if args.kubeconfig:
            emu.write_kubeconfig(args.kubeconfig, context=args.context, namespace=args.namespace)
        print(emu.url, flush=True)
        if args.ready_file:
            tmp = args.ready_file.with_name(args.ready_file.name + f".{os.getpid()}.tmp")
            tmp.write_text(f"url={emu.url}\nport={emu.port}\npid={os.getpid()}\n")
            tmp.replace(args.ready_file)
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
