"""Values documents of the user-code chart for the Helm tests."""

from __future__ import annotations

import yaml

VERSION = "1.8.4"


def values_yaml(*entries: tuple[str, str], repository: str = "registry.test/team") -> str:
    """A values document of the user-code chart with one deployment per (name, tag)."""
    return yaml.safe_dump(
        {
            "deployments": [
                {
                    "name": name,
                    "image": {
                        "repository": f"{repository}/{name}",
                        "tag": tag,
                        "pullPolicy": "IfNotPresent",
                    },
                    "dagsterApiGrpcArgs": ["-f", "/app/definitions.py"],
                    "port": 3030,
                    "readinessProbe": {"enabled": True},
                }
                for name, tag in entries
            ]
        }
    )
