"""Dagster's workspace document: one gRPC server per registered user-code deployment."""

from __future__ import annotations

from typing import Any

from dagster_uc import yamldoc
from dagster_uc.naming import ui_name
from dagster_uc.values import GRPC_PORT, entries


def workspace_document(values: dict[str, Any]) -> dict[str, Any]:
    """`load_from` lists every deployment of the values document, in its order."""
    return {
        "load_from": [
            {
                "grpc_server": {
                    "host": entry["name"],
                    "port": int(entry.get("port") or GRPC_PORT),
                    "location_name": ui_name(entry["name"]),
                }
            }
            for entry in entries(values)
        ]
    }


def workspace_yaml(values: dict[str, Any]) -> str:
    return yamldoc.dump(workspace_document(values))
