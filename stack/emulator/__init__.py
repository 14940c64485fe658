"""A Kubernetes API server emulator for tests and the demo (pure Python, never shipped).

from stack.emulator import Emulator, seed_dagster
emu = Emulator().start()
emu.write_kubeconfig(path, context="kind-dagster-local", namespace="dagster")
seed_dagster(emu)
"""

from .dagster import ExecResult, seed_dagster
from .emulator import Emulator

__all__ = ["Emulator", "ExecResult", "seed_dagster"]
